"""Lifecycle moves played across two real nodes: any document type, from either side.

The requester is NO-HELSEDIR (node NO), the responder PT-OMD (node PT); a
Forward (or a coordinator's forward) hands the exchange to the other
authority of node PT (PT-ACSS, then back to PT-OMD), which is the responder
from then on. The coordinator moves are played by NO-KOORD (reminders,
mediation notes) and the current responder's coordinator (PT-KOORD-OMD or
PT-KOORD-ACSS: forwards, dispute outcomes), through the coordinators' API
(tests/service/coordinated.py registers them). A
:class:`Pair` submits a document of a given type from a given side into an
exchange through the sender's national-system API and, when it is accepted,
waits until the peer node stored it and the sender's node has the peer's
receipt, so that both nodes are at rest before the next move. A refused move
returns its error code.
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.core.admission import scoped_id
from gateway.core.docparts import Header, Reply
from gateway.core.documents import (
    Acceptance,
    AdditionalInformation,
    Answer,
    Closure,
    CoordinatorForward,
    CoordinatorReminder,
    Dispute,
    DisputeEnded,
    DisputeSettled,
    Escalation,
    ExchangeDocument,
    Forward,
    InformationRequest,
    MediationNote,
    Rejection,
    Reminder,
    ReplyDateProposal,
    Withdrawal,
    to_xml,
)
from gateway.core.docxml import LocalizedText
from gateway.core.lifecycle import (
    REQUESTER_DOCUMENTS,
    RESPONDER_DOCUMENTS,
    TRANSITIONS,
    Role,
    Stage,
    State,
)
from gateway.core.schemas import COORDINATOR_DOCUMENT_TYPES
from gateway.storage.errors import ExchangeNotFound, MessageNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.messages import exchange_messages_txn, message_meta_txn
from gateway.storage.tracking import tracking_events_txn
from gateway.testbed import CATALOGUE_VERSION, DOCTOR_ANSWERS, NationalSystem, doctor_request
from tests.nodes import RunningNode
from tests.transport.test_peer_security import refusal
from tests.waiting import until

REQUESTER, RESPONDER, FORWARD_TO = "NO-HELSEDIR", "PT-OMD", "PT-ACSS"
AUTHORITY = {Role.REQUESTER: REQUESTER, Role.RESPONDER: RESPONDER}
NODE = {Role.REQUESTER: "NO", Role.RESPONDER: "PT"}
OTHER = {Role.REQUESTER: Role.RESPONDER, Role.RESPONDER: Role.REQUESTER}
AUTHORITIES = {"NO": [REQUESTER], "PT": [RESPONDER, FORWARD_TO]}
#: Where a Forward from each responder hands the exchange.
FORWARDED_TO = {RESPONDER: FORWARD_TO, FORWARD_TO: RESPONDER}
#: Which coordinator plays each coordinator document (the responder's side forwards).
COORDINATOR_OF = {
    "CoordinatorReminder": Role.REQUESTER,
    "MediationNote": Role.REQUESTER,
    "CoordinatorForward": Role.RESPONDER,
    "DisputeSettled": Role.RESPONDER,
    "DisputeEnded": Role.RESPONDER,
}
#: The coordinator of the requester, and of each authority that may be the responder.
COORDINATOR_FOR = {REQUESTER: "NO-KOORD", RESPONDER: "PT-KOORD-OMD", FORWARD_TO: "PT-KOORD-ACSS"}
COORDINATION_PATH = "/api/v1/coordination/documents"

Move = tuple[str, Role]


def _shortest_paths() -> dict[State, tuple[Move, ...]]:
    """For every reachable state, the shortest run of moves from NEW (tracked events skipped)."""
    paths: dict[State, tuple[Move, ...]] = {State.NEW: ()}
    queue = deque([State.NEW])
    while queue:
        state = queue.popleft()
        for (before, document_type, role), after in sorted(TRANSITIONS.items()):
            if before is state and after is not state and after not in paths:
                paths[after] = (*paths[state], (document_type, role))
                queue.append(after)
    return paths


#: How to bring a fresh exchange into each state.
PATHS: Mapping[State, tuple[Move, ...]] = _shortest_paths()


def expected_refusal(document_type: str, role: Role, state: State | None = None) -> str:
    """The code a move outside the table gets.

    A document only the other side sends names an exchange id its sender
    does not own (refused at admission); a coordinator's document needs the
    other role, or an exchange the node knows (COORDINATOR_OUT_OF_SCOPE);
    any other is a lifecycle conflict.
    """
    if role is not Role.COORDINATOR and document_type in COORDINATOR_DOCUMENT_TYPES:
        return "COORDINATOR_NOT_BOUND"  # only a coordinator's certificate signs one
    if role is Role.COORDINATOR and document_type not in COORDINATOR_DOCUMENT_TYPES:
        return "COORDINATOR_BAD"  # not played: a coordinator sends only its own documents
    if role is Role.COORDINATOR and state is State.NEW:
        return "COORDINATOR_OUT_OF_SCOPE"
    if (document_type in REQUESTER_DOCUMENTS and role is Role.RESPONDER) or (
        document_type in RESPONDER_DOCUMENTS and role is Role.REQUESTER
    ):
        return "EXCHANGE_ID_NOT_OWNED"
    return "EXCHANGE_STATE_CONFLICT"


def document(
    document_type: str, exchange_id: str, role: Role, seq: int, responder: str = RESPONDER
) -> ExchangeDocument:
    """A schema-valid document of ``document_type`` from ``role``'s authority (or coordinator).

    ``responder`` is the exchange's current responder (a Forward changes it).
    """
    parties = {Role.REQUESTER: REQUESTER, Role.RESPONDER: responder}
    side = COORDINATOR_OF.get(document_type, Role.REQUESTER)
    coordinator = COORDINATOR_FOR[parties[side]]
    if role is Role.COORDINATOR:
        sender, receiver = parties[side], parties[OTHER[side]]
    else:
        sender, receiver = parties[role], parties[OTHER[role]]
    local = exchange_id.split(":", 1)[1]
    now = datetime.now(UTC)
    request_id = scoped_id(REQUESTER, f"{local}-0")  # the Request, the first move
    header = Header(
        exchange_id,
        scoped_id(coordinator if role is Role.COORDINATOR else sender, f"{local}-{seq}"),
        sender,
        receiver,
        now,
        CATALOGUE_VERSION,
        None if document_type == "Request" else request_id,
    )
    note = LocalizedText("Please see the attached details.", "en")
    reply_date = (now + timedelta(days=14)).date()
    if document_type == "Request":
        return replace(doctor_request(local, REQUESTER, RESPONDER, now), header=header)
    built: dict[str, Any] = {
        "Acceptance": lambda: Acceptance(header, agreed_reply_date=reply_date),
        "ReplyDateProposal": lambda: ReplyDateProposal(header, proposed_reply_date=reply_date),
        "InformationRequest": lambda: InformationRequest(header, note=note),
        "AdditionalInformation": lambda: AdditionalInformation(header, note=note),
        "Answer": lambda: Answer(header, replies=tuple(Reply(q, (o,)) for q, o in DOCTOR_ANSWERS)),
        "Closure": lambda: Closure(header),
        "Rejection": lambda: Rejection(header, reason="NOT_COMPETENT"),
        "Forward": lambda: Forward(header, forward_to=FORWARDED_TO[responder]),
        "Withdrawal": lambda: Withdrawal(header, reason="NO_LONGER_NEEDED"),
        "Reminder": lambda: Reminder(header),
        "Escalation": lambda: Escalation(header, reason="ANSWER_OVERDUE"),
        "Dispute": lambda: Dispute(header, reason="QUESTION_NOT_JUSTIFIED"),
        "CoordinatorReminder": lambda: CoordinatorReminder(header, str(coordinator)),
        "CoordinatorForward": lambda: CoordinatorForward(
            header, str(coordinator), FORWARDED_TO[responder]
        ),
        "MediationNote": lambda: MediationNote(header, str(coordinator), note),
        "DisputeSettled": lambda: DisputeSettled(header, str(coordinator), "REQUEST_JUSTIFIED"),
        "DisputeEnded": lambda: DisputeEnded(header, str(coordinator), "REQUEST_NOT_JUSTIFIED"),
    }
    return built[document_type]()  # type: ignore[no-any-return]


class Pair:
    """Two running nodes and their national systems, playing moves into fresh exchanges."""

    def __init__(self, nodes: dict[str, RunningNode], systems: dict[str, NationalSystem]) -> None:
        self.nodes = nodes
        self.systems = systems
        self._seq: dict[str, itertools.count[int]] = {}
        self._responder: dict[str, str] = {}

    def new_exchange(self) -> str:
        exchange_id = scoped_id(REQUESTER, f"T-{uuid.uuid4().hex[:16]}")
        self._seq[exchange_id] = itertools.count()
        self._responder[exchange_id] = RESPONDER
        return exchange_id

    async def send(self, exchange_id: str, document_type: str, role: Role) -> str | None:
        """Play one move: None once both nodes hold it, else why it was refused.

        A refusal by the sender's node returns its error code; one by the peer
        node (the nodes disagree) returns a text naming the peer's code.
        """
        responder = self._responder[exchange_id]
        doc = document(document_type, exchange_id, role, next(self._seq[exchange_id]), responder)
        if role is Role.COORDINATOR:
            coordinator = getattr(doc, "coordinator", "NO-KOORD")
            system = self.systems[coordinator]
            signed = system.sign(to_xml(doc))
            if document_type not in COORDINATOR_DOCUMENT_TYPES:
                return "COORDINATOR_BAD"  # a coordinator sends only its own documents
            answer = await system.client.post(system.url(COORDINATION_PATH), signed)
            side = Role.REQUESTER if coordinator.startswith("NO") else Role.RESPONDER
        else:
            system = self.systems[doc.header.sender]
            answer = await system.submit_raw(system.sign(to_xml(doc)))
            side = role
        if answer.status != 200:
            return refusal(answer)[1]
        message_id = doc.header.document_id
        peer_db = self.nodes[NODE[OTHER[side]]].parts.db
        own_db = self.nodes[NODE[side]].parts.db

        async def peer_answered() -> str | None:
            """ "stored" once the peer holds it, or the code the peer refused it with."""
            for event in await own_db.run_txn(tracking_events_txn, exchange_id):
                if event.message_id == message_id and event.stage in (
                    Stage.REFUSED,
                    Stage.DEAD_LETTER,
                ):
                    return f"peer node refused: {event.detail}"
            try:
                await peer_db.run_txn(message_meta_txn, message_id)
            except MessageNotFound:
                return None
            return "stored"

        async def receipt_back() -> bool:
            events = await own_db.run_txn(tracking_events_txn, exchange_id)
            return any(
                e.stage == Stage.RECEIVED_BY_PEER and e.message_id == message_id for e in events
            )

        answered = await until(peer_answered)
        if answered != "stored":
            return str(answered)
        await until(receipt_back)
        if isinstance(doc, Forward | CoordinatorForward):
            self._responder[exchange_id] = doc.forward_to
        return None

    async def drive(self, exchange_id: str, state: State) -> None:
        """Bring the fresh exchange ``exchange_id`` into ``state`` on both nodes."""
        for document_type, role in PATHS[state]:
            code = await self.send(exchange_id, document_type, role)
            assert code is None, f"driving to {state}: {document_type} from {role} refused: {code}"

    async def states(self, exchange_id: str) -> dict[str, str | None]:
        """The exchange's state on each node (None where it is not stored)."""
        out: dict[str, str | None] = {}
        for country, node in self.nodes.items():
            try:
                out[country] = (await node.parts.db.run_txn(exchange_txn, exchange_id)).state
            except ExchangeNotFound:
                out[country] = None
        return out

    async def deadlines(self, exchange_id: str) -> dict[str, tuple[Any, ...] | None]:
        """The exchange's deadlines and dispute memory on each node (None where not stored)."""
        out: dict[str, tuple[Any, ...] | None] = {}
        for country, node in self.nodes.items():
            try:
                ex = await node.parts.db.run_txn(exchange_txn, exchange_id)
            except ExchangeNotFound:
                out[country] = None
                continue
            out[country] = (
                ex.acceptance_due_at,
                ex.reply_due_at,
                ex.reply_date_agreed,
                ex.accepted_at,
                ex.answered_at,
                ex.disputed_at,
                ex.resumes_to,
            )
        return out

    async def snapshot(self, exchange_id: str) -> dict[str, Any]:
        """Everything both nodes hold of the exchange: metadata, messages, tracking."""
        out: dict[str, Any] = {}
        for country, node in self.nodes.items():
            db = node.parts.db
            try:
                exchange: Any = await db.run_txn(exchange_txn, exchange_id)
            except ExchangeNotFound:
                exchange = None
            messages = await db.run_txn(exchange_messages_txn, exchange_id)
            events = await db.run_txn(tracking_events_txn, exchange_id)
            out[country] = (exchange, messages, [e.id for e in events])
        return out
