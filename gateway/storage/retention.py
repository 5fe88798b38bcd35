"""Retention in the store: erase a batch of due exchanges in one transaction; the blocked stage.

Finding what is due is :func:`gateway.storage.exchanges.exchanges_due_for_erasure_txn`;
erasing one exchange is :func:`gateway.storage.exchanges.erase_exchange_txn`.

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

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from gateway.core import dataprotect
from gateway.core.audit import Event
from gateway.core.dataprotect import Sealer
from gateway.storage.audit import append_audit_txn
from gateway.storage.db import read_only
from gateway.storage.errors import ExchangeErased
from gateway.storage.exchanges import erase_exchange_txn, exchange_data_key_txn
from gateway.storage.messages import body_aad
from gateway.storage.model import Stage
from gateway.storage.tables import exchanges, messages
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


def erase_exchanges_txn(
    conn: Connection,
    exchange_ids: Sequence[str],
    *,
    now: datetime,
    node: str,
    sealer: Sealer | None = None,
    reason: str = "retention",
) -> list[ErasedExchange]:
    """Erase a batch of exchanges in one transaction (:func:`erase_exchange_txn` each).

    Already erased exchanges are skipped (idempotent). With ``sealer``, the
    bodies each exchange held are opened first and returned, so in-memory
    caches derived from them (machine translations) can be dropped.
    """
    erased: list[ErasedExchange] = []
    for exchange_id in exchange_ids:
        rows = conn.execute(
            select(messages.c.message_id, messages.c.body).where(
                messages.c.exchange_id == exchange_id
            )
        ).all()
        bodies: tuple[bytes, ...] = ()
        if sealer is not None and any(r.body is not None for r in rows):
            try:
                key = exchange_data_key_txn(conn, exchange_id, sealer=sealer)
            except ExchangeErased:
                key = None
            if key is not None:
                bodies = tuple(
                    dataprotect.open_sealed(key, r.body, body_aad(r.message_id))
                    for r in rows
                    if r.body is not None
                )
        if erase_exchange_txn(conn, exchange_id, now=now, node=node, reason=reason):
            erased.append(ErasedExchange(exchange_id, len(rows), bodies))
    return erased


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
