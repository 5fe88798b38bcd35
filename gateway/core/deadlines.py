"""Deadlines of an exchange, and which reminder or escalation is due (sans-IO).

Three deadlines, each derived from SIGNED documents (their dates and
``Created`` times, never a node's receive time), so that both nodes of an
exchange store the same values:

* the **acceptance deadline**: the Request's creation time plus the
  acceptance period (7 days by default; per node and per legislation area,
  :class:`DeadlinePolicy`; peers configure the same period, as they agree
  the catalogue);
* the **reply date** the requester asks for (``RequestedReplyDate``), and
  after an Acceptance the **agreed reply date** (``AgreedReplyDate``);
  a date is due at the end of that day (UTC).

:func:`deadline_metadata` turns an accepted document into the exchange
metadata it sets (no personal data). :func:`due_action` says, for an
exchange's state and deadlines at ``now``, the most advanced action due:
a reminder ``lead`` before the deadline, a reminder when it passes, an
escalation when it is overdue by the grace period. Each action has a
deterministic document id (:func:`action_document_id`), so it happens once
per deadline however often, and on however many processes, it is computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType

from gateway.core.admission import scoped_id
from gateway.core.coordination import Dispute
from gateway.core.documents import Acceptance, Answer, ExchangeDocument, Request
from gateway.core.docxml import sha256_hex
from gateway.core.lifecycle import State

__all__ = [
    "Action",
    "DeadlineKind",
    "DeadlinePolicy",
    "Deadlines",
    "DueAction",
    "action_document_id",
    "deadline_metadata",
    "due_action",
    "end_of_day",
    "running_deadline",
]


class DeadlineKind(StrEnum):
    """Which deadline runs."""

    ACCEPTANCE = "acceptance"  # the responder accepts (or proposes, rejects, forwards)
    REPLY = "reply"  # the responder answers by the requested or agreed date


class Action(StrEnum):
    """What the node does about a running deadline, in the order they come due."""

    REMIND_BEFORE = "remind_before"
    REMIND_OVERDUE = "remind_overdue"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class DeadlinePolicy:
    """A node's deadline settings (``[deadlines]`` in gateway.toml)."""

    acceptance_days: float = 7.0
    #: Acceptance periods of legislation areas that differ from ``acceptance_days``.
    area_acceptance_days: Mapping[str, float] = field(default_factory=dict)
    #: How long before a deadline the responder is reminded.
    reminder_lead_hours: float = 48.0
    #: How long after a deadline the exchange is escalated to the coordinators.
    escalation_grace_days: float = 3.0

    def acceptance_period(self, area: str) -> timedelta:
        return timedelta(days=self.area_acceptance_days.get(area, self.acceptance_days))

    @property
    def lead(self) -> timedelta:
        return timedelta(hours=self.reminder_lead_hours)

    @property
    def grace(self) -> timedelta:
        return timedelta(days=self.escalation_grace_days)


def end_of_day(day: date) -> datetime:
    """When a date is past: the following midnight, UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), UTC)


def deadline_metadata(document: ExchangeDocument, policy: DeadlinePolicy) -> dict[str, object]:
    """The exchange metadata an accepted ``document`` sets (deadlines and milestones).

    Keys are exchange columns: ``acceptance_due_at``, ``reply_due_at``,
    ``reply_date_agreed``; milestones for the figures: ``accepted_at``,
    ``answered_at`` and ``disputed_at`` (the stores keep the first one).
    """
    created = document.header.created
    if isinstance(document, Request):
        return {
            "acceptance_due_at": created + policy.acceptance_period(document.legislation_area),
            "reply_due_at": end_of_day(document.requested_reply_date),
            "reply_date_agreed": False,
        }
    if isinstance(document, Acceptance):
        return {
            "reply_due_at": end_of_day(document.agreed_reply_date),
            "reply_date_agreed": True,
            "accepted_at": created,
        }
    if isinstance(document, Answer):
        return {"answered_at": created}
    if isinstance(document, Dispute):
        return {"disputed_at": created}
    return {}


#: Columns of which only the first value counts (a later document does not move them).
FIRST_ONLY: frozenset[str] = frozenset({"accepted_at", "answered_at", "disputed_at"})

_RUNNING: Mapping[State, DeadlineKind] = MappingProxyType(
    {
        State.REQUESTED: DeadlineKind.ACCEPTANCE,
        State.FORWARDED: DeadlineKind.ACCEPTANCE,
        State.ACCEPTED: DeadlineKind.REPLY,
        State.INFORMATION_PROVIDED: DeadlineKind.REPLY,
        State.FOLLOW_UP_REQUESTED: DeadlineKind.REPLY,
    }
)

#: States in which a deadline of the responder runs.
RUNNING_STATES: frozenset[State] = frozenset(_RUNNING)


@dataclass(frozen=True)
class Deadlines:
    """An exchange's stored deadlines."""

    acceptance_due_at: datetime | None
    reply_due_at: datetime | None
    reply_date_agreed: bool = False


def running_deadline(
    state: State | str, deadlines: Deadlines
) -> tuple[DeadlineKind, datetime] | None:
    """The deadline the responder works against in ``state`` (None: nothing runs)."""
    kind = _RUNNING.get(State(state))
    if kind is None:
        return None
    due = deadlines.acceptance_due_at if kind is DeadlineKind.ACCEPTANCE else deadlines.reply_due_at
    return None if due is None else (kind, due)


@dataclass(frozen=True)
class DueAction:
    """One action on one deadline (its identity makes it happen once)."""

    kind: DeadlineKind
    due_at: datetime
    action: Action


def due_action(
    state: State | str, deadlines: Deadlines, now: datetime, policy: DeadlinePolicy
) -> DueAction | None:
    """The most advanced action due at ``now`` (earlier ones are not sent late)."""
    running = running_deadline(state, deadlines)
    if running is None:
        return None
    kind, due = running
    if now >= due + policy.grace:
        return DueAction(kind, due, Action.ESCALATE)
    if now >= due:
        return DueAction(kind, due, Action.REMIND_OVERDUE)
    if now >= due - policy.lead:
        return DueAction(kind, due, Action.REMIND_BEFORE)
    return None


def next_check(
    state: State | str, deadlines: Deadlines, now: datetime, policy: DeadlinePolicy
) -> datetime | None:
    """When the next action of the running deadline comes due (None: none left)."""
    running = running_deadline(state, deadlines)
    if running is None:
        return None
    _, due = running
    for at in (due - policy.lead, due, due + policy.grace):
        if at > now:
            return at
    return None


def action_document_id(requester: str, exchange_id: str, due: DueAction) -> str:
    """The id of the node's document for ``due``: the same on every try, on every process."""
    key = f"{exchange_id}|{due.kind.value}|{due.due_at.astimezone(UTC).isoformat()}|{due.action}"
    return scoped_id(requester, f"deadline-{sha256_hex(key.encode())[:40]}")
