"""The facts the performance figures are computed from (``gateway.core.kpi``).

One query: the exchanges whose Request was created in the period (the
signed creation time stored with the Request message), with their milestones
and deadlines, and the number of Escalation and Dispute documents each has,
created by ``as_of``. Metadata only: ids, codes, times and counts, never a
document body. The index on ``messages (document_type, document_created_at)``
keeps the query a range scan over the period's Requests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import ScalarSelect

from gateway.core.kpi import ExchangeFacts, Period
from gateway.core.schemas import DocumentType
from gateway.storage.db import read_only
from gateway.storage.tables import exchanges, messages

__all__ = ["kpi_facts_txn"]


def _count_of(document_type: str, as_of: datetime) -> ScalarSelect[int]:
    counted = messages.alias(f"counted_{document_type.lower()}")
    return (
        select(func.count())
        .where(
            counted.c.exchange_id == exchanges.c.exchange_id,
            counted.c.document_type == document_type,
            counted.c.document_created_at <= as_of,
        )
        .scalar_subquery()
    )


@read_only
def kpi_facts_txn(
    conn: Connection,
    *,
    period: Period,
    as_of: datetime,
    authority: str | None = None,
    area: str | None = None,
) -> list[ExchangeFacts]:
    """The facts of the exchanges whose Request was created in ``period`` (and by ``as_of``).

    ``authority`` keeps the exchanges it responds to, ``area`` one legislation area.
    """
    request = messages.alias("request")
    query = (
        select(
            exchanges.c.exchange_id,
            exchanges.c.responder_node,
            exchanges.c.responder_authority,
            exchanges.c.area,
            exchanges.c.state,
            exchanges.c.accepted_at,
            exchanges.c.answered_at,
            exchanges.c.reply_due_at,
            exchanges.c.reply_date_agreed,
            request.c.document_created_at.label("requested_at"),
            _count_of(DocumentType.ESCALATION, as_of).label("escalations"),
            _count_of(DocumentType.DISPUTE, as_of).label("disputes"),
        )
        .select_from(exchanges.join(request, request.c.exchange_id == exchanges.c.exchange_id))
        .where(
            request.c.document_type == DocumentType.REQUEST,
            request.c.document_created_at >= period.start,
            request.c.document_created_at < period.end,
            request.c.document_created_at <= as_of,
        )
        .order_by(exchanges.c.exchange_id)
    )
    if authority is not None:
        query = query.where(exchanges.c.responder_authority == authority)
    if area is not None:
        query = query.where(exchanges.c.area == area)
    return [
        ExchangeFacts(
            exchange_id=row.exchange_id,
            responder_node=row.responder_node,
            responder_authority=row.responder_authority,
            area=row.area,
            state=row.state,
            requested_at=row.requested_at,
            accepted_at=row.accepted_at,
            answered_at=row.answered_at,
            reply_due_at=row.reply_due_at,
            reply_date_agreed=bool(row.reply_date_agreed),
            escalations=int(row.escalations),
            disputes=int(row.disputes),
        )
        for row in conn.execute(query)
    ]
