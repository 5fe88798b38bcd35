"""Delivery store: received messages waiting for a national system, pulled by cursor or pushed.

Every received message gets one delivery row for its receiving authority.
``seq`` is the pull cursor: per authority, seqs become visible in increasing
order (see ``messages.lock_delivery_streams``), so a client that processed
everything up to ``seq`` N may acknowledge up to N without skipping a row
that was committed late.

* Pull: :func:`pending_deliveries_txn` lists unacknowledged rows after a
  cursor; :func:`ack_deliveries_txn` acknowledges everything up to a cursor.
* Push (``push_state`` not NULL): a leased queue like the outbox
  (:mod:`gateway.storage.leases`; :func:`claim_push_deliveries_txn`), then marked delivered, failed (the
  caller's back-off) or dead. A dead push stays available to pull.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from gateway.core import audit
from gateway.core.audit import AuditKey, Event
from gateway.core.dataprotect import Sealer
from gateway.storage.audit import append_audit_records_txn
from gateway.storage.db import read_only
from gateway.storage.leases import LEASE, LeasedTable, claim_txn, mark_dead_txn, mark_failed_txn
from gateway.storage.messages import exchange_ids_of
from gateway.storage.model import Delivery, DeliveryBacklog, PushItem, Stage
from gateway.storage.personal_data import PersonalData, read_personal_data_txn
from gateway.storage.tables import deliveries, messages
from gateway.storage.tracking import insert_tracking, tracking_row

_DELIVERY_COLUMNS = (
    deliveries.c.seq,
    deliveries.c.authority_id,
    deliveries.c.message_id,
    messages.c.exchange_id,
    messages.c.document_type,
    messages.c.sender_authority,
    messages.c.sha256,
    deliveries.c.created_at,
    deliveries.c.delivered_at,
    deliveries.c.push_state,
    deliveries.c.attempts,
    (messages.c.body.is_(None)).label("erased"),
)


def _delivery(row: Any) -> Delivery:
    values = row._asdict()
    values["erased"] = bool(values["erased"])
    return Delivery(**values)


@read_only
def pending_deliveries_txn(
    conn: Connection, authority_id: str, *, after: int = 0, limit: int = 100
) -> list[Delivery]:
    """Unacknowledged deliveries of ``authority_id`` with ``seq > after``, in seq order."""
    rows = conn.execute(
        select(*_DELIVERY_COLUMNS)
        .join(messages, messages.c.message_id == deliveries.c.message_id)
        .where(
            deliveries.c.authority_id == authority_id,
            deliveries.c.seq > after,
            deliveries.c.delivered_at.is_(None),
        )
        .order_by(deliveries.c.seq)
        .limit(limit)
    )
    return [_delivery(r) for r in rows]


def pull_deliveries_txn(
    conn: Connection,
    authority_id: str,
    *,
    ack_up_to: int,
    after: int,
    limit: int,
    sealer: Sealer,
    audit_key: AuditKey,
    now: datetime,
    node: str,
) -> tuple[list[Delivery], PersonalData]:
    """One pull in one transaction: acknowledge, list what follows, unseal it for the authority.

    Acknowledges up to ``ack_up_to`` (0: nothing) as :func:`ack_deliveries_txn`,
    then takes the pending deliveries after ``after`` and unseals their
    documents with :func:`~gateway.storage.personal_data.read_personal_data_txn`
    (each read audited, in this transaction).
    """
    if ack_up_to > 0:
        ack_deliveries_txn(conn, authority_id, ack_up_to, now=now, node=node)
    rows = pending_deliveries_txn(conn, authority_id, after=after, limit=limit)
    if not rows:
        return [], PersonalData()
    read = read_personal_data_txn(
        conn,
        authority_id,
        [r.message_id for r in rows],
        sealer=sealer,
        now=now,
        audit_key=audit_key,
    )
    return rows, read


def _track_delivered(conn: Connection, updated: Sequence[Any], *, now: datetime, node: str) -> None:
    if not updated:
        return
    exchange_of = exchange_ids_of(conn, [r.message_id for r in updated])
    insert_tracking(
        conn,
        (
            tracking_row(
                exchange_of[r.message_id],
                Stage.DELIVERED,
                at=now,
                node=node,
                message_id=r.message_id,
                detail=r.authority_id,
            )
            for r in sorted(updated, key=lambda r: r.seq)
        ),
    )
    append_audit_records_txn(
        conn,
        [
            audit.Record(Event.DELIVERED, r.authority_id, exchange_of[r.message_id], r.message_id)
            for r in sorted(updated, key=lambda r: r.seq)
        ],
        at=now,
    )


def ack_deliveries_txn(
    conn: Connection, authority_id: str, up_to: int, *, now: datetime, node: str
) -> int:
    """Acknowledge every unacknowledged delivery of ``authority_id`` with ``seq <= up_to``.

    Sets ``delivered_at``, stops any push still pending, and records a
    ``delivered`` tracking row and a DELIVERED audit entry (actor the
    authority) per message. Idempotent; returns the count.
    """
    updated = conn.execute(
        update(deliveries)
        .where(
            deliveries.c.authority_id == authority_id,
            deliveries.c.seq <= up_to,
            deliveries.c.delivered_at.is_(None),
        )
        .values(
            delivered_at=now,
            lease_until=None,
            push_state=case((deliveries.c.push_state.is_(None), None), else_=literal("sent")),
        )
        .returning(deliveries.c.seq, deliveries.c.message_id, deliveries.c.authority_id)
    ).all()
    _track_delivered(conn, updated, now=now, node=node)
    return len(updated)


PUSH = LeasedTable(deliveries, key="seq", state="push_state", dead_reason="last_error")


def claim_push_deliveries_txn(
    conn: Connection,
    authority_id: str | None = None,
    *,
    now: datetime,
    lease: timedelta = LEASE,
    limit: int = 50,
) -> list[PushItem]:
    """Claim due push deliveries (of one authority, or any), leased until ``now + lease``."""
    where: list[ColumnElement[bool]] = [deliveries.c.delivered_at.is_(None)]
    if authority_id is not None:
        where.append(deliveries.c.authority_id == authority_id)
    seqs, claimed, lease_until = claim_txn(
        conn,
        PUSH,
        *where,
        order_by=(deliveries.c.seq,),
        now=now,
        lease=lease,
        limit=limit,
        returning=(deliveries.c.authority_id, deliveries.c.message_id),
    )
    return [
        PushItem(
            seq=seq,
            authority_id=claimed[seq].authority_id,
            message_id=claimed[seq].message_id,
            attempts=claimed[seq].attempts,
            lease_until=lease_until,
        )
        for seq in seqs
    ]


def mark_push_delivered_txn(
    conn: Connection, seqs: Sequence[int | PushItem], *, now: datetime, node: str
) -> int:
    """Record that the national system accepted pushed deliveries (seqs or claimed items).

    Not fenced: the national system has the document, whoever pushed it.
    Adds a ``delivered`` tracking row and a DELIVERED audit entry per message;
    returns the count.
    """
    numbers = [s.seq if isinstance(s, PushItem) else s for s in seqs]
    if not numbers:
        return 0
    updated = conn.execute(
        update(deliveries)
        .where(deliveries.c.seq.in_(numbers), deliveries.c.delivered_at.is_(None))
        .values(push_state="sent", delivered_at=now, lease_until=None, last_error=None)
        .returning(deliveries.c.seq, deliveries.c.message_id, deliveries.c.authority_id)
    ).all()
    _track_delivered(conn, updated, now=now, node=node)
    return len(updated)


def mark_push_failed_txn(
    conn: Connection,
    items: Sequence[PushItem],
    *,
    error_code: str,
    next_attempt_at: datetime,
) -> int:
    """Put claimed pushes back to ``pending`` until ``next_attempt_at`` (see :func:`mark_failed_txn`)."""
    return mark_failed_txn(
        conn, PUSH, items, error_code=error_code, next_attempt_at=next_attempt_at
    )


def mark_push_dead_txn(conn: Connection, items: Sequence[PushItem], *, reason: str) -> int:
    """Stop pushing claimed deliveries (fenced by attempts); they stay available to pull."""
    return len(mark_dead_txn(conn, PUSH, items, reason=reason))


@read_only
def delivery_backlog_txn(conn: Connection) -> list[DeliveryBacklog]:
    """Unacknowledged deliveries per authority, with the oldest one's creation time."""
    rows = conn.execute(
        select(
            deliveries.c.authority_id,
            func.count().label("n"),
            func.min(deliveries.c.created_at).label("oldest"),
        )
        .where(deliveries.c.delivered_at.is_(None))
        .group_by(deliveries.c.authority_id)
        .order_by(deliveries.c.authority_id)
    )
    return [
        DeliveryBacklog(authority_id=r.authority_id, count=int(r.n), oldest_created_at=r.oldest)
        for r in rows
    ]
