"""Tracking records: every stage of an exchange, for the authorities involved only.

What an authority sees is decided by ``gateway.core.access.visibility``:
the exchange's two authorities (the requester and the CURRENT responder)
see the stages and the renderings; a former responder (it forwarded the
exchange) sees the stages only, and the record says
``personalData="PERSONAL_DATA_WITHHELD"``; any other authority gets
EXCHANGE_NOT_FOUND, exactly as for an exchange that does not exist, so the
API does not reveal which exchanges exist.

Each node records the stages it observes. A national system asking its own
node gets both halves: this node's stages and the peer node's (fetched over
the peer API, ``GET /peer/v1/exchanges/{id}``, which answers a peer node only
for exchanges between the two nodes and only with its own stages). When the
peer cannot be reached, or its answer is anything but a readable 200 (a
redirect, which is never followed, an encoded or oversize answer, an error),
the record says so (``peer="unavailable"``) and holds this node's stages
alone.

For the authorities involved, the record also renders the exchange's coded
content in this node's languages: the questions of the Request and any
InformationRequest, and the coded answers of each Answer (``Document``
elements with one ``Rendering`` per language, as in deliveries). Reading them
unseals personal data of the exchange, which only its two authorities may do,
through ``storage/personal_data.py: read_personal_data_txn`` (one audit entry
PERSONAL_DATA_READ per document read, in the reading transaction).

Each node's half also carries its ``Deadlines`` element (the acceptance
deadline, the reply date and whether it was agreed: metadata derived from the
signed documents, so both nodes' elements agree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lxml import etree
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.core.access import PersonalDataWithheld, Visibility
from gateway.core.docxml import format_datetime, new_root
from gateway.core.envelopes import Rendering
from gateway.core.errors import GatewayError
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.service.runtime import Runtime
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.messages import exchange_messages_txn
from gateway.storage.model import Exchange, MessageMeta, TrackingEvent
from gateway.storage.personal_data import (
    PersonalData,
    exchange_visibility_txn,
    read_personal_data_txn,
)
from gateway.storage.tracking import tracking_events_txn

log = Logger()


_STAGE = f"{{{DOC_NS}}}Stage"
_DEADLINES = f"{{{DOC_NS}}}Deadlines"
#: How long a tracking query waits for the peer node's half of the record.
PEER_TIMEOUT_SECONDS = 5.0

FetchPeer = Callable[[str, str], Deferred[Any]]


def _stage_elements(events: Sequence[TrackingEvent]) -> list[etree._Element]:
    elements = []
    for event in events:
        element = etree.Element(
            _STAGE, code=event.stage, at=format_datetime(event.at), node=event.node
        )
        if event.message_id:
            element.set("messageId", event.message_id)
        if event.detail:
            element.set("detail", event.detail)
        elements.append(element)
    return elements


#: Documents whose codes the tracking record renders.
RENDERED_TYPES = frozenset({"Request", "InformationRequest", "Answer"})

Render = Callable[[bytes], Sequence[Rendering]]


def deadlines_element(exchange: Exchange, node: str) -> etree._Element:
    """``node``'s stored deadlines of ``exchange`` (attributes absent when not known)."""
    element = etree.Element(_DEADLINES, node=node)
    if exchange.acceptance_due_at is not None:
        element.set("acceptanceDue", format_datetime(exchange.acceptance_due_at))
    if exchange.reply_due_at is not None:
        element.set("replyDue", format_datetime(exchange.reply_due_at))
        element.set("replyDateAgreed", "true" if exchange.reply_date_agreed else "false")
    return element


def tracking_xml(
    exchange: Exchange,
    stages: Sequence[etree._Element],
    peer_status: str | None = None,
    documents: Sequence[tuple[MessageMeta, Sequence[Rendering]]] = (),
    withheld: bool = False,
    node: str | None = None,
) -> bytes:
    root = new_root("Tracking")
    root.set("exchangeId", exchange.exchange_id)
    root.set("state", exchange.state)
    root.set("requester", exchange.requester_authority)
    root.set("responder", exchange.responder_authority)
    if peer_status is not None:
        root.set("peer", peer_status)
    if withheld:
        root.set("personalData", PersonalDataWithheld.code)
    if node is not None:
        root.append(deadlines_element(exchange, node))
    for element in sorted(stages, key=lambda e: e.get("at", "")):
        root.append(element)
    for meta, renderings in documents:
        document = etree.SubElement(
            root,
            f"{{{DOC_NS}}}Document",
            messageId=meta.message_id,
            type=meta.document_type,
            sender=meta.sender_authority,
        )
        for rendering in renderings:
            rendering.write(document)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def peer_stages(body: bytes, peer: str) -> list[etree._Element]:
    """The peer's own stages (and deadlines) from its tracking answer (anything else is ignored)."""
    root = parse_xml(body)
    return [e for e in root.iter(_DEADLINES, _STAGE) if e.get("node") == peer]


class TrackingQueries:
    """Tracking records of exchanges; parsing, rendering and XML building run on the CPU pool."""

    def __init__(
        self,
        runtime: Runtime,
        fetch_peer: FetchPeer | None = None,
        *,
        render: Render | None = None,
    ) -> None:
        self._rt = runtime
        self._db = runtime.db
        self._node_id = runtime.node_id
        self._fetch_peer = fetch_peer
        self._render = render

    def _render_all(
        self, metas: Sequence[MessageMeta], bodies: Mapping[str, bytes]
    ) -> list[tuple[MessageMeta, Sequence[Rendering]]]:
        assert self._render is not None
        out = []
        for meta in metas:
            body = bodies.get(meta.message_id)
            if body is not None:
                out.append((meta, self._render(body)))
        return out

    async def _rendered_documents(
        self, exchange_id: str, authority: str
    ) -> list[tuple[MessageMeta, Sequence[Rendering]]]:
        if self._render is None:
            return []
        metas = await self._db.run_txn(exchange_messages_txn, exchange_id)
        metas = [m for m in metas if m.document_type in RENDERED_TYPES and not m.erased]
        if not metas:
            return []
        read: PersonalData = await self._db.run_txn(
            read_personal_data_txn,
            authority,
            [m.message_id for m in metas],
            sealer=self._rt.sealer,
            audit_key=self._rt.audit_key,
            now=self._rt.clock.now(),
        )
        rendered: list[tuple[MessageMeta, Sequence[Rendering]]] = await self._rt.cpu(
            self._render_all, metas, read.bodies
        )
        return rendered

    async def record(
        self, exchange_id: str, authority: str
    ) -> tuple[Exchange, list[TrackingEvent], Visibility]:
        """The exchange, its stages and what ``authority`` may see of it.

        EXCHANGE_NOT_FOUND unless ``authority`` is or was one of its
        authorities (the same answer as for an unknown exchange).
        """
        seen = await self._db.run_txn(exchange_visibility_txn, exchange_id, authority)
        if seen is None:
            raise ExchangeNotFound(f"no exchange {exchange_id!r} involves {authority}")
        exchange, visible = seen
        events = await self._db.run_txn(tracking_events_txn, exchange_id)
        return exchange, events, visible

    async def record_xml(self, exchange_id: str, authority: str) -> bytes:
        """Both nodes' stages of the exchange, for one of its authorities (or a former one)."""
        exchange, events, visible = await self.record(exchange_id, authority)
        stages = _stage_elements(events)
        peer = next(
            (n for n in (exchange.requester_node, exchange.responder_node) if n != self._node_id),
            None,
        )
        status = None
        if peer is not None and self._fetch_peer is not None:
            try:
                body = await self._fetch_peer(peer, exchange_id)
                stages += await self._rt.cpu(peer_stages, body, peer) if body else []
                status = "included"
            except GatewayError as error:  # unreachable, redirected, refused, unreadable
                log.info(
                    "Tracking of {exchange_id}: peer {peer} unavailable ({code})",
                    exchange_id=exchange_id,
                    peer=peer,
                    code=error.code,
                )
                status = "unavailable"
            except Exception:
                log.failure(
                    "Tracking of {exchange_id}: peer {peer} unavailable (unexpected error)",
                    exchange_id=exchange_id,
                    peer=peer,
                )
                status = "unavailable"
        withheld = visible is not Visibility.PERSONAL_DATA
        documents = [] if withheld else await self._rendered_documents(exchange_id, authority)
        xml: bytes = await self._rt.cpu(
            tracking_xml, exchange, stages, status, documents, withheld, self._node_id
        )
        return xml

    async def peer_record_xml(self, exchange_id: str, peer: str) -> bytes:
        """This node's own stages of an exchange between this node and ``peer``."""
        try:
            exchange = await self._db.run_txn(exchange_txn, exchange_id)
        except ExchangeNotFound:
            exchange = None
        if exchange is None or peer not in (exchange.requester_node, exchange.responder_node):
            raise ExchangeNotFound(f"no exchange {exchange_id!r} involves node {peer}")
        events = await self._db.run_txn(tracking_events_txn, exchange_id)
        own = [e for e in events if e.node == self._node_id]
        xml: bytes = await self._rt.cpu(
            tracking_xml, exchange, _stage_elements(own), None, (), False, self._node_id
        )
        return xml
