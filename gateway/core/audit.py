"""The signed audit log: entries, hash chain, Merkle checkpoints, export and offline verification.

Sans-IO. See docs/audit.md.

* An :class:`Entry` records one event: its sequence number (1, 2, ...), time,
  event code, actor, exchange id, message id, a keyed digest of the document
  (HMAC-SHA256 with the node's audit key, :func:`document_digest`; never the
  document) and the previous entry's hash (:data:`GENESIS` for entry 1).
* :func:`entry_bytes` is the canonical byte encoding of an entry (every field
  length-prefixed); :func:`entry_hash` its SHA-256 (hex). Each entry carries
  the hash of the one before it: the hash chain.
* :func:`merkle_root` is the RFC 6962 tree head over entries 1..N (leaf =
  H(0x00 || entry bytes), node = H(0x01 || left || right)); a
  :class:`Checkpoint` is (size, root, time), signed by the node as part of an
  export. :func:`inclusion_path` / :func:`path_root` prove an entry is in it.
* :func:`build_export` makes the XML export (schemas/audit.xsd) that the
  node signs; :func:`verify_export` checks it with nothing but its bytes and
  the node certificate and names the first bad entry with a stable code.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib.resources import as_file, files
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.core import certs
from gateway.core.docxml import sha256_hex
from gateway.core.errors import GatewayError, InvalidInput
from gateway.core.signing import verify

AUDIT_NS = "urn:imi-gateway:audit:1"


class Event(StrEnum):
    """The event codes of audit entries (docs/audit.md)."""

    SUBMITTED = "SUBMITTED"  # a national system submitted a document
    TRANSFERRED = "TRANSFERRED"  # a document was sent to a peer node
    RECEIVED = "RECEIVED"  # a document arrived from a peer node
    RECEIPT = "RECEIPT"  # a peer node's receipt for a sent document
    DELIVERED = "DELIVERED"  # a document was delivered to a national system
    STATE_CHANGED = "STATE_CHANGED"  # an exchange changed state
    PERSONAL_DATA_READ = "PERSONAL_DATA_READ"  # personal data of an exchange was read
    ERASED = "ERASED"  # an exchange's personal data was erased
    BLOCKED = "BLOCKED"  # an exchange's personal data was blocked (unreadable until erased)
    REFUSED = "REFUSED"  # a document or request was refused
    CONFIG_CHANGED = "CONFIG_CHANGED"  # the node's configuration changed
    TRUST_CHANGED = "TRUST_CHANGED"  # the trust store changed
    AUTHORITIES_CHANGED = "AUTHORITIES_CHANGED"  # the node's authorities changed
    LOGIN = "LOGIN"  # a console user logged in
    LOGIN_FAILED = "LOGIN_FAILED"  # a console login was refused
    LOGOUT = "LOGOUT"  # a console user logged out
    CONSOLE_CHANGE = "CONSOLE_CHANGE"  # a change made through the console or to its users


GENESIS = "0" * 64
_ENCODING_TAG = b"imi-gateway-audit-entry-1"


class AuditExportInvalid(InvalidInput):
    """The audit export is not a well-formed, schema-valid audit export."""

    code = "AUDIT_EXPORT_INVALID"


class AuditVerificationFailed(InvalidInput):
    """An audit export failed verification."""

    code = "AUDIT_VERIFICATION_FAILED"

    def __init__(self, seq: int | None, detail: str | None = None) -> None:
        self.seq = seq
        where = f"entry {seq}" if seq is not None else "export"
        first = (self.__doc__ or self.code).strip().splitlines()[0]
        super().__init__(f"{where}: {detail or first}")


class AuditSignatureInvalid(AuditVerificationFailed):
    """The audit export's node signature is not valid for the given certificate."""

    code = "AUDIT_SIGNATURE_INVALID"


class AuditEntryModified(AuditVerificationFailed):
    """An audit entry's fields do not match its hash: the entry was modified."""

    code = "AUDIT_ENTRY_MODIFIED"


class AuditEntryRemoved(AuditVerificationFailed):
    """An audit entry is missing from a contiguous export: it was removed."""

    code = "AUDIT_ENTRY_REMOVED"


class AuditEntryInserted(AuditVerificationFailed):
    """An audit entry appears twice or outside the exported range: it was inserted."""

    code = "AUDIT_ENTRY_INSERTED"


class AuditEntryReordered(AuditVerificationFailed):
    """Audit entries are out of sequence order: they were reordered."""

    code = "AUDIT_ENTRY_REORDERED"


class AuditChainBroken(AuditVerificationFailed):
    """An audit entry's previous-hash does not match the entry before it: the chain is broken."""

    code = "AUDIT_CHAIN_BROKEN"


class AuditNotInCheckpoint(AuditVerificationFailed):
    """An audit entry is not in the signed checkpoint's Merkle tree."""

    code = "AUDIT_NOT_IN_CHECKPOINT"


def document_digest(audit_key: bytes, document: bytes) -> str:
    """The keyed digest of a document: HMAC-SHA256 with the node's audit key (hex)."""
    return hmac.new(audit_key, document, hashlib.sha256).hexdigest()


#: The length of a node's audit key (``keys/audit.hmac``): 32 random bytes.
AUDIT_KEY_BYTES = 32


@dataclass(frozen=True)
class AuditKey:
    """The node's audit key: keys the document digests of its entries. Never log it."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != AUDIT_KEY_BYTES:
            raise ValueError(f"an audit key is {AUDIT_KEY_BYTES} bytes")

    @classmethod
    def generate(cls) -> AuditKey:
        """A fresh random key (``imi-gateway init``; the default of test runtimes)."""
        return cls(secrets.token_bytes(AUDIT_KEY_BYTES))

    def digest(self, document: bytes) -> str:
        """:func:`document_digest` of ``document`` under this key."""
        return document_digest(self.secret, document)


def node_actor(node_id: str) -> str:
    """The actor of an entry that a node wrote on its own account: ``node:<NODE_ID>``."""
    return f"node:{node_id}"


#: The actor of configuration, trust and authority changes made with ``imi-gateway`` commands.
OPERATOR_ACTOR = "operator"

#: Separates the refusal code from the refused document's message id in a REFUSED entry.
REFUSAL_SEPARATOR = "/"


def refusal_message(code: str, message_id: str = "") -> str:
    """The ``message`` field of a REFUSED entry: ``CODE`` or ``CODE/MESSAGE_ID``.

    An entry has no field of its own for the refusal's error code, so a
    REFUSED entry carries it first in its message field (docs/audit.md);
    message ids cannot contain ``/`` (schemas/common.xsd), so it parses back
    unambiguously with :func:`parse_refusal`.
    """
    return f"{code}{REFUSAL_SEPARATOR}{message_id}" if message_id else code


def parse_refusal(message: str) -> tuple[str, str]:
    """``(code, message id)`` of a REFUSED entry's message field (see :func:`refusal_message`)."""
    code, _, message_id = message.partition(REFUSAL_SEPARATOR)
    return code, message_id


@dataclass(frozen=True)
class Record:
    """An event to append: an entry before it gets its number, time and chain link."""

    event: str
    actor: str
    exchange_id: str = ""
    message_id: str = ""
    digest: str = ""


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An export time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) as an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One audit log entry (metadata only: ids, codes, digests and times)."""

    seq: int
    at: datetime
    event: str
    actor: str
    exchange_id: str
    message_id: str
    digest: str
    prev: str


def entry_bytes(entry: Entry) -> bytes:
    """The canonical encoding of ``entry``: each field UTF-8, prefixed by its 4-byte length."""
    fields = (
        _ENCODING_TAG,
        str(entry.seq).encode("ascii"),
        _utc_text(entry.at).encode("ascii"),
        entry.event.encode("utf-8"),
        entry.actor.encode("utf-8"),
        entry.exchange_id.encode("utf-8"),
        entry.message_id.encode("utf-8"),
        entry.digest.encode("ascii"),
        entry.prev.encode("ascii"),
    )
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def entry_hash(entry: Entry) -> str:
    """The entry's hash: SHA-256 (hex) of :func:`entry_bytes`; the next entry's ``prev``."""
    return sha256_hex(entry_bytes(entry))


def next_entry(
    prev: Entry | None,
    *,
    at: datetime,
    event: str,
    actor: str,
    exchange_id: str = "",
    message_id: str = "",
    digest: str = "",
) -> Entry:
    """The entry that follows ``prev`` (or entry 1 when ``prev`` is None)."""
    return Entry(
        seq=1 if prev is None else prev.seq + 1,
        at=at,
        event=event,
        actor=actor,
        exchange_id=exchange_id,
        message_id=message_id,
        digest=digest,
        prev=GENESIS if prev is None else entry_hash(prev),
    )


# --- Merkle tree (RFC 6962) ---------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class MerkleTree:
    """The RFC 6962 tree over leaf hashes; subtree heads are computed once each.

    So the tree head and the inclusion paths of all N leaves cost O(N log N)
    together (an export proves every entry it holds).
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._leaves = list(leaves)
        self._heads: dict[tuple[int, int], bytes] = {}

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self._leaves[lo]
        head = self._heads.get((lo, hi))
        if head is None:
            k = _split(hi - lo)
            head = _node(self._mth(lo, lo + k), self._mth(lo + k, hi))
            self._heads[(lo, hi)] = head
        return head

    def root(self) -> str:
        """The tree head (hex); the hash of the empty string for no leaves."""
        if not self._leaves:
            return sha256_hex(b"")
        return self._mth(0, len(self._leaves)).hex()

    def path(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index`` (0-based), nearest sibling first."""
        path: list[bytes] = []
        lo, hi = 0, len(self._leaves)
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path


def merkle_root(leaves: Sequence[bytes]) -> str:
    """The tree head (hex) over leaf hashes ``leaves`` (entries 1..N in order)."""
    return MerkleTree(leaves).root()


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The RFC 6962 audit path of leaf ``index`` (0-based) in the tree over ``leaves``."""
    return MerkleTree(leaves).path(index)


def path_root(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> str | None:
    """The root (hex) an inclusion path leads to (RFC 9162 2.1.3.2), or None if it cannot fit."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r.hex() if sn == 0 else None


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the Merkle root over entries 1..size, made at ``at``."""

    size: int
    root: str
    at: datetime


def checkpoint(entries: Sequence[Entry], at: datetime) -> Checkpoint:
    """The checkpoint over ``entries`` (which must be entries 1..N in order)."""
    return Checkpoint(len(entries), merkle_root([leaf_hash(entry_bytes(e)) for e in entries]), at)


# --- export -------------------------------------------------------------------------------


def _q(name: str) -> str:
    return f"{{{AUDIT_NS}}}{name}"


def build_export(
    node_id: str,
    all_entries: Sequence[Entry],
    selected: Sequence[int],
    *,
    at: datetime,
    contiguous: bool,
    stored_hashes: Sequence[str] | None = None,
) -> etree._Element:
    """The unsigned export tree of the entries numbered ``selected`` (ascending).

    ``all_entries`` are entries 1..N (the checkpoint covers them all; each
    exported entry carries its inclusion path). ``contiguous`` says the
    selection is a range with no gaps (a time range), so a missing entry is
    detectable; an exchange's entries are not contiguous. ``stored_hashes``
    are the hashes the store recorded when each entry was appended (entry
    ``seq`` at index ``seq - 1``): exported as they are, so a row changed
    later in the database shows as a modified entry.
    """
    tree = MerkleTree([leaf_hash(entry_bytes(e)) for e in all_entries])
    nsmap: Any = {None: AUDIT_NS}  # lxml-stubs do not allow the None (default) prefix
    root = etree.Element(_q("AuditExport"), nsmap=nsmap)
    root.set("version", "1")
    root.set("node", node_id)
    root.set("exportedAt", _utc_text(at))
    root.set("contiguous", "true" if contiguous else "false")
    if selected:
        root.set("firstSeq", str(selected[0]))
        root.set("lastSeq", str(selected[-1]))
    cp = etree.SubElement(root, _q("Checkpoint"))
    cp.set("size", str(len(all_entries)))
    cp.set("root", tree.root())
    cp.set("at", _utc_text(at))
    for seq in selected:
        e = all_entries[seq - 1]
        el = etree.SubElement(root, _q("Entry"))
        el.set("seq", str(e.seq))
        el.set("at", _utc_text(e.at))
        el.set("event", e.event)
        el.set("actor", e.actor)
        el.set("exchange", e.exchange_id)
        el.set("message", e.message_id)
        el.set("digest", e.digest)
        el.set("prev", e.prev)
        el.set("hash", entry_hash(e) if stored_hashes is None else stored_hashes[seq - 1])
        el.set("path", " ".join(p.hex() for p in tree.path(seq - 1)))
    return root


@cache
def _schema_path() -> str:
    with as_file(files("gateway.schemas").joinpath("audit.xsd")) as path:
        return str(path)


def _validate(root: etree._Element) -> None:
    schema = etree.XMLSchema(file=_schema_path())
    if not schema.validate(root):
        errors: Any = schema.error_log  # lxml-stubs do not type the error log's sequence API
        line = errors[0].line if len(errors) else 0
        raise AuditExportInvalid(f"the export does not validate against audit.xsd (line {line})")


@dataclass(frozen=True)
class VerifiedExport:
    """A verified export: its node, checkpoint and entries."""

    node_id: str
    checkpoint: Checkpoint
    entries: tuple[Entry, ...]


def _entry(el: etree._Element) -> tuple[Entry, str, list[bytes]]:
    g: Callable[[str], str] = lambda name: el.get(name) or ""  # noqa: E731
    entry = Entry(
        seq=int(g("seq")),
        at=parse_time(g("at")),
        event=g("event"),
        actor=g("actor"),
        exchange_id=g("exchange"),
        message_id=g("message"),
        digest=g("digest"),
        prev=g("prev"),
    )
    return entry, g("hash"), [bytes.fromhex(p) for p in g("path").split()]


def verify_export(data: bytes, certificate: x509.Certificate, *, now: datetime) -> VerifiedExport:
    """Check an export's signature, chain and checkpoint; raise on the FIRST bad entry.

    The checks, in order: the node signature against ``certificate`` alone
    (AUDIT_SIGNATURE_INVALID), the schema (AUDIT_EXPORT_INVALID), then entry by
    entry in document order: its place in the sequence (AUDIT_ENTRY_REORDERED,
    AUDIT_ENTRY_INSERTED, AUDIT_ENTRY_REMOVED), its hash
    (AUDIT_ENTRY_MODIFIED), its link to the entry before it when that entry is
    exported too (AUDIT_CHAIN_BROKEN) and its inclusion in the signed
    checkpoint (AUDIT_NOT_IN_CHECKPOINT). ``now`` is the time at which the
    certificate must be valid.
    """
    trust = certs.TrustStore.from_pem(pinned=[certs.dump_pem_certificate(certificate)], cas=[])
    try:
        root = verify(data, trust, now=now).root
    except GatewayError as exc:
        raise AuditSignatureInvalid(None, f"the node signature was refused ({exc.code})") from None
    _validate(root)
    cp_el = root.find(_q("Checkpoint"))
    assert cp_el is not None  # the schema requires it
    cp = Checkpoint(
        int(cp_el.get("size", "0")), cp_el.get("root", ""), parse_time(cp_el.get("at", ""))
    )
    contiguous = root.get("contiguous") == "true"
    parsed = [_entry(el) for el in root.iterfind(_q("Entry"))]
    declared_first = int(root.get("firstSeq", "0")) if parsed else 0
    declared_last = int(root.get("lastSeq", "0")) if parsed else 0
    present = {e.seq for e, _, _ in parsed}
    seen: set[int] = set()
    previous: tuple[Entry, str] | None = None
    for entry, stated_hash, path in parsed:
        seq = entry.seq
        if seq in seen or not declared_first <= seq <= declared_last or seq > cp.size:
            raise AuditEntryInserted(seq)
        if previous is not None and seq < previous[0].seq:
            raise AuditEntryReordered(seq)
        expected = declared_first if previous is None else previous[0].seq + 1
        if contiguous and seq != expected:
            if expected in present:
                raise AuditEntryReordered(seq)
            raise AuditEntryRemoved(expected)
        seen.add(seq)
        actual = entry_hash(entry)
        if actual != stated_hash:
            raise AuditEntryModified(seq)
        if previous is not None and previous[0].seq == seq - 1 and entry.prev != previous[1]:
            raise AuditChainBroken(seq)
        if seq == 1 and entry.prev != GENESIS:
            raise AuditChainBroken(seq)
        if path_root(seq - 1, cp.size, leaf_hash(entry_bytes(entry)), path) != cp.root:
            raise AuditNotInCheckpoint(seq)
        previous = (entry, actual)
    if contiguous and previous is not None and previous[0].seq != declared_last:
        raise AuditEntryRemoved(previous[0].seq + 1)
    return VerifiedExport(root.get("node", ""), cp, tuple(e for e, _, _ in parsed))


# --- consistency proofs (RFC 6962 2.1.2, verified as in RFC 9162 2.1.4.2) ------------------


class AuditConsistencyInvalid(InvalidInput):
    """A consistency proof between two audit checkpoints does not hold: the later log does not extend the earlier one."""

    code = "AUDIT_CONSISTENCY_INVALID"


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The RFC 6962 consistency proof from the tree over the first ``old_size`` leaves to all.

    Empty when ``old_size`` is 0 or equals ``len(leaves)`` (nothing to prove).
    """
    size = len(leaves)
    if not 0 <= old_size <= size:
        raise ValueError("old_size must be between 0 and the number of leaves")
    if old_size in (0, size):
        return []
    tree = MerkleTree(leaves)
    proof: list[bytes] = []

    def subproof(m: int, lo: int, hi: int, complete: bool) -> None:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(tree._mth(lo, hi))
            return
        k = _split(n)
        if m <= k:
            subproof(m, lo, lo + k, complete)
            proof.append(tree._mth(lo + k, hi))
        else:
            subproof(m - k, lo + k, hi, False)
            proof.append(tree._mth(lo, lo + k))

    subproof(old_size, 0, size, True)
    return proof


def verify_consistency(
    old_size: int, old_root: str, new_size: int, new_root: str, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``).

    Raises AUDIT_CONSISTENCY_INVALID otherwise: a node whose log of
    ``new_size`` entries does not start with the ``old_size`` entries it
    signed before has rewritten its history.
    """
    if old_size < 0 or new_size < old_size:
        raise AuditConsistencyInvalid("a checkpoint's size is smaller than an earlier one's")
    if old_size == 0:
        if proof:
            raise AuditConsistencyInvalid("a proof from the empty log must be empty")
        return
    if old_size == new_size:
        if proof or old_root != new_root:
            raise AuditConsistencyInvalid("two checkpoints of the same size differ")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a subtree head
        path.insert(0, bytes.fromhex(old_root))
    if not path:
        raise AuditConsistencyInvalid("the consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise AuditConsistencyInvalid("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr.hex() != old_root or sr.hex() != new_root:
        raise AuditConsistencyInvalid("the later checkpoint does not extend the earlier one")


def signed_export(
    node_id: str,
    all_entries: Sequence[Entry],
    stored_hashes: Sequence[str],
    selected: Sequence[int],
    *,
    at: datetime,
    by_exchange: bool,
    sign: Callable[[etree._Element], bytes],
) -> bytes:
    """The signed export document of ``selected`` (``imi-gateway audit export``, the console).

    A time range without gaps is marked contiguous (a missing entry is then
    detectable); the entries of one exchange are not.
    """
    contiguous = not by_exchange and all(b == a + 1 for a, b in itertools.pairwise(selected))
    tree = build_export(
        node_id, all_entries, selected, at=at, contiguous=contiguous, stored_hashes=stored_hashes
    )
    return sign(tree)
