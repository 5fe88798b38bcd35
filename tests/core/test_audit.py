"""The audit log core: chain, Merkle checkpoint, signed export, and offline verification.

Each tampering of an export is detected, with its stable code, at the FIRST bad entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from gateway.core import audit, pki
from gateway.core.audit import AUDIT_NS, Entry
from gateway.core.signing import Signer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
KEY = b"k" * 32


@pytest.fixture(scope="module")
def node() -> pki.Issued:
    ca = pki.make_ca("AT", now=T0 - timedelta(days=1))
    return pki.issue_node_signing(ca, "AT", now=T0 - timedelta(days=1))


@pytest.fixture(scope="module")
def other_node() -> pki.Issued:
    ca = pki.make_ca("BE", now=T0 - timedelta(days=1))
    return pki.issue_node_signing(ca, "BE", now=T0 - timedelta(days=1))


def make_log(n: int) -> list[Entry]:
    entries: list[Entry] = []
    for i in range(n):
        entries.append(
            audit.next_entry(
                entries[-1] if entries else None,
                at=T0 + timedelta(minutes=i),
                event="SUBMITTED" if i % 2 == 0 else "DELIVERED",
                actor=f"auth{i % 3}",
                exchange_id=f"ex-{i % 2}",
                message_id=f"m-{i}",
                digest=audit.document_digest(KEY, f"doc {i}".encode()),
            )
        )
    return entries


def export(
    signer: Signer, entries: list[Entry], selected: list[int], contiguous: bool = True
) -> bytes:
    tree = audit.build_export("AT", entries, selected, at=NOW, contiguous=contiguous)
    return signer.sign(tree)


def resign(signer: Signer, data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    """Tamper with an export, then sign it again with the node key (an operator rewriting history)."""
    root = etree.fromstring(data)
    sig = root[-1]
    root.remove(sig)
    change(root)
    return signer.sign(root)


def entries_of(root: etree._Element) -> list[etree._Element]:
    return list(root.iterfind(f"{{{AUDIT_NS}}}Entry"))


def rehash(el: etree._Element) -> None:
    """Recompute an entry element's hash after changing its fields (a careful forger)."""
    g = lambda n: el.get(n) or ""  # noqa: E731
    e = Entry(
        int(g("seq")), audit.parse_time(g("at")), g("event"), g("actor"),
        g("exchange"), g("message"), g("digest"), g("prev"),
    )  # fmt: skip
    el.set("hash", audit.entry_hash(e))


def modify(root: etree._Element) -> None:
    entries_of(root)[2].set("actor", "intruder")


def modify_and_rehash(root: etree._Element) -> None:
    entries_of(root)[2].set("actor", "intruder")
    rehash(entries_of(root)[2])


def remove(root: etree._Element) -> None:
    root.remove(entries_of(root)[2])


def remove_last(root: etree._Element) -> None:
    root.remove(entries_of(root)[-1])


def insert_duplicate(root: etree._Element) -> None:
    entries_of(root)[2].addnext(etree.fromstring(etree.tostring(entries_of(root)[2])))


def insert_beyond(root: etree._Element) -> None:
    extra = etree.fromstring(etree.tostring(entries_of(root)[-1]))
    extra.set("seq", "7")
    entries_of(root)[-1].addnext(extra)


def reorder(root: etree._Element) -> None:
    third, fourth = entries_of(root)[2], entries_of(root)[3]
    fourth.addnext(third)


def break_chain(root: etree._Element) -> None:
    el = entries_of(root)[3]
    el.set("prev", "ab" * 32)
    rehash(el)


TAMPERING = [
    # name, change, code, first bad entry
    ("modified", modify, "AUDIT_ENTRY_MODIFIED", 3),
    ("modified and rehashed", modify_and_rehash, "AUDIT_NOT_IN_CHECKPOINT", 3),
    ("removed", remove, "AUDIT_ENTRY_REMOVED", 3),
    ("last removed", remove_last, "AUDIT_ENTRY_REMOVED", 6),
    ("inserted twice", insert_duplicate, "AUDIT_ENTRY_INSERTED", 3),
    ("inserted beyond range", insert_beyond, "AUDIT_ENTRY_INSERTED", 7),
    ("reordered", reorder, "AUDIT_ENTRY_REORDERED", 4),
    ("chain broken", break_chain, "AUDIT_CHAIN_BROKEN", 4),
]


def test_an_untampered_export_verifies_with_only_the_node_certificate(node: pki.Issued) -> None:
    signer = Signer(node.key, node.certificate)
    entries = make_log(6)
    result = audit.verify_export(
        export(signer, entries, [1, 2, 3, 4, 5, 6]), node.certificate, now=NOW
    )
    assert result.entries == tuple(entries)
    assert result.checkpoint.size == 6
    assert result.checkpoint.root == audit.checkpoint(entries, NOW).root
    assert result.node_id == "AT"


def test_an_exchange_export_proves_each_entry_against_the_whole_log(node: pki.Issued) -> None:
    signer = Signer(node.key, node.certificate)
    entries = make_log(7)
    data = export(signer, entries, [1, 3, 5, 7], contiguous=False)
    result = audit.verify_export(data, node.certificate, now=NOW)
    assert [e.seq for e in result.entries] == [1, 3, 5, 7]


@pytest.mark.parametrize(
    ("name", "change", "code", "seq"), TAMPERING, ids=[t[0] for t in TAMPERING]
)
def test_a_tampered_export_names_the_first_bad_entry(
    node: pki.Issued, name: str, change: Callable[[etree._Element], None], code: str, seq: int
) -> None:
    signer = Signer(node.key, node.certificate)
    data = resign(signer, export(signer, make_log(6), [1, 2, 3, 4, 5, 6]), change)
    with pytest.raises(audit.AuditVerificationFailed) as caught:
        audit.verify_export(data, node.certificate, now=NOW)
    assert (caught.value.code, caught.value.seq) == (code, seq)
    assert f"entry {seq}" in str(caught.value)


def test_an_export_changed_without_the_node_key_fails_its_signature(node: pki.Issued) -> None:
    signer = Signer(node.key, node.certificate)
    data = export(signer, make_log(6), [1, 2, 3, 4, 5, 6])
    tampered = data.replace(b'actor="auth1"', b'actor="auth2"', 1)
    assert tampered != data
    with pytest.raises(audit.AuditSignatureInvalid):
        audit.verify_export(tampered, node.certificate, now=NOW)


def test_an_export_signed_by_another_node_fails_its_signature(
    node: pki.Issued, other_node: pki.Issued
) -> None:
    data = export(Signer(other_node.key, other_node.certificate), make_log(3), [1, 2, 3])
    with pytest.raises(audit.AuditSignatureInvalid):
        audit.verify_export(data, node.certificate, now=NOW)


@pytest.mark.parametrize("size", range(1, 12))
def test_every_inclusion_path_leads_to_the_tree_head(size: int) -> None:
    leaves = [audit.leaf_hash(audit.entry_bytes(e)) for e in make_log(size)]
    root = audit.merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        assert audit.path_root(index, size, leaf, audit.inclusion_path(index, leaves)) == root
        assert (
            audit.path_root(index, size, b"\x00" * 32, audit.inclusion_path(index, leaves)) != root
        )


def test_the_merkle_tree_follows_rfc_6962() -> None:
    import hashlib

    a, b, c = (audit.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert a == hashlib.sha256(b"\x00a").digest()
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert audit.merkle_root([a, b, c]) == hashlib.sha256(b"\x01" + ab + c).hexdigest()


def test_the_document_digest_is_keyed_and_the_entry_never_holds_the_document() -> None:
    document = b"<Request>Jane Doe</Request>"
    digest = audit.document_digest(KEY, document)
    assert digest != audit.document_digest(b"other key", document)
    entry = audit.next_entry(None, at=T0, event="SUBMITTED", actor="a", digest=digest)
    assert b"Jane" not in audit.entry_bytes(entry)
    assert entry.prev == audit.GENESIS and entry.seq == 1


def test_a_signed_export_that_breaks_the_schema_is_refused(node: pki.Issued) -> None:
    signer = Signer(node.key, node.certificate)
    data = resign(
        signer,
        export(signer, make_log(3), [1, 2, 3]),
        lambda r: entries_of(r)[1].attrib.pop("hash"),
    )
    with pytest.raises(audit.AuditExportInvalid):
        audit.verify_export(data, node.certificate, now=NOW)


def _reference_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]), written out recursively."""
    import hashlib

    def mth(d: list[bytes]) -> bytes:
        if len(d) == 1:
            return d[0]
        k = 1 << ((len(d) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()

    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return [*_reference_path(index, leaves[:k]), mth(leaves[k:])]
    return [*_reference_path(index - k, leaves[k:]), mth(leaves[:k])]


def test_the_shared_tree_gives_the_rfc_6962_paths() -> None:
    for size in (1, 2, 3, 5, 8, 13, 33):
        leaves = [audit.leaf_hash(bytes([i])) for i in range(size)]
        tree = audit.MerkleTree(leaves)
        assert [tree.path(i) for i in range(size)] == [
            _reference_path(i, leaves) for i in range(size)
        ]
