"""The coordinators' desk: what a coordinator sees and does over the national-system API.

A coordinator calls the national-system listener with its own client
certificate (the guard names it like any caller); :meth:`CoordinatorDesk.coordinator`
turns that name into a registered :class:`~gateway.core.coordinators.Coordinator`
or refuses (COORDINATOR_UNKNOWN). :meth:`CoordinatorDesk.is_coordinator` is
the one question other read paths ask ("is this caller a coordinator?"):
coordinators see metadata only.

* :meth:`CoordinatorDesk.exchanges`: overdue, disputed and escalated
  exchanges whose authority of this country is in the coordinator's scope:
  metadata only (ids, parties, state, area, deadlines, counts), never a
  document body.
* :meth:`CoordinatorDesk.submit`: a signed coordinator document
  (CoordinatorReminder, CoordinatorForward, MediationNote, DisputeSettled,
  DisputeEnded). Admission (``admit_coordinator_submission``) binds it to
  the caller; the exchange must be known here and its authority of this
  country in the coordinator's scope (else COORDINATOR_OUT_OF_SCOPE, the
  same answer for an unknown exchange), SenderAuthority that authority;
  then the pipeline stores and sends it like any submission.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.admission import Admitted, country_of
from gateway.core.coordinators import (
    Coordinator,
    CoordinatorNotBound,
    CoordinatorOutOfScope,
    CoordinatorUnknown,
    admit_coordinator_submission,
    check_coordinator_forward,
)
from gateway.core.deadlines import RUNNING_STATES, Deadlines, running_deadline
from gateway.core.docparts import Header
from gateway.core.documents import (
    CoordinatorForward,
    CoordinatorReminder,
    DisputeEnded,
    DisputeSettled,
    ExchangeDocument,
    MediationNote,
)
from gateway.core.docxml import LocalizedText
from gateway.core.errors import InvalidInput
from gateway.core.lifecycle import State
from gateway.core.schemas import DocumentType
from gateway.service.pipeline import Pipeline
from gateway.service.runtime import Runtime
from gateway.service.trust import NodeTrustStores
from gateway.storage.deadlines import attention_exchanges_txn
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.model import Exchange

__all__ = [
    "DECISIONS",
    "KINDS",
    "VIEWS",
    "CoordinatorDesk",
    "CoordinatorView",
    "coordinator_document",
]

#: What a coordinator may list: every exchange needing attention, or one kind.
VIEWS = ("all", "overdue", "disputed", "escalated")
#: The coordinator documents, by the name the CLI and the console give them.
KINDS = ("reminder", "forward", "note", "settle", "end")
#: The recorded outcomes of a dispute (``DisputeDecision`` in schemas/coordination.xsd).
DECISIONS = (
    "REQUEST_JUSTIFIED",
    "REQUEST_REDUCED",
    "ANSWER_SUFFICIENT",
    "ANSWER_TO_COMPLETE",
    "REQUEST_NOT_JUSTIFIED",
    "OTHER",
)


@dataclass(frozen=True)
class CoordinatorView:
    """One exchange as a coordinator sees it: metadata only."""

    exchange: Exchange
    escalations: int
    overdue: str | None  # the deadline kind passed, if any

    @property
    def disputed(self) -> bool:
        return self.exchange.state == State.DISPUTED


class CoordinatorDesk:
    """Coordinators' listings and actions (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        pipeline: Pipeline,
        trust: NodeTrustStores,
        coordinators: Callable[[], Mapping[str, Coordinator]],
        region_of: Callable[[str], str | None],
    ) -> None:
        self._rt = runtime
        self._pipeline = pipeline
        self._trust = trust
        self._coordinators = coordinators
        self._region_of = region_of

    def is_coordinator(self, caller: str) -> bool:
        """Whether ``caller`` (a name the API's guard gave) is a registered coordinator."""
        return caller in self._coordinators()

    def coordinator(self, caller: str) -> Coordinator:
        found = self._coordinators().get(caller)
        if found is None:
            raise CoordinatorUnknown("the caller is not a coordinator registered at this node")
        return found

    def local_authority(self, exchange: Exchange) -> str:
        """The exchange's authority of this node's country."""
        return local_authority(exchange, self._rt.node_id)

    def in_scope(self, coordinator: Coordinator, exchange: Exchange) -> bool:
        local = self.local_authority(exchange)
        return coordinator.covers(local, self._region_of(local))

    async def exchanges(self, caller: str, view: str = "all") -> list[CoordinatorView]:
        """The exchanges needing attention in the caller's scope (metadata only)."""
        coordinator = self.coordinator(caller)
        now = self._rt.clock.now()
        rows: list[tuple[Exchange, int]] = await self._rt.db.run_txn(
            attention_exchanges_txn, **attention_query(now)
        )
        found: list[CoordinatorView] = await self._rt.cpu(
            select_views, rows, coordinator, self._rt.node_id, self._region_of, now, view
        )
        return found

    async def submit(self, caller: str, body: bytes) -> bytes:
        """Admit, check the scope of, store and send a coordinator's document; the receipt."""
        coordinator = self.coordinator(caller)
        now = self._rt.clock.now()
        admitted: Admitted = await self._rt.cpu(
            admit_coordinator_submission,
            body,
            caller=caller,
            node_id=self._rt.node_id,
            trust=self._trust.national,
            peers=self._trust.peer_ids,
            now=now,
            window_seconds=self._pipeline.window_seconds,
        )
        header = admitted.header
        try:
            exchange = await self._rt.db.run_txn(exchange_txn, header.exchange_id)
        except ExchangeNotFound:
            raise CoordinatorOutOfScope("the exchange is not in the coordinator's scope") from None
        if not await self._rt.cpu(self.in_scope, coordinator, exchange):
            raise CoordinatorOutOfScope("the exchange is not in the coordinator's scope")
        if header.sender != self.local_authority(exchange):
            raise CoordinatorNotBound("SenderAuthority must be the exchange's authority here")
        check_coordinator_forward(admitted.document, exchange.responder_authority)

        def again(data: bytes, at: datetime, window: float) -> Admitted:
            return admitted  # verified above; the pipeline stores it

        return await self._pipeline.submit(caller, body, admission=again)


def _overdue(exchange: Exchange, now: datetime) -> str | None:
    running = running_deadline(
        exchange.state,
        Deadlines(exchange.acceptance_due_at, exchange.reply_due_at, exchange.reply_date_agreed),
    )
    if running is None or running[1] > now:
        return None
    return running[0].value


def local_authority(exchange: Exchange, node_id: str) -> str:
    """The exchange's authority of node ``node_id``'s country."""
    if exchange.requester_node == node_id:
        return exchange.requester_authority
    return exchange.responder_authority


def attention_query(now: datetime) -> dict[str, Any]:
    """The arguments of ``attention_exchanges_txn`` for the listing at ``now``."""
    return {
        "now": now,
        "running_states": [str(s) for s in RUNNING_STATES],
        "disputed_state": str(State.DISPUTED),
        "escalation_type": str(DocumentType.ESCALATION),
    }


def select_views(
    rows: Sequence[tuple[Exchange, int]],
    coordinator: Coordinator,
    node_id: str,
    region_of: Callable[[str], str | None],
    now: datetime,
    view: str,
) -> list[CoordinatorView]:
    """The rows in ``coordinator``'s scope that ``view`` (one of :data:`VIEWS`) shows."""
    found = []
    for exchange, escalations in rows:
        local = local_authority(exchange, node_id)
        if not coordinator.covers(local, region_of(local)):
            continue
        item = CoordinatorView(exchange, escalations, _overdue(exchange, now))
        shown = {
            "all": item.disputed or bool(item.escalations) or bool(item.overdue),
            "overdue": bool(item.overdue),
            "disputed": item.disputed,
            "escalated": bool(item.escalations),
        }
        if shown[view]:
            found.append(item)
    return found


def coordinator_document(
    coordinator: Coordinator,
    exchange: Exchange,
    node_id: str,
    kind: str,
    *,
    document_id: str,
    created: datetime,
    note: LocalizedText | None = None,
    forward_to: str | None = None,
    decision: str | None = None,
) -> ExchangeDocument:
    """The UNSIGNED coordinator document ``kind`` (one of :data:`KINDS`) for ``exchange``.

    Sender is the exchange's authority of this node, receiver the other one;
    ``document_id`` must begin with the coordinator's id (``scoped_id``).
    ``imi-gateway coordinators document`` and the console both build theirs here.
    """
    sender = local_authority(exchange, node_id)
    receiver = (
        exchange.responder_authority
        if sender == exchange.requester_authority
        else exchange.requester_authority
    )
    header = Header(exchange.exchange_id, document_id, sender, receiver, created)
    if kind == "reminder":
        return CoordinatorReminder(header, coordinator.id, note)
    if kind == "forward":
        if not forward_to or country_of(forward_to) != node_id:
            raise InvalidInput("forward_to must name another authority of this country")
        return CoordinatorForward(header, coordinator.id, forward_to, note)
    if kind == "note":
        if note is None:
            raise InvalidInput("note: a mediation note needs a text")
        return MediationNote(header, coordinator.id, note)
    if decision is not None and decision not in DECISIONS:
        raise InvalidInput(f"decision: one of {', '.join(DECISIONS)}")
    if kind == "settle":
        return DisputeSettled(header, coordinator.id, decision or "OTHER", note)
    if kind == "end":
        return DisputeEnded(header, coordinator.id, decision or "OTHER", note)
    raise InvalidInput(f"kind: one of {', '.join(KINDS)}")
