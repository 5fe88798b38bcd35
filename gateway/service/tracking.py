"""Tracking records: every stage of an exchange, for the authorities involved only.

An authority that is not one of the exchange's two authorities gets
NOT_FOUND, exactly as for an exchange that does not exist, so the API does
not reveal which exchanges exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from gateway.core.docxml import format_datetime
from gateway.core.ns import DOC_NS
from gateway.storage.db import Database
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.model import Exchange, TrackingEvent
from gateway.storage.tracking import tracking_events_txn


def tracking_xml(exchange: Exchange, events: Sequence[TrackingEvent]) -> bytes:
    root = etree.Element(
        f"{{{DOC_NS}}}Tracking",
        nsmap={None: DOC_NS},
        exchangeId=exchange.exchange_id,
        state=exchange.state,
        requester=exchange.requester_authority,
        responder=exchange.responder_authority,
    )
    for event in events:
        element = etree.SubElement(
            root,
            f"{{{DOC_NS}}}Stage",
            code=event.stage,
            at=format_datetime(event.at),
            node=event.node,
        )
        if event.message_id:
            element.set("messageId", event.message_id)
        if event.detail:
            element.set("detail", event.detail)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class TrackingQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self, exchange_id: str, authority: str
    ) -> tuple[Exchange, list[TrackingEvent]]:
        try:
            exchange = await self._db.run_txn(exchange_txn, exchange_id)
        except ExchangeNotFound:
            exchange = None
        if exchange is None or not exchange.involves(authority):
            raise ExchangeNotFound(f"no exchange {exchange_id!r} involves {authority}")
        events = await self._db.run_txn(tracking_events_txn, exchange_id)
        return exchange, events

    async def record_xml(self, exchange_id: str, authority: str) -> bytes:
        exchange, events = await self.record(exchange_id, authority)
        return tracking_xml(exchange, events)
