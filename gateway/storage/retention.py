"""Retention purge in the store: erase a batch of due exchanges in one transaction.

Finding what is due is :func:`gateway.storage.exchanges.exchanges_due_for_erasure_txn`;
erasing one exchange is :func:`gateway.storage.exchanges.erase_exchange_txn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.core import dataprotect
from gateway.core.dataprotect import Sealer
from gateway.storage.errors import ExchangeErased
from gateway.storage.exchanges import erase_exchange_txn, exchange_data_key_txn
from gateway.storage.messages import body_aad
from gateway.storage.tables import messages

__all__ = ["ErasedExchange", "erase_exchanges_txn"]


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
