"""Node-signed audit checkpoints, their exchange between peers, and checks against exports.

Sans-IO. See docs/audit.md ("Checkpoints held by peers").

* An ``AuditCheckpoint`` document (schemas/audit-checkpoint.xsd) is a
  :class:`~gateway.core.audit.Checkpoint` (size, root, time) of a node's log,
  signed by the node (:func:`checkpoint_document`, read back by
  :func:`read_signed_checkpoint`).
* A node offers its newest one to each peer in a ``CheckpointOffer``
  (:class:`Offer`): the signed bytes, the RFC 6962 consistency proof from the
  size the peer holds (the peer says which in a ``HeldCheckpoint``), and the
  checkpoint's RFC 3161 time-stamp token when it has one.
* :func:`check_offered` is the peer's decision: a checkpoint that does not
  extend the one held (a rewritten history) is AUDIT_CHECKPOINT_INCONSISTENT.
* :func:`add_consistency` puts the proof from a peer-held checkpoint into an
  audit export before it is signed; :func:`check_export_against` lets an
  auditor prove the export extends what the peer saw.
* :func:`timestamp_imprint`: what an RFC 3161 token of a checkpoint covers
  (the SHA-256 of the signed checkpoint's exact bytes).
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import as_file, files
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.core import certs
from gateway.core.audit import (
    AUDIT_NS,
    AuditConsistencyInvalid,
    Checkpoint,
    _utc_text,
    parse_time,
    verify_consistency,
    verify_export,
)
from gateway.core.certs import TrustStore
from gateway.core.docxml import sha256_hex
from gateway.core.errors import AccessDenied, Conflict, GatewayError, InvalidInput
from gateway.core.signing import verify
from gateway.core.xmlparse import ParseLimits, parse_xml

#: An offer carries at most a 256 KiB token and a short proof: 1 MiB is plenty.
OFFER_LIMITS = ParseLimits(max_bytes=1024 * 1024, max_depth=8)


class AuditCheckpointInvalid(InvalidInput):
    """An audit checkpoint (or a checkpoint offer) is malformed, unsigned or not schema-valid."""

    code = "AUDIT_CHECKPOINT_INVALID"


class AuditCheckpointWrongNode(AccessDenied):
    """An audit checkpoint names (or is signed by) another node than the peer that sent it."""

    code = "AUDIT_CHECKPOINT_WRONG_NODE"


class AuditCheckpointStale(Conflict):
    """An offered audit checkpoint is older than the one held from that node; it is ignored."""

    code = "AUDIT_CHECKPOINT_STALE"


class AuditCheckpointProofMissing(Conflict):
    """An offered audit checkpoint's consistency proof does not start at the size held from that node."""

    code = "AUDIT_CHECKPOINT_PROOF_MISSING"


class AuditCheckpointInconsistent(Conflict):
    """An audit checkpoint does not extend the one held from the same node: that node rewrote its history."""

    code = "AUDIT_CHECKPOINT_INCONSISTENT"


class AuditCheckpointNotProven(InvalidInput):
    """An audit export cannot be compared with the given checkpoint: it holds no consistency proof from that checkpoint's size."""

    code = "AUDIT_CHECKPOINT_NOT_PROVEN"


def _q(name: str) -> str:
    return f"{{{AUDIT_NS}}}{name}"


_local = threading.local()


def _schema() -> etree.XMLSchema:
    """This thread's compiled schemas/audit-checkpoint.xsd."""
    schema: etree.XMLSchema | None = getattr(_local, "schema", None)
    if schema is None:
        with as_file(files("gateway.schemas").joinpath("audit-checkpoint.xsd")) as path:
            schema = etree.XMLSchema(file=str(path))
        _local.schema = schema
    return schema


def _validate(root: etree._Element, what: str) -> None:
    schema = _schema()
    if root.tag != _q(what) or not schema.validate(root):
        raise AuditCheckpointInvalid(f"the document is not a valid {what} (audit-checkpoint.xsd)")


def _new(name: str) -> etree._Element:
    nsmap: Any = {None: AUDIT_NS}  # lxml-stubs do not allow the None (default) prefix
    root = etree.Element(_q(name), nsmap=nsmap)
    root.set("version", "1")
    return root


def _hexes(text: str | None) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(p) for p in (text or "").split())


# --- the signed checkpoint ------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCheckpoint:
    """A node's checkpoint with the exact signed bytes it came in."""

    node_id: str
    checkpoint: Checkpoint
    data: bytes


def checkpoint_document(node_id: str, cp: Checkpoint) -> etree._Element:
    """The unsigned ``AuditCheckpoint`` of ``cp`` (the node signs it; size 0: the empty log)."""
    root = _new("AuditCheckpoint")
    root.set("node", node_id)
    root.set("size", str(cp.size))
    root.set("root", cp.root)
    root.set("at", _utc_text(cp.at))
    return root


def read_signed_checkpoint(
    data: bytes, trust: TrustStore, *, now: datetime, node_id: str | None = None
) -> SignedCheckpoint:
    """Verify a signed ``AuditCheckpoint`` against ``trust``; only its signed tree is read.

    With ``node_id``, the checkpoint must name that node and be signed by
    that node's certificate (AUDIT_CHECKPOINT_WRONG_NODE otherwise).
    """
    try:
        verified = verify(data, trust, now=now)
    except GatewayError as exc:
        raise AuditCheckpointInvalid(f"the checkpoint signature was refused ({exc.code})") from None
    root = verified.root
    _validate(root, "AuditCheckpoint")
    named = root.get("node", "")
    if node_id is not None and (named != node_id or verified.node_id != node_id):
        raise AuditCheckpointWrongNode("the checkpoint is not the sending node's own")
    cp = Checkpoint(
        int(root.get("size", "0")), root.get("root", ""), parse_time(root.get("at", ""))
    )
    return SignedCheckpoint(named, cp, data)


def timestamp_imprint(signed: bytes) -> bytes:
    """What an RFC 3161 token of a checkpoint covers: SHA-256 of its signed bytes."""
    return bytes.fromhex(sha256_hex(signed))


# --- the exchange between peers -------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A ``CheckpointOffer``: a signed checkpoint, the proof from ``proof_from``, a token."""

    signed: bytes
    proof_from: int = 0
    proof: tuple[bytes, ...] = ()
    token: bytes | None = None


def offer_document(offer: Offer) -> bytes:
    root = _new("CheckpointOffer")
    etree.SubElement(root, _q("Signed")).text = base64.b64encode(offer.signed).decode("ascii")
    if offer.proof_from:
        el = etree.SubElement(root, _q("Consistency"))
        el.set("from", str(offer.proof_from))
        el.text = " ".join(p.hex() for p in offer.proof)
    if offer.token is not None:
        etree.SubElement(root, _q("Timestamp")).text = base64.b64encode(offer.token).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def read_offer(data: bytes) -> Offer:
    """Parse (hardened) and validate a ``CheckpointOffer``; nothing in it is trusted yet."""
    root = parse_xml(data, OFFER_LIMITS)
    _validate(root, "CheckpointOffer")
    try:
        signed = base64.b64decode(root.findtext(_q("Signed")) or "", validate=True)
        token_text = root.findtext(_q("Timestamp"))
        token = None if token_text is None else base64.b64decode(token_text, validate=True)
    except binascii.Error:
        raise AuditCheckpointInvalid("Signed or Timestamp is not base64") from None
    consistency = root.find(_q("Consistency"))
    if consistency is None:
        return Offer(signed, token=token)
    return Offer(signed, int(consistency.get("from", "0")), _hexes(consistency.text), token)


def held_document(node_id: str, cp: Checkpoint | None) -> bytes:
    """The ``HeldCheckpoint`` answer: what this node holds of ``node_id`` (size 0: nothing)."""
    root = _new("HeldCheckpoint")
    root.set("node", node_id)
    root.set("size", str(cp.size if cp else 0))
    root.set("root", cp.root if cp else sha256_hex(b""))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def read_held(data: bytes) -> tuple[str, int, str]:
    """``(node, size, root)`` of a ``HeldCheckpoint`` answer."""
    root = parse_xml(data, OFFER_LIMITS)
    _validate(root, "HeldCheckpoint")
    return root.get("node", ""), int(root.get("size", "0")), root.get("root", "")


def check_offered(
    held: Checkpoint | None, offered: Checkpoint, proof_from: int, proof: Sequence[bytes]
) -> bool:
    """Decide on a peer's offered checkpoint given the one held from it; True if it is new.

    False: the same checkpoint again (nothing to store). Raises
    AUDIT_CHECKPOINT_STALE for an older one (smaller and earlier),
    AUDIT_CHECKPOINT_PROOF_MISSING when the proof is not from the held size,
    and AUDIT_CHECKPOINT_INCONSISTENT when the offered log does not extend the
    held one: same size and another root, smaller but later, or a failing
    consistency proof.
    """
    if held is None:
        return True
    if offered.size == held.size:
        if offered.root != held.root:
            raise AuditCheckpointInconsistent("a checkpoint of the held size has another root")
        return False
    if offered.size < held.size:
        if offered.at <= held.at:
            raise AuditCheckpointStale("the offered checkpoint is older than the one held")
        raise AuditCheckpointInconsistent("the log is smaller than in the checkpoint held")
    if proof_from != held.size:
        raise AuditCheckpointProofMissing("the consistency proof must start at the held size")
    try:
        verify_consistency(held.size, held.root, offered.size, offered.root, proof)
    except AuditConsistencyInvalid:
        raise AuditCheckpointInconsistent(
            "the offered checkpoint does not extend the one held"
        ) from None
    return True


# --- exports proven against a peer-held checkpoint ----------------------------------------


def add_consistency(
    export: etree._Element, held: Checkpoint, proof: Sequence[bytes]
) -> etree._Element:
    """Put the proof from ``held`` (a checkpoint a peer holds) into an unsigned export."""
    el = etree.Element(_q("Consistency"))
    el.set("from", str(held.size))
    el.set("fromRoot", held.root)
    el.text = " ".join(p.hex() for p in proof)
    cp = export.find(_q("Checkpoint"))
    assert cp is not None  # build_export always writes it
    cp.addnext(el)
    return export


def check_export_against(
    export: bytes, certificate: x509.Certificate, peer_checkpoint: bytes, *, now: datetime
) -> Checkpoint:
    """Prove that a verified export extends ``peer_checkpoint`` (the node's, as a peer holds it).

    Both must be signed by ``certificate``. The export's checkpoint must be the
    peer's (same size, same root) or extend it by the ``Consistency`` proof in
    the export (AUDIT_CHECKPOINT_NOT_PROVEN without one from that size;
    AUDIT_CHECKPOINT_INCONSISTENT when it fails). Returns the peer checkpoint.
    """
    result = verify_export(export, certificate, now=now)
    trust = certs.TrustStore.from_pem(pinned=[certs.dump_pem_certificate(certificate)], cas=[])
    peer = read_signed_checkpoint(peer_checkpoint, trust, now=now).checkpoint
    mine = result.checkpoint
    if peer.size > mine.size:
        raise AuditCheckpointNotProven("the peer's checkpoint is newer than the export")
    proof: tuple[bytes, ...] = ()
    if 0 < peer.size < mine.size:  # every log extends the empty one
        signed_root = verify(export, trust, now=now).root  # read only the signed tree
        el = signed_root.find(_q("Consistency"))
        if el is None or el.get("from") != str(peer.size):
            raise AuditCheckpointNotProven(
                "export it with --consistent-with the peer's checkpoint file"
            )
        proof = _hexes(el.text)
    try:
        verify_consistency(peer.size, peer.root, mine.size, mine.root, proof)
    except AuditConsistencyInvalid:
        raise AuditCheckpointInconsistent(
            "the export's log does not extend the checkpoint the peer holds"
        ) from None
    return peer
