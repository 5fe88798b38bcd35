"""Tracking store: the stages an exchange went through, as seen by this node or reported by a peer.

Rows hold codes, ids and times only: never personal data. Other stores add
their tracking rows through :func:`tracking_row` / :func:`insert_tracking`
inside their own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from gateway.storage.db import read_only
from gateway.storage.model import Stage, TrackingEvent
from gateway.storage.tables import tracking


def tracking_row(
    exchange_id: str,
    stage: Stage | str,
    *,
    at: datetime,
    node: str,
    message_id: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """A row for :func:`insert_tracking`."""
    return {
        "exchange_id": exchange_id,
        "stage": str(stage),
        "at": at,
        "message_id": message_id,
        "node": node,
        "detail": detail,
    }


#: Built once (SQLAlchemy reuses its cache key and compiled form).
_INSERT_TRACKING = insert(tracking)


def insert_tracking(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Insert tracking rows (one executemany)."""
    batch = list(rows)
    if batch:
        conn.execute(_INSERT_TRACKING, batch)


def record_tracking_txn(
    conn: Connection,
    exchange_id: str,
    stage: Stage | str,
    *,
    at: datetime,
    node: str,
    message_id: str | None = None,
    detail: str | None = None,
) -> int:
    """Record one stage (for example one a peer node reported); returns the event id."""
    row = tracking_row(exchange_id, stage, at=at, node=node, message_id=message_id, detail=detail)
    return int(conn.execute(insert(tracking).values(row).returning(tracking.c.id)).scalar_one())


@read_only
def tracking_events_txn(
    conn: Connection, exchange_id: str, *, after_id: int = 0, limit: int = 1000
) -> list[TrackingEvent]:
    """The exchange's tracking events in the order they were recorded, after ``after_id``."""
    rows = conn.execute(
        select(tracking)
        .where(tracking.c.exchange_id == exchange_id, tracking.c.id > after_id)
        .order_by(tracking.c.id)
        .limit(limit)
    )
    return [
        TrackingEvent(
            id=r.id,
            exchange_id=r.exchange_id,
            stage=r.stage,
            at=r.at,
            message_id=r.message_id,
            node=r.node,
            detail=r.detail,
        )
        for r in rows
    ]
