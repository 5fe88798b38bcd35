"""The exchange lifecycle: an explicit transition table, and the tracking stages.

Sans-IO in the h2 style: :data:`TRANSITIONS` maps ``(state, document type,
sender role)`` to the next state, and any triple not in the table is an error
(:class:`LifecycleViolation`, EXCHANGE_STATE_CONFLICT). Both nodes of an
exchange apply the same table to the documents they accept, in the order
they accept them.

Roles: the REQUESTER is the authority that sent the Request; the RESPONDER is
the authority it was sent to. Which role the sender of a document holds is
decided here, from the stored exchange (:func:`sender_role`), inside the
transaction that stores the document (:class:`ExchangeLifecycle`): a
document type does not tell, since some (Acceptance, InformationRequest,
reminders, escalations) may come from either side.

Reminders and escalations are tracked events: they are allowed only in open
states (a reminder only by the side the exchange is NOT waiting for, to the
side it waits for), and they leave the state unchanged.

Disputes and coordinators: either side may dispute an open exchange (a
Dispute: DISPUTED, waiting for the coordinators). The third role,
COORDINATOR, sends only the coordinator documents
(``gateway.core.schemas.COORDINATOR_DOCUMENT_TYPES``; the role follows from
the document type, whose signer is a coordinator). A coordinator reminds,
forwards to another competent authority, adds mediation notes, and records
the outcome of a dispute: DisputeEnded ends the exchange (DISPUTE_ENDED),
DisputeSettled returns it to the state it was in before the dispute. That
target is not fixed, so those triples are in :data:`RESUMPTIONS` rather than
:data:`TRANSITIONS`; the stored exchange remembers the state
(:attr:`ExchangeSides.resumes_to`).

:class:`Stage` lists what tracking records name: the transport stages of each
document (submitted, sent to peer, received by peer, delivered, refused) and
the exchange-level events (accepted, answered, closed, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from gateway.core.errors import Conflict
from gateway.core.schemas import (
    COORDINATOR_DOCUMENT_TYPES,
    EXCHANGE_DOCUMENT_TYPES,
    DocumentType,
)

__all__ = [
    "DOCUMENT_STAGES",
    "EXCHANGE_LIFECYCLE",
    "OPEN_STATES",
    "REQUESTER_DOCUMENTS",
    "RESPONDER_DOCUMENTS",
    "RESUMPTIONS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "ExchangeLifecycle",
    "ExchangeSides",
    "LifecycleViolation",
    "Role",
    "Stage",
    "State",
    "allowed_documents",
    "next_state",
    "sender_role",
    "stage_for",
    "state_diagram_mermaid",
    "transition_table_markdown",
    "waiting_for",
]


class LifecycleViolation(Conflict):
    """The document is not allowed in the exchange's current state, or not from this side."""

    code = "EXCHANGE_STATE_CONFLICT"


class Role(StrEnum):
    """The side of an exchange an authority is on."""

    REQUESTER = "requester"
    RESPONDER = "responder"
    COORDINATOR = "coordinator"  # a (national or regional) coordinator of either country


class State(StrEnum):
    """The state of an exchange, driven by the documents accepted into it."""

    NEW = "new"  # no document yet: only a Request may open the exchange
    REQUESTED = "requested"  # the request awaits the responder's acceptance
    FORWARDED = "forwarded"  # handed on; awaits the new responder's acceptance
    REPLY_DATE_PROPOSED = "reply_date_proposed"  # the responder proposed another date
    ACCEPTED = "accepted"  # reply date agreed; the responder works on the answer
    INFORMATION_REQUESTED = "information_requested"  # the responder needs more information
    INFORMATION_PROVIDED = "information_provided"  # the requester provided it
    ANSWERED = "answered"  # the answer is given; the requester closes or asks more
    FOLLOW_UP_REQUESTED = "follow_up_requested"  # the requester asked more after the answer
    CLOSED = "closed"  # the requester accepted the answer
    REJECTED = "rejected"  # the responder refused the request
    WITHDRAWN = "withdrawn"  # the requester withdrew the request
    DISPUTED = "disputed"  # a side disputed it; waits for the coordinators' outcome
    DISPUTE_ENDED = "dispute_ended"  # the coordinators ended the disputed exchange


#: States in which nothing more can happen; personal-data retention timers start here.
TERMINAL_STATES: frozenset[State] = frozenset(
    {State.CLOSED, State.REJECTED, State.WITHDRAWN, State.DISPUTE_ENDED}
)
#: States of a running exchange (reminders and escalations allowed).
OPEN_STATES: frozenset[State] = frozenset(State) - TERMINAL_STATES - {State.NEW}

_WAITING_FOR: Mapping[State, Role] = MappingProxyType(
    {
        State.REQUESTED: Role.RESPONDER,
        State.FORWARDED: Role.RESPONDER,
        State.REPLY_DATE_PROPOSED: Role.REQUESTER,
        State.ACCEPTED: Role.RESPONDER,
        State.INFORMATION_REQUESTED: Role.REQUESTER,
        State.INFORMATION_PROVIDED: Role.RESPONDER,
        State.ANSWERED: Role.REQUESTER,
        State.FOLLOW_UP_REQUESTED: Role.RESPONDER,
    }
)

D = DocumentType
REQ = Role.REQUESTER
RSP = Role.RESPONDER
COORD = Role.COORDINATOR


def _table() -> dict[tuple[State, str, Role], State]:
    t: dict[tuple[State, str, Role], State] = {
        (State.NEW, D.REQUEST, REQ): State.REQUESTED,
    }
    for awaiting in (State.REQUESTED, State.FORWARDED):
        t[(awaiting, D.ACCEPTANCE, RSP)] = State.ACCEPTED
        t[(awaiting, D.REPLY_DATE_PROPOSAL, RSP)] = State.REPLY_DATE_PROPOSED
        t[(awaiting, D.REJECTION, RSP)] = State.REJECTED
        t[(awaiting, D.FORWARD, RSP)] = State.FORWARDED
        t[(awaiting, D.WITHDRAWAL, REQ)] = State.WITHDRAWN
    t.update(
        {
            # the reply date: the requester agrees, or the responder revises or gives in
            (State.REPLY_DATE_PROPOSED, D.ACCEPTANCE, REQ): State.ACCEPTED,
            (State.REPLY_DATE_PROPOSED, D.ACCEPTANCE, RSP): State.ACCEPTED,
            (State.REPLY_DATE_PROPOSED, D.REPLY_DATE_PROPOSAL, RSP): State.REPLY_DATE_PROPOSED,
            (State.REPLY_DATE_PROPOSED, D.REJECTION, RSP): State.REJECTED,
            (State.REPLY_DATE_PROPOSED, D.WITHDRAWAL, REQ): State.WITHDRAWN,
            # the responder works: it asks for information, answers or rejects
            (State.ACCEPTED, D.INFORMATION_REQUEST, RSP): State.INFORMATION_REQUESTED,
            (State.ACCEPTED, D.ANSWER, RSP): State.ANSWERED,
            (State.ACCEPTED, D.REJECTION, RSP): State.REJECTED,
            (State.ACCEPTED, D.WITHDRAWAL, REQ): State.WITHDRAWN,
            (State.INFORMATION_REQUESTED, D.ADDITIONAL_INFORMATION, REQ): (
                State.INFORMATION_PROVIDED
            ),
            (State.INFORMATION_REQUESTED, D.ANSWER, RSP): State.ANSWERED,
            (State.INFORMATION_REQUESTED, D.REJECTION, RSP): State.REJECTED,
            (State.INFORMATION_REQUESTED, D.WITHDRAWAL, REQ): State.WITHDRAWN,
            (State.INFORMATION_PROVIDED, D.INFORMATION_REQUEST, RSP): (State.INFORMATION_REQUESTED),
            (State.INFORMATION_PROVIDED, D.ANSWER, RSP): State.ANSWERED,
            (State.INFORMATION_PROVIDED, D.REJECTION, RSP): State.REJECTED,
            (State.INFORMATION_PROVIDED, D.WITHDRAWAL, REQ): State.WITHDRAWN,
            # after the answer: the requester closes, or asks for further information
            (State.ANSWERED, D.CLOSURE, REQ): State.CLOSED,
            (State.ANSWERED, D.INFORMATION_REQUEST, REQ): State.FOLLOW_UP_REQUESTED,
            (State.FOLLOW_UP_REQUESTED, D.ANSWER, RSP): State.ANSWERED,
            (State.FOLLOW_UP_REQUESTED, D.CLOSURE, REQ): State.CLOSED,
        }
    )
    # tracked events: no state change
    for state, waited_for in _WAITING_FOR.items():
        waiting = RSP if waited_for is REQ else REQ
        t[(state, D.REMINDER, waiting)] = state
        for role in (REQ, RSP):
            t[(state, D.ESCALATION, role)] = state
            # either side may dispute; the coordinators decide
            t[(state, D.DISPUTE, role)] = State.DISPUTED
        # coordinators: remind the side waited for, add notes
        t[(state, D.COORDINATOR_REMINDER, COORD)] = state
        t[(state, D.MEDIATION_NOTE, COORD)] = state
    # the responder's coordinator hands the request on while nobody answered yet
    for state in (State.REQUESTED, State.FORWARDED, State.ACCEPTED, State.DISPUTED):
        t[(state, D.COORDINATOR_FORWARD, COORD)] = State.FORWARDED
    t.update(
        {
            (State.DISPUTED, D.ESCALATION, REQ): State.DISPUTED,
            (State.DISPUTED, D.ESCALATION, RSP): State.DISPUTED,
            (State.DISPUTED, D.MEDIATION_NOTE, COORD): State.DISPUTED,
            (State.DISPUTED, D.WITHDRAWAL, REQ): State.WITHDRAWN,
            (State.DISPUTED, D.DISPUTE_ENDED, COORD): State.DISPUTE_ENDED,
        }
    )
    return t


#: The whole lifecycle: (state, document type, sender role) -> next state.
TRANSITIONS: Mapping[tuple[State, str, Role], State] = MappingProxyType(_table())

#: Moves whose next state is the one the exchange was in before its dispute.
RESUMPTIONS: frozenset[tuple[State, str, Role]] = frozenset(
    {(State.DISPUTED, str(D.DISPUTE_SETTLED), COORD)}
)

#: States a dispute can start from (a settled dispute returns to one of them).
DISPUTABLE_STATES: frozenset[State] = frozenset(
    s for (s, d, _), after in TRANSITIONS.items() if d == D.DISPUTE and after is State.DISPUTED
)


def _sent_only_by(role: Role) -> frozenset[str]:
    by_role = {r: {d for (_, d, sender) in TRANSITIONS if sender is r} for r in Role}
    others = set().union(*(docs for r, docs in by_role.items() if r is not role))
    return frozenset(str(d) for d in by_role[role] - others)


#: Documents only the requester of an exchange sends (read from :data:`TRANSITIONS`).
REQUESTER_DOCUMENTS: frozenset[str] = _sent_only_by(Role.REQUESTER)
#: Documents only the responder of an exchange sends (read from :data:`TRANSITIONS`).
RESPONDER_DOCUMENTS: frozenset[str] = _sent_only_by(Role.RESPONDER)


def next_state(
    state: State | str,
    document_type: str,
    sender_role: Role | str,
    resumes_to: State | str | None = None,
) -> State:
    """The state after a document of ``document_type`` sent by ``sender_role``.

    ``resumes_to`` is the state before a dispute (for :data:`RESUMPTIONS`).
    Raises LifecycleViolation (EXCHANGE_STATE_CONFLICT) for any combination
    not in :data:`TRANSITIONS` or :data:`RESUMPTIONS`.
    """
    try:
        key = (State(state), str(document_type), Role(sender_role))
    except ValueError:
        raise LifecycleViolation(
            f"unknown lifecycle state {state!r} or role {sender_role!r}"
        ) from None
    if key[1] not in EXCHANGE_DOCUMENT_TYPES:
        raise LifecycleViolation(f"{document_type!r} is not an exchange document")
    if key in RESUMPTIONS:
        if resumes_to is None or State(resumes_to) not in DISPUTABLE_STATES:
            raise LifecycleViolation("the exchange has no state to resume after its dispute")
        return State(resumes_to)
    try:
        return TRANSITIONS[key]
    except KeyError:
        raise LifecycleViolation(
            f"a {key[1]} from the {key[2].value} is not allowed when the exchange is {key[0].value}"
        ) from None


def allowed_documents(state: State | str, sender_role: Role | str) -> frozenset[str]:
    """The document types ``sender_role`` may send in ``state``."""
    state, role = State(state), Role(sender_role)
    moves = set(TRANSITIONS) | RESUMPTIONS
    return frozenset(d for (s, d, r) in moves if s is state and r is role)


def waiting_for(state: State | str) -> Role | None:
    """The side an open exchange waits for (None when NEW or terminal)."""
    return _WAITING_FOR.get(State(state))


# --- tracking --------------------------------------------------------------------


class Stage(StrEnum):
    """What a tracking record says happened: the codes national systems follow."""

    # transport of one document, on the sending node
    SUBMITTED = "submitted"  # a national system submitted it and its node accepted it
    QUEUED = "queued"  # queued for the peer node (outbox)
    SENT_TO_PEER = "sent_to_peer"  # the node sent it to the peer node in an envelope
    RECEIVED_BY_PEER = "received_by_peer"  # the peer node's signed receipt came back
    REFUSED = "refused"  # a node refused it (an Error document says why)
    DEAD_LETTER = "dead_letter"  # retries exhausted; waits for an operator
    REQUEUED = "requeued"  # an operator retried a dead letter
    # transport of one document, on the receiving node
    RECEIVED = "received"  # accepted from the peer node (receipt sent)
    DELIVERED = "delivered"  # delivered to the addressee's national system
    # the exchange
    REQUESTED = "requested"
    REPLY_DATE_PROPOSED = "reply_date_proposed"
    ACCEPTED = "accepted"
    INFORMATION_REQUESTED = "information_requested"
    INFORMATION_PROVIDED = "information_provided"
    ANSWERED = "answered"
    FOLLOW_UP_REQUESTED = "follow_up_requested"
    CLOSED = "closed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    FORWARDED = "forwarded"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    DISPUTED = "disputed"
    MEDIATION_NOTE_ADDED = "mediation_note_added"
    DISPUTE_SETTLED = "dispute_settled"
    DISPUTE_ENDED = "dispute_ended"
    # data protection
    PERSONAL_DATA_ERASED = "personal_data_erased"
    PERSONAL_DATA_BLOCKED = "personal_data_blocked"


#: The exchange stage recorded when a document of each type is accepted.
DOCUMENT_STAGES: Mapping[str, Stage] = MappingProxyType(
    {
        D.REQUEST: Stage.REQUESTED,
        D.ACCEPTANCE: Stage.ACCEPTED,
        D.REPLY_DATE_PROPOSAL: Stage.REPLY_DATE_PROPOSED,
        D.ADDITIONAL_INFORMATION: Stage.INFORMATION_PROVIDED,
        D.ANSWER: Stage.ANSWERED,
        D.CLOSURE: Stage.CLOSED,
        D.REJECTION: Stage.REJECTED,
        D.FORWARD: Stage.FORWARDED,
        D.WITHDRAWAL: Stage.WITHDRAWN,
        D.REMINDER: Stage.REMINDED,
        D.ESCALATION: Stage.ESCALATED,
        D.DISPUTE: Stage.DISPUTED,
        D.COORDINATOR_REMINDER: Stage.REMINDED,
        D.COORDINATOR_FORWARD: Stage.FORWARDED,
        D.MEDIATION_NOTE: Stage.MEDIATION_NOTE_ADDED,
        D.DISPUTE_SETTLED: Stage.DISPUTE_SETTLED,
        D.DISPUTE_ENDED: Stage.DISPUTE_ENDED,
    }
)


def stage_for(document_type: str, new_state: State | str) -> Stage:
    """The exchange stage to record for an accepted document.

    An InformationRequest is INFORMATION_REQUESTED before the answer and
    FOLLOW_UP_REQUESTED after it; the other types map one to one.
    """
    if document_type == D.INFORMATION_REQUEST:
        if State(new_state) is State.FOLLOW_UP_REQUESTED:
            return Stage.FOLLOW_UP_REQUESTED
        return Stage.INFORMATION_REQUESTED
    try:
        return DOCUMENT_STAGES[document_type]
    except KeyError:
        raise LifecycleViolation(f"{document_type!r} is not an exchange document") from None


@dataclass(frozen=True)
class ExchangeSides:
    """A stored exchange as the lifecycle sees it: its two authorities and its state.

    ``resumes_to``: the state before the exchange was disputed (None otherwise).
    """

    requester: str
    responder: str
    state: str
    resumes_to: str | None = None

    def has_parties(self, sender: str, receiver: str) -> bool:
        """Whether ``sender`` and ``receiver`` are this exchange's two authorities."""
        return {sender, receiver} == {self.requester, self.responder}


def sender_role(
    exchange: ExchangeSides | None, sender: str, document_type: str | None = None
) -> Role:
    """The role of authority ``sender`` in the stored ``exchange`` (None: not stored yet).

    A coordinator document is the COORDINATOR's, whoever the header names
    (admission bound its signer to a coordinator). Otherwise whoever opens
    an exchange requests (only a Request opens one); afterwards the stored
    requester is the REQUESTER and the other party the RESPONDER, whatever
    the document type. The caller checks first that the sender is a party
    (:meth:`ExchangeSides.has_parties`).
    """
    if document_type in COORDINATOR_DOCUMENT_TYPES:
        return Role.COORDINATOR
    if exchange is None or sender == exchange.requester:
        return Role.REQUESTER
    return Role.RESPONDER


class ExchangeLifecycle:
    """The lifecycle the stores apply inside the storing transaction.

    Fits the storage layer's ``Lifecycle`` protocol: ``next_state(exchange,
    document_type, sender)`` with ``exchange`` the stored exchange (None for
    a new one) decides the sender's role (:func:`sender_role`) and the next
    state (:func:`next_state`), or raises LifecycleViolation; ``is_closed``
    says whether a state ends the exchange.
    """

    def next_state(self, exchange: ExchangeSides | None, document_type: str, sender: str) -> str:
        state = State.NEW if exchange is None else exchange.state
        resumes_to = None if exchange is None else exchange.resumes_to
        role = sender_role(exchange, sender, document_type)
        return next_state(state, document_type, role, resumes_to)

    def is_closed(self, state: str) -> bool:
        """Whether ``state`` ends the exchange (the retention timers start)."""
        return state in TERMINAL_STATES

    def stage_for(self, document_type: str, state: str) -> str:
        """The exchange-level tracking stage of an accepted document (:func:`stage_for`):
        tracked events (``reminded``, ``escalated``, ...) are recorded too."""
        return stage_for(document_type, state)


#: The one lifecycle of the gateway's exchanges (stateless).
EXCHANGE_LIFECYCLE = ExchangeLifecycle()


def transition_table_markdown() -> str:
    """The transition table as the Markdown table docs/protocol.md includes."""
    lines = [
        "| state | document | sent by | next state |",
        "|---|---|---|---|",
    ]
    order = {s: i for i, s in enumerate(State)}
    doc_order = {d: i for i, d in enumerate(DocumentType)}
    role_order = {r: i for i, r in enumerate(Role)}
    rows: list[tuple[tuple[State, str, Role], State | None]] = list(TRANSITIONS.items())
    rows += [(key, None) for key in RESUMPTIONS]
    for (state, doc, role), after in sorted(
        rows,
        key=lambda kv: (order[kv[0][0]], doc_order[DocumentType(kv[0][1])], role_order[kv[0][2]]),
    ):
        if after is None:
            shown = "*(the state before the dispute)*"
        elif after is state and doc in _TRACKED:
            shown = "*(unchanged: tracked)*"
        else:
            shown = f"`{after.value}`"
        lines.append(f"| `{state.value}` | `{doc}` | {role.value} | {shown} |")
    return "\n".join(lines) + "\n"


#: Documents that are tracked events when they leave the state unchanged.
_TRACKED = frozenset({D.REMINDER, D.ESCALATION, D.COORDINATOR_REMINDER, D.MEDIATION_NOTE})


def state_diagram_mermaid() -> str:
    """The lifecycle as the mermaid stateDiagram docs/protocol.md includes.

    One arrow per state change (tracked events that keep the state are left
    out), labelled with the documents and their senders (R: requester,
    P: responder, C: coordinator); settling a dispute returns to the state
    before it, drawn as one arrow back to each state a dispute can start from.
    """
    short = {Role.REQUESTER: "R", Role.RESPONDER: "P", Role.COORDINATOR: "C"}
    edges: dict[tuple[str, str], list[str]] = {}
    order = {s: i for i, s in enumerate(State)}

    def name(state: State) -> str:
        return "[*]" if state is State.NEW else state.value

    for (state, doc, role), after in TRANSITIONS.items():
        if after is state:
            continue
        edges.setdefault((name(state), name(after)), []).append(f"{doc} ({short[role]})")
    for state, doc, role in RESUMPTIONS:
        for before in DISPUTABLE_STATES:
            edges.setdefault((name(state), name(before)), []).append(f"{doc} ({short[role]})")
    lines = ["stateDiagram-v2"]
    by_name = {name(s): order[s] for s in State}
    for (source, target), labels in sorted(
        edges.items(), key=lambda kv: (by_name[kv[0][0]], by_name[kv[0][1]])
    ):
        lines.append(f"    {source} --> {target}: {', '.join(sorted(set(labels)))}")
    for state in sorted(TERMINAL_STATES, key=order.__getitem__):
        lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines) + "\n"
