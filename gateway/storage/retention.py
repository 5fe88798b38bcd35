"""Retention in the store: erase a batch of due exchanges in one transaction; the blocked stage.

Finding what is due is :func:`gateway.storage.exchanges.exchanges_due_for_erasure_txn`;
:func:`erase_exchanges_txn` erases a batch set-based (one statement per table for
the whole batch, :func:`gateway.storage.exchanges.erase_exchanges_rows`, and
one multi-row insert of the batch's audit entries), so erasing costs well under
a millisecond an exchange and a batch holds the single SQLite writer briefly.

The optional blocked stage: :func:`exchanges_due_for_blocking_txn` and
:func:`block_exchanges_txn` mark closed exchanges' personal data as blocked
(``exchanges.blocked_at``, tracking stage ``personal_data_blocked``, an
audit entry); the one read of personal data on behalf of an authority,
:func:`gateway.storage.personal_data.read_personal_data_txn`, answers a
blocked exchange's bodies as erased. Only the purge still opens them (to
forget translations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from gateway.core import audit, dataprotect
from gateway.core.audit import Event, node_actor
from gateway.core.dataprotect import Sealer
from gateway.storage.audit import append_audit_records_txn, append_audit_txn
from gateway.storage.db import read_only
from gateway.storage.exchanges import erase_exchanges_rows
from gateway.storage.messages import body_aad
from gateway.storage.model import Stage
from gateway.storage.tables import exchange_keys, exchanges, messages
from gateway.storage.tracking import insert_tracking, tracking_row

__all__ = [
    "ErasedExchange",
    "block_exchanges_txn",
    "erase_exchanges_txn",
    "exchanges_due_for_blocking_txn",
]


@dataclass(frozen=True)
class ErasedExchange:
    """What erasing one exchange removed: counts, and (if asked) the bodies it held, for caches."""

    exchange_id: str
    messages: int
    #: The unsealed bodies the exchange held, read just before erasure (never log them).
    bodies: tuple[bytes, ...] = field(default=(), repr=False)


_KEYED_BODIES = (
    select(
        messages.c.exchange_id,
        messages.c.message_id,
        messages.c.body,
        exchange_keys.c.wrapped_data_key,
    )
    .join(exchange_keys, exchange_keys.c.exchange_id == messages.c.exchange_id)
    .where(
        messages.c.exchange_id.in_(bindparam("ids", expanding=True)),
        messages.c.body.is_not(None),
    )
)
_MESSAGE_COUNTS = (
    select(messages.c.exchange_id, func.count().label("messages"))
    .where(messages.c.exchange_id.in_(bindparam("ids", expanding=True)))
    .group_by(messages.c.exchange_id)
)


def erase_exchanges_txn(
    conn: Connection,
    exchange_ids: Sequence[str],
    *,
    now: datetime,
    node: str,
    sealer: Sealer | None = None,
    reason: str = "retention",
    actor: str | None = None,
) -> list[ErasedExchange]:
    """Erase a batch of exchanges in one transaction, with one statement per table.

    :func:`~gateway.storage.exchanges.erase_exchanges_rows` does the erasing;
    each exchange erased now gets an ``ERASED`` audit entry, appended for the
    whole batch with one insert (actor ``actor``, default the node) in this
    transaction. Unknown and already erased exchanges are skipped
    (idempotent). With ``sealer``, the bodies each exchange held are opened
    first and returned, so in-memory caches derived from them (machine
    translations) can be dropped.
    """
    ids = list(dict.fromkeys(exchange_ids))
    if not ids:
        return []
    bodies: dict[str, list[bytes]] = {}
    if sealer is not None:
        keys: dict[str, bytes] = {}
        for row in conn.execute(_KEYED_BODIES, {"ids": ids}):
            key = keys.get(row.exchange_id)
            if key is None:
                key = keys[row.exchange_id] = sealer.unwrap_key(
                    row.wrapped_data_key, row.exchange_id
                )
            body = dataprotect.open_sealed(key, row.body, body_aad(row.message_id))
            bodies.setdefault(row.exchange_id, []).append(body)
    counts = {
        row.exchange_id: int(row.messages) for row in conn.execute(_MESSAGE_COUNTS, {"ids": ids})
    }
    done = erase_exchanges_rows(conn, ids, now=now, node=node, reason=reason)
    who = actor or node_actor(node)
    append_audit_records_txn(
        conn, [audit.Record(Event.ERASED, who, exchange_id) for exchange_id in done], at=now
    )
    return [ErasedExchange(i, counts.get(i, 0), tuple(bodies.get(i, ()))) for i in done]


@read_only
def exchanges_due_for_blocking_txn(
    conn: Connection,
    *,
    closed_before: datetime,
    closed_since: datetime | None = None,
    area: str | None = None,
    exclude_areas: Sequence[str] = (),
    limit: int = 100,
) -> list[str]:
    """Ids of closed exchanges, neither blocked nor erased, closed before ``closed_before``
    (and at or after ``closed_since``: older ones are due for erasure, not blocking)."""
    query = select(exchanges.c.exchange_id).where(
        exchanges.c.erased_at.is_(None),
        exchanges.c.blocked_at.is_(None),
        exchanges.c.closed_at < closed_before,
    )
    if closed_since is not None:
        query = query.where(exchanges.c.closed_at >= closed_since)
    if area is not None:
        query = query.where(exchanges.c.area == area)
    if exclude_areas:
        query = query.where(exchanges.c.area.not_in(list(exclude_areas)))
    query = query.order_by(exchanges.c.closed_at, exchanges.c.exchange_id).limit(limit)
    return list(conn.execute(query).scalars())


def block_exchanges_txn(
    conn: Connection, exchange_ids: Sequence[str], *, now: datetime, node: str
) -> list[str]:
    """Block the personal data of these exchanges; the ids blocked now (idempotent).

    Each gets ``blocked_at``, the tracking stage ``personal_data_blocked`` and
    an audit entry, in this transaction.
    """
    blocked: list[str] = []
    for exchange_id in exchange_ids:
        done = conn.execute(
            update(exchanges)
            .where(
                exchanges.c.exchange_id == exchange_id,
                exchanges.c.blocked_at.is_(None),
                exchanges.c.erased_at.is_(None),
            )
            .values(blocked_at=now, updated_at=now)
        )
        if done.rowcount != 1:
            continue
        insert_tracking(
            conn,
            [tracking_row(exchange_id, Stage.PERSONAL_DATA_BLOCKED, at=now, node=node)],
        )
        append_audit_txn(
            conn, at=now, event=Event.BLOCKED, actor=f"node:{node}", exchange_id=exchange_id
        )
        blocked.append(exchange_id)
    return blocked
