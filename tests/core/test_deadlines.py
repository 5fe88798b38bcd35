"""Deadlines from signed documents, and which action is due when (sans-IO)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.core.coordination import Dispute
from gateway.core.deadlines import (
    Action,
    DeadlineKind,
    DeadlinePolicy,
    Deadlines,
    DueAction,
    action_document_id,
    deadline_metadata,
    due_action,
    end_of_day,
    next_check,
    running_deadline,
)
from gateway.core.docparts import Header
from gateway.core.documents import Acceptance, Answer, Reply
from gateway.core.lifecycle import State
from gateway.testbed import doctor_request

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
POLICY = DeadlinePolicy()


def test_the_request_sets_the_acceptance_deadline_and_the_requested_reply_date() -> None:
    request = doctor_request("X-1", "NO-HELSEDIR", "PT-OMD", T0)
    meta = deadline_metadata(request, POLICY)
    assert meta["acceptance_due_at"] == T0 + timedelta(days=7)
    assert meta["reply_due_at"] == datetime(2026, 3, 17, tzinfo=UTC)  # end of 16 March
    assert meta["reply_date_agreed"] is False


def test_the_acceptance_period_is_per_legislation_area() -> None:
    policy = DeadlinePolicy(acceptance_days=7, area_acceptance_days={"PQD": 3})
    request = doctor_request("X-1", "NO-HELSEDIR", "PT-OMD", T0)
    assert deadline_metadata(request, policy)["acceptance_due_at"] == T0 + timedelta(days=3)
    assert policy.acceptance_period("SERVICES") == timedelta(days=7)


def test_the_agreed_date_replaces_the_requested_one_and_milestones_are_recorded() -> None:
    header = Header("NO-HELSEDIR:X-1", "PT-OMD:1", "PT-OMD", "NO-HELSEDIR", T0, None, "r")
    meta = deadline_metadata(Acceptance(header, agreed_reply_date=date(2026, 4, 1)), POLICY)
    assert meta == {
        "reply_due_at": end_of_day(date(2026, 4, 1)),
        "reply_date_agreed": True,
        "accepted_at": T0,
    }
    assert deadline_metadata(Answer(header, (Reply("Q", ("YES",)),)), POLICY) == {"answered_at": T0}
    assert deadline_metadata(Dispute(header, "OTHER"), POLICY) == {"disputed_at": T0}


def test_which_deadline_runs_follows_the_state() -> None:
    deadlines = Deadlines(T0, T0 + timedelta(days=14))
    assert running_deadline(State.REQUESTED, deadlines) == (DeadlineKind.ACCEPTANCE, T0)
    assert running_deadline(State.FOLLOW_UP_REQUESTED, deadlines)[0] is DeadlineKind.REPLY  # type: ignore[index]
    for waiting_for_requester in (State.REPLY_DATE_PROPOSED, State.INFORMATION_REQUESTED):
        assert running_deadline(waiting_for_requester, deadlines) is None
    assert running_deadline(State.DISPUTED, deadlines) is None
    assert running_deadline(State.CLOSED, deadlines) is None


@pytest.mark.parametrize(
    ("after", "action"),
    [
        (-timedelta(hours=49), None),
        (-timedelta(hours=47), Action.REMIND_BEFORE),
        (timedelta(0), Action.REMIND_OVERDUE),
        (timedelta(days=2, hours=23), Action.REMIND_OVERDUE),
        (timedelta(days=3), Action.ESCALATE),
        (timedelta(days=300), Action.ESCALATE),
    ],
)
def test_the_most_advanced_action_due_is_chosen(after: timedelta, action: Action | None) -> None:
    deadlines = Deadlines(T0, None)
    due = due_action(State.REQUESTED, deadlines, T0 + after, POLICY)
    assert (due.action if due else None) is action


def test_next_check_is_the_next_action_time() -> None:
    deadlines = Deadlines(T0, None)
    assert next_check(State.REQUESTED, deadlines, T0 - timedelta(days=5), POLICY) == T0 - timedelta(
        hours=48
    )
    assert next_check(State.REQUESTED, deadlines, T0, POLICY) == T0 + timedelta(days=3)
    assert next_check(State.REQUESTED, deadlines, T0 + timedelta(days=4), POLICY) is None


def test_an_action_has_one_id_per_exchange_deadline_and_kind() -> None:
    due = DueAction(DeadlineKind.ACCEPTANCE, T0, Action.REMIND_BEFORE)
    first = action_document_id("NO-HELSEDIR", "NO-HELSEDIR:X-1", due)
    assert first == action_document_id("NO-HELSEDIR", "NO-HELSEDIR:X-1", due)
    assert first.startswith("NO-HELSEDIR:deadline-") and len(first) <= 100
    others = {
        action_document_id("NO-HELSEDIR", "NO-HELSEDIR:X-2", due),
        action_document_id(
            "NO-HELSEDIR", "NO-HELSEDIR:X-1", DueAction(due.kind, T0, Action.ESCALATE)
        ),
        action_document_id(
            "NO-HELSEDIR",
            "NO-HELSEDIR:X-1",
            DueAction(due.kind, T0 + timedelta(days=1), due.action),
        ),
    }
    assert first not in others and len(others) == 3
