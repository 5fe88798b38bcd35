"""The store of signed audit checkpoints: this node's, its peers', and the conflicts caught.

* This node's: :func:`store_signed_checkpoint_txn` (once per size),
  :func:`newest_signed_checkpoint_txn`, and the time-stamp tokens
  (:func:`untimestamped_checkpoints_txn`, :func:`set_timestamp_txn`).
* Its peers': :func:`accept_peer_checkpoint_txn` takes the decision of
  :func:`gateway.core.audit_checkpoint.check_offered` against the newest
  checkpoint held from that peer and stores the offered one, or records the
  conflict (the offered signed bytes are the evidence), in one transaction.
  :func:`held_peer_checkpoint_txn`, :func:`peer_checkpoints_txn`,
  :func:`peer_conflicts_txn` read them back.

Only sizes, roots, times, signed checkpoint documents and tokens: no entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from gateway.core.audit import Checkpoint
from gateway.core.audit_checkpoint import (
    AuditCheckpointInconsistent,
    SignedCheckpoint,
    check_offered,
)
from gateway.storage.db import read_only
from gateway.storage.tables import (
    audit_peer_checkpoints,
    audit_peer_conflicts,
    audit_signed_checkpoints,
)


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: the tree head, its signed bytes, its token if any."""

    checkpoint: Checkpoint
    signed: bytes
    token: bytes | None


@dataclass(frozen=True)
class Conflict:
    """A checkpoint a peer sent that did not extend the one held from it."""

    peer: str
    detected_at: datetime
    code: str
    held_size: int
    offered_size: int
    offered_root: str
    signed: bytes


def _stored(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(Checkpoint(row.size, row.root, row.at), row.signed, row.tsa_token)


# --- this node's ----------------------------------------------------------------------------


def store_signed_checkpoint_txn(conn: Connection, cp: Checkpoint, signed: bytes) -> bool:
    """Keep this node's signed checkpoint ``cp`` (once per size); True if it was new."""
    known = conn.execute(
        select(audit_signed_checkpoints.c.size).where(audit_signed_checkpoints.c.size == cp.size)
    ).first()
    if known is not None:
        return False
    conn.execute(
        insert(audit_signed_checkpoints).values(
            size=cp.size, root=cp.root, at=cp.at, signed=signed, tsa_token=None
        )
    )
    return True


@read_only
def newest_signed_checkpoint_txn(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        select(audit_signed_checkpoints).order_by(audit_signed_checkpoints.c.size.desc()).limit(1)
    ).first()
    return None if row is None else _stored(row)


@read_only
def signed_checkpoint_txn(conn: Connection, size: int | None = None) -> StoredCheckpoint | None:
    """This node's signed checkpoint of ``size`` (None: the newest)."""
    if size is None:
        return newest_signed_checkpoint_txn(conn)
    row = conn.execute(
        select(audit_signed_checkpoints).where(audit_signed_checkpoints.c.size == size)
    ).first()
    return None if row is None else _stored(row)


@read_only
def untimestamped_checkpoints_txn(conn: Connection, limit: int) -> list[StoredCheckpoint]:
    """This node's checkpoints without a token, newest first."""
    rows = conn.execute(
        select(audit_signed_checkpoints)
        .where(audit_signed_checkpoints.c.tsa_token.is_(None))
        .order_by(audit_signed_checkpoints.c.size.desc())
        .limit(limit)
    )
    return [_stored(r) for r in rows]


def set_timestamp_txn(conn: Connection, size: int, token: bytes) -> None:
    conn.execute(
        update(audit_signed_checkpoints)
        .where(audit_signed_checkpoints.c.size == size)
        .values(tsa_token=token)
    )


# --- the peers' -----------------------------------------------------------------------------


@read_only
def held_peer_checkpoint_txn(conn: Connection, peer: str) -> StoredCheckpoint | None:
    """The newest checkpoint held from ``peer``."""
    row = conn.execute(
        select(audit_peer_checkpoints)
        .where(audit_peer_checkpoints.c.peer == peer)
        .order_by(audit_peer_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    return None if row is None else _stored(row)


def accept_peer_checkpoint_txn(
    conn: Connection,
    peer: str,
    offered: SignedCheckpoint,
    *,
    proof_from: int,
    proof: Sequence[bytes],
    token: bytes | None,
    now: datetime,
) -> AuditCheckpointInconsistent | None:
    """Decide on ``peer``'s offered checkpoint and store it; the conflict, if it is one.

    An inconsistent checkpoint is not raised here (that would roll back the
    evidence): it is recorded in ``audit_peer_conflicts`` and returned; the
    held one stays. Stale checkpoints and proofs from another size raise.
    """
    held = held_peer_checkpoint_txn(conn, peer)
    try:
        new = check_offered(
            held.checkpoint if held else None, offered.checkpoint, proof_from, proof
        )
    except AuditCheckpointInconsistent as conflict:
        cp = offered.checkpoint
        conn.execute(
            insert(audit_peer_conflicts).values(
                peer=peer,
                detected_at=now,
                code=conflict.code,
                held_size=held.checkpoint.size if held else 0,
                offered_size=cp.size,
                offered_root=cp.root,
                signed=offered.data,
            )
        )
        return conflict
    if new:
        cp = offered.checkpoint
        conn.execute(
            insert(audit_peer_checkpoints).values(
                peer=peer,
                size=cp.size,
                root=cp.root,
                at=cp.at,
                signed=offered.data,
                tsa_token=token,
                received_at=now,
            )
        )
    elif token is not None and held is not None and held.token is None:
        conn.execute(  # the same checkpoint again, now with its time-stamp
            update(audit_peer_checkpoints)
            .where(audit_peer_checkpoints.c.peer == peer)
            .where(audit_peer_checkpoints.c.size == offered.checkpoint.size)
            .values(tsa_token=token)
        )
    return None


@read_only
def peer_checkpoint_txn(
    conn: Connection, peer: str, size: int | None = None
) -> StoredCheckpoint | None:
    """The checkpoint of ``size`` held from ``peer`` (None: the newest)."""
    if size is None:
        return held_peer_checkpoint_txn(conn, peer)
    row = conn.execute(
        select(audit_peer_checkpoints)
        .where(audit_peer_checkpoints.c.peer == peer)
        .where(audit_peer_checkpoints.c.size == size)
    ).first()
    return None if row is None else _stored(row)


@read_only
def peer_checkpoints_txn(conn: Connection) -> dict[str, tuple[StoredCheckpoint, int]]:
    """Per peer: the newest checkpoint held, and how many are held."""
    query = select(audit_peer_checkpoints.c.peer, func.count()).group_by(
        audit_peer_checkpoints.c.peer
    )
    counts: dict[str, int] = {row[0]: row[1] for row in conn.execute(query)}
    out: dict[str, tuple[StoredCheckpoint, int]] = {}
    for peer in sorted(counts):
        held = held_peer_checkpoint_txn(conn, peer)
        if held is not None:
            out[peer] = (held, counts[peer])
    return out


@read_only
def peer_conflicts_txn(conn: Connection, peer: str | None = None) -> list[Conflict]:
    """The conflicts caught, oldest first (of one peer, or of all)."""
    query = select(audit_peer_conflicts).order_by(audit_peer_conflicts.c.id)
    if peer is not None:
        query = query.where(audit_peer_conflicts.c.peer == peer)
    return [
        Conflict(
            r.peer, r.detected_at, r.code, r.held_size, r.offered_size, r.offered_root, r.signed
        )
        for r in conn.execute(query)
    ]
