"""Outbox store: per-peer queue of messages to send, with leases, retries and dead letters.

Row states: ``pending`` (due at ``next_attempt_at``) → ``inflight`` (claimed,
leased until ``lease_until``) → ``sent`` (the peer's receipt is recorded) or
back to ``pending`` (failed; the caller computes the back-off) or ``dead``
(gave up; an operator may retry it). A lease that expires (the worker died)
makes the row claimable again.

Claiming, putting back and dead-lettering (fenced by ``attempts``) are the
leased-queue functions of :mod:`gateway.storage.leases`, shared with push
deliveries; this module adds what is the outbox's own (tracking rows, the
in-place requeue, dead-letter listing and retry, queue depth).

Order per exchange across processes (PostgreSQL): several processes of one
node claim the same peer's rows at once (``SKIP LOCKED`` gives them disjoint
rows), so each claim there takes only the *head* of each exchange: a row
none of whose earlier rows for the same peer and exchange is still pending
or in flight. A Reminder is therefore claimed only once its Request is sent
(or dead), whichever process holds the Request, and however long its lease
lasts. One process (SQLite) keeps the order by sending one envelope at a
time and needs no such condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from gateway.core import audit
from gateway.core.audit import Event, node_actor
from gateway.core.retry import ABANDON_REASONS
from gateway.storage.audit import append_audit_records_txn
from gateway.storage.db import read_only
from gateway.storage.leases import LEASE, LeasedTable, claim_txn, mark_dead_txn, mark_failed_txn
from gateway.storage.messages import exchange_ids_of
from gateway.storage.model import DeadLetter, OutboxItem, QueueDepth, Stage
from gateway.storage.notify import OUTBOX_CHANNEL, notify_txn
from gateway.storage.tables import messages, outbox
from gateway.storage.tracking import insert_tracking, tracking_row

_OPEN_STATES = ("pending", "inflight")


OUTBOX = LeasedTable(outbox, key="id", state="state", dead_reason="dead_reason")

_earlier = outbox.alias("earlier")
_earlier_message = messages.alias("earlier_message")
_this_message = messages.alias("this_message")


def _exchange_head() -> ColumnElement[bool]:
    """True for an outbox row with no earlier open row of its exchange to the same peer."""
    exchange_of_row = (
        select(_this_message.c.exchange_id)
        .where(_this_message.c.message_id == outbox.c.message_id)
        .correlate(outbox)
        .scalar_subquery()
    )
    return ~(
        select(_earlier.c.id)
        .join(_earlier_message, _earlier_message.c.message_id == _earlier.c.message_id)
        .where(
            _earlier.c.peer_node == outbox.c.peer_node,
            _earlier.c.id < outbox.c.id,
            _earlier.c.state.in_(_OPEN_STATES),
            _earlier_message.c.exchange_id == exchange_of_row,
        )
        .correlate(outbox)
        .exists()
    )


def claim_outbox_txn(
    conn: Connection,
    peer_node: str,
    *,
    now: datetime,
    lease: timedelta = LEASE,
    limit: int = 50,
) -> list[OutboxItem]:
    """Claim up to ``limit`` due rows for ``peer_node``, oldest due first, leased until ``now + lease``.

    Due: ``pending`` with ``next_attempt_at <= now``, or ``inflight`` whose
    lease has expired. On PostgreSQL only the head row of each exchange (see
    the module docstring).
    """
    where = [outbox.c.peer_node == peer_node]
    if conn.dialect.name == "postgresql":
        where.append(_exchange_head())
    ids, claimed, lease_until = claim_txn(
        conn,
        OUTBOX,
        *where,
        order_by=(outbox.c.next_attempt_at, outbox.c.id),
        now=now,
        lease=lease,
        limit=limit,
        returning=(outbox.c.message_id, outbox.c.created_at),
    )
    return [
        OutboxItem(
            id=row_id,
            message_id=claimed[row_id].message_id,
            peer_node=peer_node,
            attempts=claimed[row_id].attempts,
            lease_until=lease_until,
            created_at=claimed[row_id].created_at,
        )
        for row_id in ids
    ]


def _track(
    conn: Connection,
    updated: Sequence[Any],
    stage: Stage,
    *,
    now: datetime,
    node: str,
    detail: str | None,
    exchange_of: Mapping[str, str] | None = None,
) -> None:
    if exchange_of is None:
        exchange_of = exchange_ids_of(conn, [r.message_id for r in updated])
    insert_tracking(
        conn,
        (
            tracking_row(
                exchange_of[r.message_id],
                stage,
                at=now,
                node=node,
                message_id=r.message_id,
                detail=detail if detail is not None else r.peer_node,
            )
            for r in updated
        ),
    )


#: Run for every envelope a peer acknowledged: built once (SQLAlchemy reuses its
#: cache key and compiled form).
_MARK_SENT = (
    update(outbox)
    .where(
        outbox.c.id.in_(bindparam("ids", expanding=True)),
        outbox.c.state.in_(_OPEN_STATES),
    )
    .values(
        state="sent",
        sent_at=bindparam("now"),
        lease_until=None,
        last_error=None,
        peer_receipt_sha256=bindparam("receipt_sha256"),
    )
    .returning(outbox.c.message_id, outbox.c.peer_node)
)


def mark_outbox_sent_txn(
    conn: Connection,
    ids: Sequence[int | OutboxItem],
    *,
    peer_receipt_sha256: str,
    now: datetime,
    node: str,
    digests: Mapping[str, str] | None = None,
    receipt_digest: str = "",
) -> int:
    """Record that the peer acknowledged rows ``ids`` (ids or claimed items) with a receipt.

    ``peer_receipt_sha256`` is the hex SHA-256 of the receipt's bytes. Each
    row marked is recorded in the audit log: TRANSFERRED (actor this node,
    with ``digests[message_id]``, the keyed digest of the document sent) and
    RECEIPT (actor the peer, with ``receipt_digest``, the keyed digest of its
    receipt).

    Not fenced: once the peer holds the message, the row is sent whoever
    claimed it last. Dead rows stay dead. Returns the number of rows marked.
    """
    row_ids = [i.id if isinstance(i, OutboxItem) else i for i in ids]
    if not row_ids:
        return 0
    updated = conn.execute(
        _MARK_SENT, {"ids": row_ids, "now": now, "receipt_sha256": peer_receipt_sha256}
    ).all()
    exchange_of = exchange_ids_of(conn, [r.message_id for r in updated])
    _track(
        conn,
        updated,
        Stage.RECEIVED_BY_PEER,
        now=now,
        node=node,
        detail=None,
        exchange_of=exchange_of,
    )
    records: list[audit.Record] = []
    for r in updated:
        exchange_id = exchange_of[r.message_id]
        digest = (digests or {}).get(r.message_id, "")
        records.append(
            audit.Record(Event.TRANSFERRED, node_actor(node), exchange_id, r.message_id, digest)
        )
        records.append(
            audit.Record(
                Event.RECEIPT, node_actor(r.peer_node), exchange_id, r.message_id, receipt_digest
            )
        )
    append_audit_records_txn(conn, records, at=now)
    return len(updated)


def mark_outbox_failed_txn(
    conn: Connection,
    items: Sequence[OutboxItem],
    *,
    error_code: str,
    next_attempt_at: datetime,
) -> int:
    """Put claimed rows back to ``pending`` until ``next_attempt_at`` (see :func:`mark_failed_txn`)."""
    return mark_failed_txn(
        conn, OUTBOX, items, error_code=error_code, next_attempt_at=next_attempt_at
    )


def requeue_in_place_txn(
    conn: Connection, items: Sequence[OutboxItem], *, error_code: str, now: datetime
) -> int:
    """Put claimed rows back at their original place in the queue (due at their creation).

    Claims take due rows by (next_attempt_at, id); a row queued with
    next_attempt_at = created_at and put back the same way never falls behind
    rows queued after it. The sender's own backoff decides when to claim again.
    """
    return sum(
        mark_outbox_failed_txn(
            conn, [item], error_code=error_code, next_attempt_at=item.created_at or now
        )
        for item in items
    )


def release_leases_txn(conn: Connection, peer_node: str, *, now: datetime) -> int:
    """Make ``peer_node``'s in-flight rows claimable now.

    Only for a database used by one gateway process (SQLite): at start-up the
    claimant of every lease is known to be gone.
    """
    result = conn.execute(
        update(outbox)
        .where(
            outbox.c.peer_node == peer_node,
            outbox.c.state == "inflight",
            outbox.c.lease_until > now,
        )
        .values(lease_until=now)
    )
    return int(result.rowcount)


def mark_outbox_dead_txn(
    conn: Connection,
    items: Sequence[OutboxItem],
    *,
    reason: str,
    now: datetime,
    node: str,
) -> int:
    """Give up on claimed rows: state ``dead`` with ``reason`` (a code), plus tracking rows."""
    updated = mark_dead_txn(
        conn, OUTBOX, items, reason=reason, returning=(outbox.c.message_id, outbox.c.peer_node)
    )
    _track(conn, updated, Stage.DEAD_LETTER, now=now, node=node, detail=reason)
    return len(updated)


@read_only
def dead_letters_txn(
    conn: Connection,
    *,
    peer_node: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead-lettered rows in id order after ``after_id``, optionally of one peer."""
    query = (
        select(
            outbox.c.id,
            outbox.c.message_id,
            messages.c.exchange_id,
            messages.c.document_type,
            outbox.c.peer_node,
            outbox.c.attempts,
            outbox.c.last_error,
            outbox.c.dead_reason,
            outbox.c.created_at,
        )
        .join(messages, messages.c.message_id == outbox.c.message_id)
        .where(outbox.c.state == "dead", outbox.c.id > after_id, _not_abandoned())
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if peer_node is not None:
        query = query.where(outbox.c.peer_node == peer_node)
    return [DeadLetter(**r._asdict()) for r in conn.execute(query)]


def retry_dead_letters_txn(
    conn: Connection,
    ids: Sequence[int] | None = None,
    *,
    peer_node: str | None = None,
    now: datetime,
    node: str,
) -> int:
    """Requeue dead letters (by id, by peer, or all): pending now, attempts reset to 0.

    Rows whose exchange was erased stay dead (there is nothing left to send).
    Returns the number of rows requeued.
    """
    condition = [
        outbox.c.state == "dead",
        _not_abandoned(),
        outbox.c.message_id.in_(select(messages.c.message_id).where(messages.c.body.is_not(None))),
    ]
    if ids is not None:
        if not ids:
            return 0
        condition.append(outbox.c.id.in_(list(ids)))
    if peer_node is not None:
        condition.append(outbox.c.peer_node == peer_node)
    updated = conn.execute(
        update(outbox)
        .where(*condition)
        .values(
            state="pending",
            attempts=0,
            next_attempt_at=now,
            lease_until=None,
            dead_reason=None,
        )
        .returning(outbox.c.message_id, outbox.c.peer_node)
    ).all()
    _track(conn, updated, Stage.REQUEUED, now=now, node=node, detail=None)
    notify_txn(conn, OUTBOX_CHANNEL, (r.peer_node for r in updated))
    return len(updated)


@read_only
def outbox_depth_txn(conn: Connection) -> list[QueueDepth]:
    """Row counts per peer and state (pending, inflight, dead) with the oldest row's creation time."""
    rows = conn.execute(
        select(
            outbox.c.peer_node,
            outbox.c.state,
            func.count().label("n"),
            func.min(outbox.c.created_at).label("oldest"),
        )
        .where(outbox.c.state != "sent")
        .group_by(outbox.c.peer_node, outbox.c.state)
        .order_by(outbox.c.peer_node, outbox.c.state)
    )
    return [
        QueueDepth(
            peer_node=r.peer_node,
            state=r.state,
            count=int(r.n),
            oldest_created_at=r.oldest,
        )
        for r in rows
    ]


@read_only
def outbox_next_due_txn(conn: Connection, peer_node: str) -> datetime | None:
    """When the next row of ``peer_node`` becomes claimable (None: nothing queued)."""
    where = [outbox.c.peer_node == peer_node, outbox.c.state == "pending"]
    if conn.dialect.name == "postgresql":
        where.append(_exchange_head())  # a row behind its exchange's head waits for the head
    pending = conn.execute(select(func.min(outbox.c.next_attempt_at)).where(*where)).scalar()
    inflight = conn.execute(
        select(func.min(outbox.c.lease_until)).where(
            outbox.c.peer_node == peer_node, outbox.c.state == "inflight"
        )
    ).scalar()
    times = [t for t in (pending, inflight) if t is not None]
    return min(times) if times else None


@read_only
def outbox_peers_txn(conn: Connection) -> list[str]:
    """Peers with pending or in-flight rows (the queues to wake at start-up)."""
    rows = conn.execute(
        select(outbox.c.peer_node)
        .where(outbox.c.state.in_(_OPEN_STATES))
        .distinct()
        .order_by(outbox.c.peer_node)
    )
    return list(rows.scalars())


#: A dead letter an operator abandoned has ``dead_reason`` ``ABANDONED:<REASON>``.
ABANDONED_PREFIX = "ABANDONED:"
#: The reasons an operator may give for abandoning a dead letter (codes, never prose).


def _not_abandoned() -> Any:
    return or_(outbox.c.dead_reason.is_(None), ~outbox.c.dead_reason.startswith(ABANDONED_PREFIX))


def abandon_dead_letters_txn(
    conn: Connection, ids: Sequence[int], *, reason: str, now: datetime, node: str
) -> int:
    """Give up on dead letters for good: they stay dead with ``ABANDONED:<reason>``.

    They are no longer listed as dead letters nor requeued by a retry.
    ``reason`` is one of :data:`ABANDON_REASONS`. Returns the rows abandoned.
    """
    if reason not in ABANDON_REASONS:
        raise ValueError(f"reason: one of {', '.join(ABANDON_REASONS)}")
    if not ids:
        return 0
    updated = conn.execute(
        update(outbox)
        .where(outbox.c.state == "dead", _not_abandoned(), outbox.c.id.in_(list(ids)))
        .values(dead_reason=ABANDONED_PREFIX + reason)
        .returning(outbox.c.message_id, outbox.c.peer_node)
    ).all()
    _track(conn, updated, Stage.DEAD_LETTER, now=now, node=node, detail=ABANDONED_PREFIX + reason)
    return len(updated)
