"""The checkpoint sub-commands of ``imi-gateway audit`` (registered by ``commands/audit.py``).

* ``audit checkpoint NODE_DIR -o FILE``: sign a checkpoint now if the log
  grew, and write this node's newest signed checkpoint (and its RFC 3161
  token with ``--token``);
* ``audit peers NODE_DIR``: the checkpoints this node holds of each peer,
  and the conflicts caught (exit status 1 when there is one);
* ``audit peer-checkpoint NODE_DIR --peer ID -o FILE``: write the signed
  checkpoint held from a peer (an auditor checks that peer's export with it:
  ``audit verify EXPORT --cert PEER_CERT --checkpoint FILE``);
* ``audit timestamp CHECKPOINT --token TOKEN --tsa-cert PEM``: check an RFC
  3161 token over a checkpoint file, offline.

Also the helpers behind ``audit export --consistent-with`` and ``audit
verify --checkpoint``. See docs/audit.md.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from lxml import etree

from gateway import keystore
from gateway.adapters.timestamping import verify_token
from gateway.commands.queue import _database
from gateway.core import audit, certs
from gateway.core.audit_checkpoint import (
    add_consistency,
    check_export_against,
    checkpoint_document,
    read_signed_checkpoint,
    timestamp_imprint,
)
from gateway.core.errors import GatewayError, NotFound
from gateway.core.signing import Signer
from gateway.storage.audit import audit_log_txn
from gateway.storage.audit_checkpoints import (
    newest_signed_checkpoint_txn,
    peer_checkpoint_txn,
    peer_checkpoints_txn,
    peer_conflicts_txn,
    store_signed_checkpoint_txn,
)


class PeerConflictsFound(GatewayError):
    """A peer sent audit checkpoints that do not extend the one held from it (``audit peers``)."""

    code = "AUDIT_PEER_CONFLICTS"
    http_status = 409


def _write(path: str, data: bytes) -> None:
    keystore.atomic_write(Path(path).absolute(), data, 0o644)


def _own_trust(node_dir: str) -> certs.TrustStore:
    cert = keystore.load_node_keys(node_dir).signing.certificate
    return certs.TrustStore.from_pem(pinned=[certs.dump_pem_certificate(cert)], cas=[])


def _checkpoint(args: argparse.Namespace) -> int:
    db, node_id = _database(args.node_dir)
    try:
        entries = db.run_txn_sync(audit_log_txn)
        newest = db.run_txn_sync(newest_signed_checkpoint_txn)
        if newest is None or newest.checkpoint.size < len(entries):
            keys = keystore.load_node_keys(args.node_dir)
            cp = audit.checkpoint(entries, datetime.now(UTC))
            signed = Signer(keys.signing.key, keys.signing.certificate).sign(
                checkpoint_document(node_id, cp)
            )
            db.run_txn_sync(store_signed_checkpoint_txn, cp, signed)
            newest = db.run_txn_sync(newest_signed_checkpoint_txn)
    finally:
        db.stop()
    assert newest is not None  # just stored
    _write(args.output, newest.signed)
    print(f"checkpoint: size {newest.checkpoint.size} root {newest.checkpoint.root}")
    if args.token:
        if newest.token is None:
            print("no time-stamp token yet (none configured, or the TSA has not answered)")
        else:
            _write(args.token, newest.token)
            print(f"time-stamp token written to {args.token}")
    return 0


def _peers(args: argparse.Namespace) -> int:
    db, _ = _database(args.node_dir)
    try:
        held = db.run_txn_sync(peer_checkpoints_txn)
        conflicts = db.run_txn_sync(peer_conflicts_txn)
    finally:
        db.stop()
    if not held:
        print("no checkpoint held from any peer")
    for peer, (stored, count) in held.items():
        cp = stored.checkpoint
        stamped = "time-stamped" if stored.token else "not time-stamped"
        print(
            f"{peer}: size {cp.size} root {cp.root} at {cp.at.isoformat()} "
            f"({stamped}; {count} held)"
        )
    for c in conflicts:
        print(
            f"CONFLICT {c.peer}: {c.code} at {c.detected_at.isoformat()}: offered size "
            f"{c.offered_size} root {c.offered_root} does not extend held size {c.held_size}"
        )
    if conflicts:
        raise PeerConflictsFound(
            f"{len(conflicts)} conflicting checkpoint(s); "
            "write one with: audit peer-checkpoint NODE_DIR --peer ID --conflict N"
        )
    return 0


def _peer_checkpoint(args: argparse.Namespace) -> int:
    db, _ = _database(args.node_dir)
    try:
        if args.conflict is not None:
            conflicts = db.run_txn_sync(peer_conflicts_txn, args.peer)
            if not 1 <= args.conflict <= len(conflicts):
                raise NotFound(f"no conflict {args.conflict} of peer {args.peer}")
            data, token = conflicts[args.conflict - 1].signed, None
        else:
            stored = db.run_txn_sync(peer_checkpoint_txn, args.peer, args.size)
            if stored is None:
                raise NotFound(f"no checkpoint of peer {args.peer} is held at that size")
            data, token = stored.signed, stored.token
    finally:
        db.stop()
    _write(args.output, data)
    print(f"checkpoint of {args.peer} written to {args.output}")
    if args.token and token is not None:
        _write(args.token, token)
        print(f"time-stamp token written to {args.token}")
    return 0


def _timestamp(args: argparse.Namespace) -> int:
    data = Path(args.checkpoint).read_bytes()
    token = Path(args.token).read_bytes()
    pinned = certs.load_pem_certificate(Path(args.tsa_cert).read_bytes())
    info = verify_token(token, timestamp_imprint(data), pinned=pinned)
    print(f"valid: time-stamped at {info.gen_time.isoformat()} under policy {info.policy}")
    print(f"by: {info.signer.subject.rfc4514_string()}")
    return 0


# --- used by commands/audit.py ----------------------------------------------------------------


def consistency_for_export(
    node_dir: str, export: etree._Element, entries: list[audit.Entry], checkpoint_file: str
) -> etree._Element:
    """Add to ``export`` the proof that this node's log extends ``checkpoint_file`` (its own)."""
    signed = Path(checkpoint_file).read_bytes()
    held = read_signed_checkpoint(
        signed, _own_trust(node_dir), now=datetime.now(UTC), node_id=export.get("node")
    ).checkpoint
    leaves = [audit.leaf_hash(audit.entry_bytes(e)) for e in entries]
    if held.size > len(leaves):
        raise NotFound("the checkpoint is larger than this node's log")
    if held.size == 0:
        return export  # every log extends the empty one: nothing to prove
    return add_consistency(export, held, audit.consistency_proof(held.size, leaves))


def verify_against_checkpoint(
    export: bytes, certificate: x509.Certificate, checkpoint_file: str, now: datetime
) -> str:
    """The line ``audit verify --checkpoint`` prints when the export extends the checkpoint."""
    cp = check_export_against(export, certificate, Path(checkpoint_file).read_bytes(), now=now)
    return f"consistent with the checkpoint of size {cp.size} root {cp.root} ({checkpoint_file})"


def register_checkpoint_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``checkpoint``, ``peers``, ``peer-checkpoint`` and ``timestamp`` to ``audit``."""
    cp = sub.add_parser(
        "checkpoint",
        help="sign a checkpoint of the log now and write the newest one",
        description=(
            "Sign a checkpoint (the Merkle tree head of the audit log) if the log grew since "
            "the newest one (or of the empty log, if none was signed yet), and write the "
            "newest signed checkpoint to FILE."
        ),
    )
    cp.add_argument("node_dir", metavar="NODE_DIR")
    cp.add_argument("-o", "--output", required=True, metavar="FILE")
    cp.add_argument("--token", metavar="FILE", help="also write its RFC 3161 token, if any")
    cp.set_defaults(func=_checkpoint)

    peers = sub.add_parser(
        "peers",
        help="the checkpoints held of each peer, and conflicts caught",
        description=(
            "List the newest audit checkpoint this node holds of each peer, and every "
            "checkpoint a peer sent that did not extend the one held (a rewritten history)."
        ),
        epilog="exit status: 0 no conflict; 1 a peer sent a conflicting checkpoint",
    )
    peers.add_argument("node_dir", metavar="NODE_DIR")
    peers.set_defaults(func=_peers)

    pc = sub.add_parser(
        "peer-checkpoint",
        help="write the signed checkpoint held from a peer",
        description=(
            "Write the signed audit checkpoint this node holds of peer ID (the newest, or "
            "of --size N, or the conflicting one --conflict N), for an auditor to check "
            "that peer's export with 'audit verify --checkpoint'."
        ),
    )
    pc.add_argument("node_dir", metavar="NODE_DIR")
    pc.add_argument("--peer", required=True, metavar="ID")
    which = pc.add_mutually_exclusive_group()
    which.add_argument("--size", type=int, metavar="N", help="the checkpoint of this size")
    which.add_argument("--conflict", type=int, metavar="N", help="conflict N (audit peers)")
    pc.add_argument("-o", "--output", required=True, metavar="FILE")
    pc.add_argument("--token", metavar="FILE", help="also write its RFC 3161 token, if any")
    pc.set_defaults(func=_peer_checkpoint)

    ts = sub.add_parser(
        "timestamp",
        help="check an RFC 3161 token over a checkpoint file, offline",
        description=(
            "Check that TOKEN is a valid RFC 3161 time-stamp over the checkpoint file, "
            "signed by the TSA certificate given (or one it issued)."
        ),
    )
    ts.add_argument("checkpoint", metavar="CHECKPOINT")
    ts.add_argument("--token", required=True, metavar="TOKEN")
    ts.add_argument("--tsa-cert", required=True, metavar="PEM", help="the TSA's certificate or CA")
    ts.set_defaults(func=_timestamp)
