"""Queries over exchange deadlines for the deadline service and the coordinators.

Plain ``*_txn`` functions over the exchange metadata columns (deadlines,
milestones, ``resumes_to``) that ``storage/exchanges.py`` writes from the
signed documents, and over the message metadata (escalations). No personal
data is read here.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from gateway.storage.db import read_only
from gateway.storage.exchanges import _METADATA_COLUMNS, _exchange
from gateway.storage.model import Exchange
from gateway.storage.tables import exchanges, messages

__all__ = ["attention_exchanges_txn", "deadline_candidates_txn"]


@read_only
def deadline_candidates_txn(
    conn: Connection,
    *,
    requester_node: str,
    states: Collection[str],
    due_before: datetime,
    limit: int = 500,
) -> list[Exchange]:
    """Exchanges this node requested, in ``states``, with a deadline before ``due_before``."""
    query = (
        select(*_METADATA_COLUMNS)
        .where(
            exchanges.c.requester_node == requester_node,
            exchanges.c.state.in_(list(states)),
            or_(
                exchanges.c.acceptance_due_at < due_before,
                exchanges.c.reply_due_at < due_before,
            ),
        )
        .order_by(exchanges.c.exchange_id)
        .limit(limit)
    )
    return [_exchange(r) for r in conn.execute(query)]


@read_only
def attention_exchanges_txn(
    conn: Connection,
    *,
    now: datetime,
    running_states: Collection[str],
    disputed_state: str,
    escalation_type: str,
    limit: int = 1000,
) -> list[tuple[Exchange, int]]:
    """Exchanges a coordinator may need to look at, with their number of escalations.

    Disputed ones, running ones with a deadline passed (the caller decides
    which deadline runs in each state), and escalated ones.
    """
    escalations = (
        select(messages.c.exchange_id, func.count().label("n"))
        .where(messages.c.document_type == escalation_type)
        .group_by(messages.c.exchange_id)
        .subquery()
    )
    query = (
        select(*_METADATA_COLUMNS, func.coalesce(escalations.c.n, 0).label("escalations"))
        .select_from(
            exchanges.outerjoin(escalations, escalations.c.exchange_id == exchanges.c.exchange_id)
        )
        .where(
            or_(
                exchanges.c.state == disputed_state,
                escalations.c.n > 0,
                and_(
                    exchanges.c.state.in_(list(running_states)),
                    or_(exchanges.c.acceptance_due_at < now, exchanges.c.reply_due_at < now),
                ),
            )
        )
        .order_by(exchanges.c.updated_at.desc(), exchanges.c.exchange_id)
        .limit(limit)
    )
    rows: list[Any] = list(conn.execute(query))
    return [(_exchange(r), int(r.escalations)) for r in rows]
