"""Leased queues in tables: one way to claim, put back and dead-letter rows (outbox, push).

Two tables are queues worked by :class:`gateway.service.leased_queue.LeasedQueueWorker`:
the outbox (rows to send to a peer) and the push deliveries (rows to POST to
a national system's callback). Both have the same states -- ``pending``
(due at ``next_attempt_at``) → ``inflight`` (claimed, leased until
``lease_until``) → done, back to ``pending`` (failed; the caller's backoff)
or ``dead`` -- and the same fencing: each claim increments ``attempts``, and
putting a row back or dead-lettering it only changes a row still held by the
same claim. A :class:`LeasedTable` names the columns of one table; the
functions here work on either.

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (claimers in several
processes get disjoint rows) and the ``BEGIN IMMEDIATE`` write lock on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, and_, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import KeyedColumnElement

#: How long a claimed row stays leased to its claimer (a crash releases it after this).
LEASE = timedelta(seconds=120)
#: How often an idle worker looks at its queue anyway (another process may have added rows).
IDLE_POLL_SECONDS = 5.0


class Claimed(Protocol):
    """A claimed row: its key and the claim's ``attempts`` (the fencing token)."""

    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True)
class LeasedTable:
    """The columns that make ``table`` a leased queue."""

    table: Table
    #: The primary key column's name (``id``, ``seq``).
    key: str
    #: The state column's name (``state``, ``push_state``).
    state: str
    #: The column a dead row's reason goes to.
    dead_reason: str

    def column(self, name: str) -> KeyedColumnElement[Any]:
        return self.table.c[name]

    def key_of(self, item: Any) -> int:
        return int(getattr(item, self.key))


def claim_txn(
    conn: Connection,
    queue: LeasedTable,
    *where: ColumnElement[bool],
    order_by: Sequence[KeyedColumnElement[Any]],
    now: datetime,
    lease: timedelta,
    limit: int,
    returning: Sequence[KeyedColumnElement[Any]],
) -> tuple[list[int], dict[int, Row[Any]], datetime]:
    """Claim up to ``limit`` due rows matching ``where`` in ``order_by`` order.

    Due: ``pending`` with ``next_attempt_at <= now``, or ``inflight`` whose
    lease has expired. Returns the claimed keys in order, the ``returning``
    columns (plus ``attempts``) of each, and the lease's end.
    """
    t, state, key = queue.table, queue.column(queue.state), queue.column(queue.key)
    due = or_(
        and_(state == "pending", t.c.next_attempt_at <= now),
        and_(state == "inflight", t.c.lease_until <= now),
    )
    query = select(key).where(due, *where).order_by(*order_by).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    keys = [int(k) for k in conn.execute(query).scalars()]
    if not keys:
        return [], {}, now + lease
    lease_until = now + lease
    rows = conn.execute(
        update(t)
        .where(key.in_(keys))
        .values({queue.state: "inflight", "lease_until": lease_until, "attempts": t.c.attempts + 1})
        .returning(key, t.c.attempts, *returning)
    )
    return keys, {int(getattr(r, queue.key)): r for r in rows}, lease_until


def _fenced(queue: LeasedTable, item: Claimed) -> list[ColumnElement[bool]]:
    return [
        queue.column(queue.key) == queue.key_of(item),
        queue.column(queue.state) == "inflight",
        queue.table.c.attempts == item.attempts,
    ]


def mark_failed_txn(
    conn: Connection,
    queue: LeasedTable,
    items: Sequence[Claimed],
    *,
    error_code: str,
    next_attempt_at: datetime,
) -> int:
    """Put claimed rows back to ``pending`` until ``next_attempt_at`` (the caller's back-off).

    ``error_code`` is a stable code, never a message. Rows whose claim was
    superseded are left alone. Returns the number of rows changed.
    """
    changed = 0
    for item in items:
        result = conn.execute(
            update(queue.table)
            .where(*_fenced(queue, item))
            .values(
                {
                    queue.state: "pending",
                    "lease_until": None,
                    "next_attempt_at": next_attempt_at,
                    "last_error": error_code,
                }
            )
        )
        changed += int(result.rowcount)
    return changed


def mark_dead_txn(
    conn: Connection,
    queue: LeasedTable,
    items: Sequence[Claimed],
    *,
    reason: str,
    returning: Sequence[KeyedColumnElement[Any]] = (),
) -> list[Row[Any]]:
    """Give up on claimed rows (fenced): state ``dead`` with ``reason`` (a code).

    Returns the ``returning`` columns of each row changed.
    """
    updated: list[Row[Any]] = []
    for item in items:
        row = conn.execute(
            update(queue.table)
            .where(*_fenced(queue, item))
            .values({queue.state: "dead", "lease_until": None, queue.dead_reason: reason})
            .returning(queue.column(queue.key), *returning)
        ).first()
        if row is not None:
            updated.append(row)
    return updated


__all__ = [
    "IDLE_POLL_SECONDS",
    "LEASE",
    "LeasedTable",
    "claim_txn",
    "mark_dead_txn",
    "mark_failed_txn",
]
