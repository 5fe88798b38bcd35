"""Read-only queries the admin console shows (metadata only); the metrics refresher reads
the same ones, so that /metrics covers what the dashboard shows.

Everything else the console shows comes from the stores the CLI and the API
use (``outbox``, ``exchanges``, ``tracking``, ``audit``, ``messages``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from gateway.core.audit import Entry
from gateway.storage.audit import _entry
from gateway.storage.db import read_only
from gateway.storage.tables import audit_log, console_sessions, exchanges, outbox


@dataclass(frozen=True)
class PeerDelivery:
    """How sending to one peer goes: rows waiting after a failure, and the last error code."""

    peer_node: str
    retrying: int
    last_error: str | None
    last_sent_at: datetime | None


@read_only
def peer_delivery_txn(conn: Connection) -> dict[str, PeerDelivery]:
    """Per peer with outbox rows: rows waiting to be retried after a failure, last sent time."""
    retrying = {
        r.peer_node: (int(r.n), r.err)
        for r in conn.execute(
            select(
                outbox.c.peer_node,
                func.count().label("n"),
                func.max(outbox.c.last_error).label("err"),
            )
            .where(outbox.c.state.in_(("pending", "inflight")), outbox.c.attempts > 0)
            .group_by(outbox.c.peer_node)
        )
    }
    sent = {
        r.peer_node: r.at
        for r in conn.execute(
            select(outbox.c.peer_node, func.max(outbox.c.sent_at).label("at")).group_by(
                outbox.c.peer_node
            )
        )
    }
    return {
        peer: PeerDelivery(
            peer, retrying.get(peer, (0, None))[0], retrying.get(peer, (0, None))[1], sent.get(peer)
        )
        for peer in sorted(set(retrying) | set(sent))
    }


@read_only
def exchange_counts_txn(conn: Connection) -> dict[str, int]:
    """Exchanges per state."""
    rows = conn.execute(
        select(exchanges.c.state, func.count().label("n")).group_by(exchanges.c.state)
    )
    return {r.state: int(r.n) for r in rows}


@read_only
def active_sessions_txn(conn: Connection, *, now: datetime) -> int:
    """Console sessions not expired at ``now``."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(console_sessions)
            .where(console_sessions.c.expires_at > now)
        ).scalar_one()
    )


@read_only
def recent_audit_txn(
    conn: Connection,
    *,
    event: str | None = None,
    exchange_id: str | None = None,
    actor: str | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[Entry]:
    """Audit entries, newest first, filtered by event, exchange and actor; page with ``before_seq``."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if event:
        query = query.where(audit_log.c.event == event)
    if exchange_id:
        query = query.where(audit_log.c.exchange_id == exchange_id)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if before_seq is not None:
        query = query.where(audit_log.c.seq < before_seq)
    return [_entry(r) for r in conn.execute(query)]


__all__ = [
    "PeerDelivery",
    "active_sessions_txn",
    "exchange_counts_txn",
    "peer_delivery_txn",
    "recent_audit_txn",
]
