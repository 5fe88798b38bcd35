"""The exchange lifecycle: allowed sequences pass, every pair outside the table raises."""

from __future__ import annotations

import itertools
import pathlib

import pytest

from gateway.core.errors import Conflict
from gateway.core.lifecycle import (
    DOCUMENT_STAGES,
    OPEN_STATES,
    REQUESTER_DOCUMENTS,
    RESPONDER_DOCUMENTS,
    RESUMPTIONS,
    TERMINAL_STATES,
    TRANSITIONS,
    ExchangeLifecycle,
    ExchangeSides,
    LifecycleViolation,
    Role,
    Stage,
    State,
    allowed_documents,
    next_state,
    sender_role,
    stage_for,
    transition_table_markdown,
    waiting_for,
)
from gateway.core.schemas import (
    COORDINATOR_DOCUMENT_TYPES,
    EXCHANGE_DOCUMENT_TYPES,
    NODE_DOCUMENT_TYPES,
)

REQ, RSP = Role.REQUESTER, Role.RESPONDER
PROTOCOL_MD = pathlib.Path(__file__).parents[2] / "docs" / "protocol.md"


def run(steps: list[tuple[str, Role]]) -> list[State]:
    state = State.NEW
    seen = []
    for document_type, role in steps:
        state = next_state(state, document_type, role)
        seen.append(state)
    return seen


def test_the_straight_path_from_request_to_closure() -> None:
    assert run([("Request", REQ), ("Acceptance", RSP), ("Answer", RSP), ("Closure", REQ)]) == [
        State.REQUESTED,
        State.ACCEPTED,
        State.ANSWERED,
        State.CLOSED,
    ]


def test_the_reply_date_is_negotiated_then_agreed_by_the_requester() -> None:
    assert run(
        [
            ("Request", REQ),
            ("ReplyDateProposal", RSP),
            ("ReplyDateProposal", RSP),
            ("Acceptance", REQ),
        ]
    )[-2:] == [State.REPLY_DATE_PROPOSED, State.ACCEPTED]


def test_information_can_be_requested_and_provided_repeatedly() -> None:
    states = run(
        [
            ("Request", REQ),
            ("Acceptance", RSP),
            ("InformationRequest", RSP),
            ("AdditionalInformation", REQ),
            ("InformationRequest", RSP),
            ("AdditionalInformation", REQ),
            ("Answer", RSP),
        ]
    )
    assert states[2:] == [
        State.INFORMATION_REQUESTED,
        State.INFORMATION_PROVIDED,
        State.INFORMATION_REQUESTED,
        State.INFORMATION_PROVIDED,
        State.ANSWERED,
    ]


def test_the_requester_may_ask_more_after_the_answer() -> None:
    states = run(
        [
            ("Request", REQ),
            ("Acceptance", RSP),
            ("Answer", RSP),
            ("InformationRequest", REQ),
            ("Answer", RSP),
            ("Closure", REQ),
        ]
    )
    assert states[3:] == [State.FOLLOW_UP_REQUESTED, State.ANSWERED, State.CLOSED]


def test_a_forwarded_request_is_taken_on_by_the_new_responder() -> None:
    states = run([("Request", REQ), ("Forward", RSP), ("Forward", RSP), ("Acceptance", RSP)])
    assert states == [State.REQUESTED, State.FORWARDED, State.FORWARDED, State.ACCEPTED]


@pytest.mark.parametrize(
    ("steps", "end"),
    [
        ([("Request", REQ), ("Rejection", RSP)], State.REJECTED),
        ([("Request", REQ), ("Acceptance", RSP), ("Rejection", RSP)], State.REJECTED),
        ([("Request", REQ), ("Withdrawal", REQ)], State.WITHDRAWN),
        ([("Request", REQ), ("ReplyDateProposal", RSP), ("Withdrawal", REQ)], State.WITHDRAWN),
        (
            [
                ("Request", REQ),
                ("Acceptance", RSP),
                ("InformationRequest", RSP),
                ("Withdrawal", REQ),
            ],
            State.WITHDRAWN,
        ),
    ],
)
def test_an_exchange_ends_by_rejection_or_withdrawal(
    steps: list[tuple[str, Role]], end: State
) -> None:
    assert run(steps)[-1] is end
    assert end in TERMINAL_STATES


def test_reminders_and_escalations_leave_the_state_unchanged() -> None:
    for state in OPEN_STATES - {State.DISPUTED}:
        waited = waiting_for(state)
        assert waited is not None
        other = RSP if waited is REQ else REQ
        assert next_state(state, "Reminder", other) is state
        for role in (REQ, RSP):
            assert next_state(state, "Escalation", role) is state
        assert next_state(state, "CoordinatorReminder", Role.COORDINATOR) is state
        assert next_state(state, "MediationNote", Role.COORDINATOR) is state
    assert waiting_for(State.DISPUTED) is None


def test_only_the_waiting_side_sends_a_reminder() -> None:
    assert next_state(State.ACCEPTED, "Reminder", REQ) is State.ACCEPTED
    with pytest.raises(LifecycleViolation):
        next_state(State.ACCEPTED, "Reminder", RSP)
    assert next_state(State.INFORMATION_REQUESTED, "Reminder", RSP) is State.INFORMATION_REQUESTED
    with pytest.raises(LifecycleViolation):
        next_state(State.INFORMATION_REQUESTED, "Reminder", REQ)


@pytest.mark.parametrize(
    ("state", "document_type", "role"),
    [
        (State.NEW, "Answer", RSP),
        (State.NEW, "Request", RSP),
        (State.REQUESTED, "Request", REQ),
        (State.REQUESTED, "Answer", RSP),
        (State.REQUESTED, "Acceptance", REQ),
        (State.REQUESTED, "Withdrawal", RSP),
        (State.ACCEPTED, "Closure", REQ),
        (State.ACCEPTED, "AdditionalInformation", REQ),
        (State.ANSWERED, "Withdrawal", REQ),
        (State.ANSWERED, "Answer", RSP),
        (State.INFORMATION_REQUESTED, "AdditionalInformation", RSP),
        (State.CLOSED, "Reminder", REQ),
        (State.CLOSED, "Escalation", RSP),
        (State.WITHDRAWN, "Acceptance", RSP),
        (State.REJECTED, "Request", REQ),
    ],
)
def test_disallowed_pairs_raise_a_state_conflict(
    state: State, document_type: str, role: Role
) -> None:
    with pytest.raises(LifecycleViolation) as caught:
        next_state(state, document_type, role)
    assert caught.value.code == "EXCHANGE_STATE_CONFLICT"
    assert caught.value.http_status == 409
    assert isinstance(caught.value, Conflict)
    assert document_type in str(caught.value) and state.value in str(caught.value)


def test_every_combination_outside_the_table_raises() -> None:
    allowed = 0
    for state, doc, role in itertools.product(State, sorted(EXCHANGE_DOCUMENT_TYPES), Role):
        if (state, doc, role) in TRANSITIONS:
            assert next_state(state, doc, role) is TRANSITIONS[(state, doc, role)]
            allowed += 1
        else:
            with pytest.raises(LifecycleViolation):
                next_state(state, doc, role)
    assert allowed == len(TRANSITIONS)


def test_terminal_states_accept_nothing() -> None:
    for state in TERMINAL_STATES:
        for role in Role:
            assert allowed_documents(state, role) == frozenset()


def test_every_open_state_can_be_left_and_every_state_reached() -> None:
    reached = {State.NEW} | set(TRANSITIONS.values())
    assert reached == set(State)
    for state in OPEN_STATES | {State.NEW}:
        assert any(s is state and after is not state for (s, _, _), after in TRANSITIONS.items())


@pytest.mark.parametrize("document_type", [*sorted(NODE_DOCUMENT_TYPES), "Bogus"])
def test_node_documents_are_not_lifecycle_events(document_type: str) -> None:
    with pytest.raises(LifecycleViolation):
        next_state(State.ACCEPTED, document_type, RSP)


def test_unknown_states_and_roles_raise_a_state_conflict() -> None:
    with pytest.raises(LifecycleViolation):
        next_state("pondering", "Answer", RSP)
    with pytest.raises(LifecycleViolation):
        next_state(State.ACCEPTED, "Answer", "coordinator")


def test_plain_strings_are_accepted_for_state_and_role() -> None:
    assert next_state("accepted", "Answer", "responder") is State.ANSWERED


def test_allowed_documents_lists_what_a_side_may_send() -> None:
    assert allowed_documents(State.REQUESTED, RSP) == {
        "Acceptance",
        "ReplyDateProposal",
        "Rejection",
        "Forward",
        "Escalation",
        "Dispute",
    }
    assert allowed_documents(State.ANSWERED, REQ) == {
        "Closure",
        "InformationRequest",
        "Escalation",
        "Dispute",
    }
    assert allowed_documents(State.DISPUTED, Role.COORDINATOR) == {
        "CoordinatorForward",
        "MediationNote",
        "DisputeSettled",
        "DisputeEnded",
    }


def test_waiting_for_is_none_outside_open_states() -> None:
    assert waiting_for(State.NEW) is None
    for state in TERMINAL_STATES:
        assert waiting_for(state) is None


# --- tracking stages --------------------------------------------------------------------


def test_the_tracking_stages_cover_transport_and_exchange_events() -> None:
    for value in (
        "submitted",
        "sent_to_peer",
        "received_by_peer",
        "delivered",
        "accepted",
        "answered",
        "closed",
        "refused",
        "personal_data_erased",
    ):
        assert Stage(value)


def test_every_exchange_document_maps_to_a_stage() -> None:
    for (_, doc, _), after in TRANSITIONS.items():
        assert isinstance(stage_for(doc, after), Stage)
    assert set(DOCUMENT_STAGES) | {"InformationRequest"} == EXCHANGE_DOCUMENT_TYPES
    assert (
        stage_for("InformationRequest", State.INFORMATION_REQUESTED) is Stage.INFORMATION_REQUESTED
    )
    assert stage_for("InformationRequest", State.FOLLOW_UP_REQUESTED) is Stage.FOLLOW_UP_REQUESTED
    assert stage_for("Closure", State.CLOSED) is Stage.CLOSED
    with pytest.raises(LifecycleViolation):
        stage_for("Envelope", State.ACCEPTED)


def test_the_storage_adapter_decides_the_role_from_the_stored_exchange() -> None:
    life = ExchangeLifecycle()

    def stored(state: State) -> ExchangeSides:
        return ExchangeSides("NO-HELSEDIR", "PT-OMD", state)

    assert life.next_state(None, "Request", "NO-HELSEDIR") == "requested"
    assert life.next_state(stored(State.REQUESTED), "Acceptance", "PT-OMD") == "accepted"
    with pytest.raises(LifecycleViolation):
        life.next_state(stored(State.REQUESTED), "Acceptance", "NO-HELSEDIR")
    with pytest.raises(LifecycleViolation):
        life.next_state(None, "Answer", "PT-OMD")
    # The same document type from either side, as the table allows.
    proposed = stored(State.REPLY_DATE_PROPOSED)
    assert life.next_state(proposed, "Acceptance", "NO-HELSEDIR") == "accepted"
    assert life.next_state(proposed, "Acceptance", "PT-OMD") == "accepted"
    answered = stored(State.ANSWERED)
    assert life.next_state(answered, "InformationRequest", "NO-HELSEDIR") == "follow_up_requested"
    with pytest.raises(LifecycleViolation):
        life.next_state(answered, "InformationRequest", "PT-OMD")
    assert [s for s in State if life.is_closed(s)] == [
        State.CLOSED,
        State.REJECTED,
        State.WITHDRAWN,
        State.DISPUTE_ENDED,
    ]


def test_sender_role_follows_the_stored_exchange_not_the_document_type() -> None:
    sides = ExchangeSides("NO-HELSEDIR", "PT-OMD", State.ANSWERED)
    assert sender_role(None, "PT-OMD") is REQ  # whoever opens an exchange requests
    assert sender_role(sides, "NO-HELSEDIR") is REQ
    assert sender_role(sides, "PT-OMD") is RSP
    assert sides.has_parties("PT-OMD", "NO-HELSEDIR")
    assert not sides.has_parties("PT-OMD", "NO-UDIR")


def test_requester_and_responder_documents_are_read_from_the_table() -> None:
    assert REQUESTER_DOCUMENTS == {"Request", "AdditionalInformation", "Closure", "Withdrawal"}
    assert RESPONDER_DOCUMENTS == {"ReplyDateProposal", "Answer", "Rejection", "Forward"}
    both = EXCHANGE_DOCUMENT_TYPES - REQUESTER_DOCUMENTS - RESPONDER_DOCUMENTS
    coordinator = {d for (_, d, role) in set(TRANSITIONS) | RESUMPTIONS if role is Role.COORDINATOR}
    assert coordinator == COORDINATOR_DOCUMENT_TYPES
    assert both - coordinator == {
        "Acceptance",
        "InformationRequest",
        "Reminder",
        "Escalation",
        "Dispute",
    }
    for document in both - coordinator:
        assert {role for (_, d, role) in TRANSITIONS if d == document} == {REQ, RSP}


def test_protocol_md_shows_the_transition_table_of_the_code() -> None:
    assert transition_table_markdown() in PROTOCOL_MD.read_text(encoding="utf-8")


# --- disputes and coordinators ------------------------------------------------------------

COORD = Role.COORDINATOR


@pytest.mark.parametrize("state", sorted(OPEN_STATES - {State.DISPUTED}))
@pytest.mark.parametrize("role", [REQ, RSP])
def test_either_side_disputes_an_open_exchange_and_settling_returns_to_its_state(
    state: State, role: Role
) -> None:
    assert next_state(state, "Dispute", role) is State.DISPUTED
    assert next_state(State.DISPUTED, "DisputeSettled", COORD, resumes_to=state) is state


def test_a_dispute_waits_for_the_coordinators_only() -> None:
    assert allowed_documents(State.DISPUTED, RSP) == {"Escalation"}
    assert allowed_documents(State.DISPUTED, REQ) == {"Escalation", "Withdrawal"}
    assert next_state(State.DISPUTED, "DisputeEnded", COORD) is State.DISPUTE_ENDED
    assert State.DISPUTE_ENDED in TERMINAL_STATES
    with pytest.raises(LifecycleViolation):
        next_state(State.DISPUTED, "Dispute", RSP)


def test_settling_needs_the_state_before_the_dispute() -> None:
    with pytest.raises(LifecycleViolation):
        next_state(State.DISPUTED, "DisputeSettled", COORD)
    with pytest.raises(LifecycleViolation):
        next_state(State.DISPUTED, "DisputeSettled", COORD, resumes_to=State.CLOSED)
    with pytest.raises(LifecycleViolation):
        next_state(State.ACCEPTED, "DisputeSettled", COORD, resumes_to=State.ACCEPTED)


def test_coordinator_documents_are_the_coordinators_whoever_the_header_names() -> None:
    stored = ExchangeSides("NO-HELSEDIR", "PT-OMD", State.ACCEPTED)
    assert sender_role(stored, "NO-HELSEDIR", "MediationNote") is COORD
    assert sender_role(stored, "NO-HELSEDIR", "Dispute") is REQ
    life = ExchangeLifecycle()
    assert life.next_state(stored, "CoordinatorForward", "PT-OMD") == "forwarded"
    disputed = ExchangeSides("NO-HELSEDIR", "PT-OMD", State.DISPUTED, resumes_to="accepted")
    assert life.next_state(disputed, "DisputeSettled", "PT-OMD") == "accepted"
    # a party cannot send a coordinator's document as itself
    for _, doc, role in TRANSITIONS:
        if doc in COORDINATOR_DOCUMENT_TYPES:
            assert role is COORD
    assert {k for k in RESUMPTIONS} == {(State.DISPUTED, "DisputeSettled", COORD)}


def test_coordinators_forward_only_before_the_answer() -> None:
    forwardable = {s for (s, d, _) in TRANSITIONS if d == "CoordinatorForward"}
    assert forwardable == {State.REQUESTED, State.FORWARDED, State.ACCEPTED, State.DISPUTED}


def test_protocol_md_shows_the_state_diagram_of_the_code() -> None:
    from gateway.core.lifecycle import state_diagram_mermaid

    text = PROTOCOL_MD.read_text(encoding="utf-8")
    assert "```mermaid\n" + state_diagram_mermaid() + "```" in text
