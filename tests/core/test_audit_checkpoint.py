"""Node-signed audit checkpoints, the peer's decision on an offered one, and exports proven against them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core import audit, certs, pki
from gateway.core.audit import Checkpoint, Entry, consistency_proof, leaf_hash
from gateway.core.audit_checkpoint import (
    AuditCheckpointInconsistent,
    AuditCheckpointInvalid,
    AuditCheckpointNotProven,
    AuditCheckpointProofMissing,
    AuditCheckpointStale,
    AuditCheckpointWrongNode,
    Offer,
    add_consistency,
    check_export_against,
    check_offered,
    checkpoint_document,
    held_document,
    offer_document,
    read_held,
    read_offer,
    read_signed_checkpoint,
    timestamp_imprint,
)
from gateway.core.signing import Signer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


def issued(node_id: str) -> pki.Issued:
    ca = pki.make_ca(node_id, now=T0 - timedelta(days=1))
    return pki.issue_node_signing(ca, node_id, now=T0 - timedelta(days=1))


@pytest.fixture(scope="module")
def at_node() -> pki.Issued:
    return issued("AT")


@pytest.fixture(scope="module")
def be_node() -> pki.Issued:
    return issued("BE")


def signer(node: pki.Issued) -> Signer:
    return Signer(node.key, node.certificate)


def trust(node: pki.Issued) -> certs.TrustStore:
    return certs.TrustStore.from_pem(pinned=[certs.dump_pem_certificate(node.certificate)], cas=[])


def make_log(n: int, tag: str = "", *, from_entry: int = 1) -> list[Entry]:
    """Entries 1..n; those from ``from_entry`` on carry ``tag`` (a history rewritten there)."""
    entries: list[Entry] = []
    for i in range(n):
        entries.append(
            audit.next_entry(
                entries[-1] if entries else None,
                at=T0 + timedelta(minutes=i),
                event="SUBMITTED",
                actor=f"auth{tag if i + 1 >= from_entry else ''}",
                exchange_id=f"ex-{i % 3}",
                message_id=f"m-{i}",
            )
        )
    return entries


def leaves(entries: list[Entry]) -> list[bytes]:
    return [leaf_hash(audit.entry_bytes(e)) for e in entries]


def signed_checkpoint(node: pki.Issued, entries: list[Entry], at: datetime = T0) -> bytes:
    return signer(node).sign(checkpoint_document("AT", audit.checkpoint(entries, at)))


def test_a_signed_checkpoint_reads_back_with_the_nodes_certificate(at_node: pki.Issued) -> None:
    entries = make_log(5)
    data = signed_checkpoint(at_node, entries)
    read = read_signed_checkpoint(data, trust(at_node), now=NOW, node_id="AT")
    assert read.checkpoint == audit.checkpoint(entries, T0)
    assert read.data == data
    assert len(timestamp_imprint(data)) == 32


def test_a_checkpoint_signed_by_another_node_is_refused(
    at_node: pki.Issued, be_node: pki.Issued
) -> None:
    data = signed_checkpoint(at_node, make_log(3))
    with pytest.raises(AuditCheckpointInvalid):
        read_signed_checkpoint(data, trust(be_node), now=NOW, node_id="BE")
    with pytest.raises(AuditCheckpointWrongNode):  # a valid checkpoint, but not of the caller
        read_signed_checkpoint(data, trust(at_node), now=NOW, node_id="BE")


def test_an_offer_round_trips(at_node: pki.Issued) -> None:
    entries = make_log(9)
    offer = Offer(
        signed_checkpoint(at_node, entries), 4, tuple(consistency_proof(4, leaves(entries))), b"tok"
    )
    assert read_offer(offer_document(offer)) == offer
    bare = Offer(b"<x/>")
    assert read_offer(offer_document(bare)) == bare
    cp = audit.checkpoint(entries, T0)
    assert read_held(held_document("AT", cp)) == ("AT", 9, cp.root)
    assert read_held(held_document("AT", None))[1] == 0
    with pytest.raises(AuditCheckpointInvalid):
        read_offer(b"<x/>")


def test_a_peer_accepts_a_checkpoint_that_extends_the_one_it_holds() -> None:
    entries = make_log(12)
    old = audit.checkpoint(entries[:5], T0)
    new = audit.checkpoint(entries, T0 + timedelta(minutes=1))
    assert check_offered(None, old, 0, ())
    assert check_offered(old, new, 5, consistency_proof(5, leaves(entries)))
    assert not check_offered(new, new, 12, ())


def test_a_rewritten_history_is_caught_by_the_peer() -> None:
    entries = make_log(12)
    held = audit.checkpoint(entries[:5], T0)
    rewritten = make_log(9, tag="x", from_entry=4)
    assert rewritten[:3] == entries[:3]
    offered = audit.checkpoint(rewritten, T0 + timedelta(minutes=1))
    with pytest.raises(AuditCheckpointInconsistent):
        check_offered(held, offered, 5, consistency_proof(5, leaves(rewritten)))
    same_size = audit.checkpoint(rewritten[:5], T0 + timedelta(minutes=1))
    with pytest.raises(AuditCheckpointInconsistent):
        check_offered(held, same_size, 0, ())
    truncated = audit.checkpoint(entries[:4], T0 + timedelta(minutes=1))
    with pytest.raises(AuditCheckpointInconsistent):
        check_offered(held, truncated, 0, ())


def test_an_older_checkpoint_or_a_proof_from_elsewhere_is_refused_without_alarm() -> None:
    entries = make_log(12)
    held = audit.checkpoint(entries[:8], T0 + timedelta(minutes=5))
    with pytest.raises(AuditCheckpointStale):
        check_offered(held, audit.checkpoint(entries[:5], T0), 0, ())
    with pytest.raises(AuditCheckpointProofMissing):
        check_offered(
            held, audit.checkpoint(entries, NOW), 5, consistency_proof(5, leaves(entries))
        )


def export_with(node: pki.Issued, entries: list[Entry], held: Checkpoint | None) -> bytes:
    tree = audit.build_export("AT", entries, [2, 3], at=NOW, contiguous=True)
    if held is not None:
        add_consistency(tree, held, consistency_proof(held.size, leaves(entries)))
    return signer(node).sign(tree)


def test_an_export_is_proven_against_the_checkpoint_a_peer_holds(at_node: pki.Issued) -> None:
    entries = make_log(10)
    peer_held = signed_checkpoint(at_node, entries[:6])
    held = audit.checkpoint(entries[:6], T0)
    export = export_with(at_node, entries, held)
    assert audit.verify_export(export, at_node.certificate, now=NOW).checkpoint.size == 10
    assert check_export_against(export, at_node.certificate, peer_held, now=NOW) == held
    same = signed_checkpoint(at_node, entries)
    assert check_export_against(
        export_with(at_node, entries, None), at_node.certificate, same, now=NOW
    )
    with pytest.raises(AuditCheckpointNotProven):
        check_export_against(
            export_with(at_node, entries, None), at_node.certificate, peer_held, now=NOW
        )


def test_an_export_of_a_rewritten_log_fails_against_the_peers_checkpoint(
    at_node: pki.Issued,
) -> None:
    entries = make_log(10)
    peer_held = signed_checkpoint(at_node, entries[:6])
    rewritten = make_log(10, tag="x", from_entry=3)  # entries 3.. rewritten, chain re-made
    forged_held = audit.checkpoint(entries[:6], T0)  # the forger claims a proof from the held size
    export = export_with(at_node, rewritten, forged_held)
    audit.verify_export(export, at_node.certificate, now=NOW)  # consistent on its own
    with pytest.raises(AuditCheckpointInconsistent):
        check_export_against(export, at_node.certificate, peer_held, now=NOW)
