"""The deadline service: reminders before and when a deadline passes, then escalation.

Runs on the runtime's clock every ``[deadlines] check_interval_seconds``, on
the REQUESTER's node of each exchange (the side that waits; the peer node
never acts on the same exchange, so the two nodes cannot both send). For each
exchange with a running deadline (``gateway.core.deadlines``) it sends the
most advanced action due:

* a **Reminder** to the responder, ``reminder_lead_hours`` before the
  deadline and again when it passes;
* an **Escalation** (``ANSWER_OVERDUE``) when the deadline is overdue by
  ``escalation_grace_days``, naming this side's responsible coordinator.

Each is an exchange document signed with the NODE's signing key, sender the
requesting authority on whose behalf the node acts; it goes through the
pipeline like any submission (the lifecycle table allows it, tracking
records it, the peer node verifies the node signature against its pinned
certificate, delivers the reminder to the responder and the escalation to
its own responsible coordinator as well; this node delivers the escalation
to its coordinator).

Once per deadline, across restarts and processes: an action's document id
is derived from the exchange, the deadline and the action
(``action_document_id``), and message ids are unique forever in the
database. A restarted node, or a second process sharing a PostgreSQL
database, computing the same action finds the id taken and sends nothing;
the unique key is the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.core.admission import Admitted
from gateway.core.certs import TrustStore
from gateway.core.coordinators import admit_node_document
from gateway.core.deadlines import (
    RUNNING_STATES,
    Action,
    DeadlinePolicy,
    Deadlines,
    DueAction,
    action_document_id,
    due_action,
)
from gateway.core.docparts import Header
from gateway.core.documents import Escalation, Reminder, to_xml
from gateway.core.errors import GatewayError
from gateway.service.periodic import PeriodicService
from gateway.service.pipeline import Pipeline
from gateway.service.runtime import Runtime
from gateway.storage.deadlines import deadline_candidates_txn
from gateway.storage.errors import MessageNotFound
from gateway.storage.messages import message_meta_txn
from gateway.storage.model import Exchange

log = Logger()

__all__ = ["DeadlineService"]

#: The coordinator responsible for an authority of this node (None: none registered).
ResponsibleCoordinator = Callable[[str], str | None]


class DeadlineService(PeriodicService):
    """Sends the reminders and escalations due (see the module docstring)."""

    name = "deadlines"

    def __init__(
        self,
        runtime: Runtime,
        *,
        pipeline: Pipeline,
        policy: DeadlinePolicy,
        interval_seconds: float,
        peers: Callable[[], frozenset[str]],
        coordinator_of: ResponsibleCoordinator = lambda authority: None,
    ) -> None:
        super().__init__(runtime.clock, interval_seconds, now=True)
        self._rt = runtime
        self._pipeline = pipeline
        self._policy = policy
        self._peers = peers
        self._coordinator_of = coordinator_of
        self._own = TrustStore(pinned=(runtime.signer.certificate,))

    def run_once(self) -> Deferred[int]:
        """Send every action due now; the number sent. Never fails (errors are logged)."""
        if self._running is not None:  # one run at a time
            return self._running
        d = Deferred.fromCoroutine(self._run())

        def failed(failure: object) -> int:
            log.failure("Deadline run failed; it is retried at the next run", failure)  # type: ignore[arg-type]
            return 0

        def finished(count: int) -> int:
            self._running = None
            return count

        d.addErrback(failed)
        if not d.called:
            self._running = d
            d.addCallback(finished)
        return d

    async def _run(self) -> int:
        now = self._rt.clock.now()
        candidates: list[Exchange] = await self._rt.db.run_txn(
            deadline_candidates_txn,
            requester_node=self._rt.node_id,
            states=[str(s) for s in RUNNING_STATES],
            due_before=now + self._policy.lead,
        )
        sent = 0
        for exchange in candidates:
            deadlines = Deadlines(
                exchange.acceptance_due_at, exchange.reply_due_at, exchange.reply_date_agreed
            )
            due = due_action(exchange.state, deadlines, now, self._policy)
            if due is not None and await self._act(exchange, due, now):
                sent += 1
        return sent

    async def _act(self, exchange: Exchange, due: DueAction, now: datetime) -> bool:
        requester = exchange.requester_authority
        document_id = action_document_id(requester, exchange.exchange_id, due)
        try:
            await self._rt.db.run_txn(message_meta_txn, document_id)
            return False  # done before (this process, an earlier run, or another process)
        except MessageNotFound:
            pass
        coordinator = self._coordinator_of(requester) if due.action is Action.ESCALATE else None
        body: bytes = await self._rt.cpu(self._signed, exchange, due, document_id, now, coordinator)
        try:
            await self._pipeline.submit(requester, body, admission=self._admit)
        except GatewayError as error:
            # The id taken meanwhile (MESSAGE_ID_REUSED), or the state moved on.
            log.info(
                "Deadline {action} of {exchange_id} not sent: {code}",
                action=due.action.value,
                exchange_id=exchange.exchange_id,
                code=error.code,
            )
            return False
        log.info(
            "Deadline {action} of {exchange_id} sent ({kind} deadline {due_at})",
            action=due.action.value,
            exchange_id=exchange.exchange_id,
            kind=due.kind.value,
            due_at=due.due_at.isoformat(),
        )
        return True

    def _signed(
        self,
        exchange: Exchange,
        due: DueAction,
        document_id: str,
        now: datetime,
        coordinator: str | None,
    ) -> bytes:
        header = Header(
            exchange.exchange_id,
            document_id,
            exchange.requester_authority,
            exchange.responder_authority,
            now,
        )
        if due.action is Action.ESCALATE:
            document: Reminder | Escalation = Escalation(
                header, reason="ANSWER_OVERDUE", coordinator=coordinator
            )
        else:
            document = Reminder(header)
        return self._rt.signer.sign(to_xml(document))

    def _admit(self, body: bytes, now: datetime, window: float) -> Admitted:
        return admit_node_document(
            body,
            node_id=self._rt.node_id,
            trust=self._own,
            peers=self._peers(),
            now=now,
            window_seconds=window,
        )
