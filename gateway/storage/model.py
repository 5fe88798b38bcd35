"""The small value types the stores take and return, and the lifecycle hook.

Tracking stage codes are ``gateway.core.lifecycle.Stage`` (re-exported here).

Plain frozen dataclasses: no database handles, no lazy loading. Bodies
(``bytes``) are the exact signed documents; they are personal data and must
never be logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.core.errors import GatewayError
from gateway.core.lifecycle import ExchangeSides, Stage

__all__ = [
    "KEEP_STATE",
    "Accepted",
    "DeadLetter",
    "Delivery",
    "DeliveryBacklog",
    "Exchange",
    "ExchangeInfo",
    "ExchangeSides",
    "InboundEnvelope",
    "InboundPayload",
    "InboundResult",
    "KeepState",
    "Lifecycle",
    "MessageMeta",
    "OutboxItem",
    "PushItem",
    "QueueDepth",
    "Refused",
    "Stage",
    "StoredMessage",
    "Submission",
    "TrackingEvent",
    "exchange_stage",
]


class Lifecycle(Protocol):
    """How an exchange's state follows from its documents (``gateway.core.lifecycle.ExchangeLifecycle``).

    The stores call it inside the storing transaction, with the stored
    exchange (its two authorities and state; None for a new exchange) and
    the document's sender, so that the sender's role is decided from what is
    stored, and the state change and the message are committed together.
    ``next_state`` may raise a ``GatewayError`` (for example an invalid
    transition): the document is then refused and nothing of it is stored.

    An implementation may also define ``stage_for(document_type, state) ->
    str | None``: the exchange-level tracking stage to record for an accepted
    document (e.g. ``answered``, or ``reminded`` when the state does not
    change). Without it, the new state is recorded when it changes.
    """

    def next_state(self, exchange: ExchangeSides | None, document_type: str, sender: str) -> str:
        """The state after ``sender``'s document of ``document_type``; ``exchange`` None: new."""
        ...

    def is_closed(self, state: str) -> bool:
        """Whether ``state`` closes the exchange (starts the retention timer)."""
        ...


class KeepState:
    """The default lifecycle: new exchanges are ``open``, documents never change the state.

    It records no exchange-level tracking stage.
    """

    initial = "open"

    def next_state(self, exchange: ExchangeSides | None, document_type: str, sender: str) -> str:
        return exchange.state if exchange is not None else self.initial

    def is_closed(self, state: str) -> bool:
        return False

    def stage_for(self, document_type: str, state: str) -> str | None:
        return None


KEEP_STATE = KeepState()


def exchange_stage(
    lifecycle: Lifecycle, document_type: str, before: str | None, after: str
) -> str | None:
    """The exchange-level tracking stage for a document accepted in state ``before`` → ``after``."""
    stage_for = getattr(lifecycle, "stage_for", None)
    if stage_for is not None:
        stage = stage_for(document_type, after)
        return None if stage is None else str(stage)
    return after if after != before else None


@dataclass(frozen=True)
class ExchangeInfo:
    """The exchange a document belongs to, as the document would open it.

    Used to create the exchange on its first document only. A later
    document's sender and receiver must be the stored exchange's two
    authorities (else ``ExchangeMismatch``); which of them sends is the
    lifecycle's decision, from the stored exchange.
    """

    exchange_id: str
    requester_authority: str
    responder_authority: str
    requester_node: str
    responder_node: str
    area: str
    question_set: str
    catalogue_version: str


@dataclass(frozen=True)
class Exchange:
    """An exchange's stored metadata (no personal data, no key)."""

    exchange_id: str
    requester_authority: str
    responder_authority: str
    requester_node: str
    responder_node: str
    area: str
    question_set: str
    catalogue_version: str
    state: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    erased_at: datetime | None
    #: When the retention's blocked stage made the personal data unreadable (None: not blocked).
    blocked_at: datetime | None = None
    # Deadlines and milestones (gateway.core.deadlines), and the state a dispute resumes.
    acceptance_due_at: datetime | None = None
    reply_due_at: datetime | None = None
    reply_date_agreed: bool = False
    accepted_at: datetime | None = None
    answered_at: datetime | None = None
    disputed_at: datetime | None = None
    resumes_to: str | None = None

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    def involves(self, authority_id: str) -> bool:
        """Whether ``authority_id`` is one of the two authorities of the exchange."""
        return authority_id in (self.requester_authority, self.responder_authority)


@dataclass(frozen=True)
class Submission:
    """A signed document a national system of this node submitted, bound for ``peer_node``."""

    message_id: str
    exchange: ExchangeInfo
    document_type: str
    sender_authority: str
    receiver_authority: str
    peer_node: str
    document_created_at: datetime
    body: bytes = field(repr=False)
    # The node-signed receipt answered to the submitter (returned again for a duplicate).
    receipt: bytes = field(repr=False)
    # The keyed digest of ``body`` for its audit entry (gateway.core.audit.AuditKey.digest).
    digest: str = ""
    # A Forward: the authority that becomes the exchange's responder (ForwardTo).
    forward_to: str | None = None
    # Exchange metadata the document sets (deadlines, milestones: no personal data).
    metadata: Mapping[str, object] = field(default_factory=dict)
    # Authorities of this node that also receive the document (its coordinators).
    copies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Accepted:
    """A stored message: its exchange, digest and the exchange state afterwards."""

    message_id: str
    exchange_id: str
    sha256: str
    state: str
    exchange_created: bool


@dataclass(frozen=True)
class InboundPayload:
    """One signed document carried in a peer node's envelope."""

    message_id: str
    exchange: ExchangeInfo
    document_type: str
    sender_authority: str
    receiver_authority: str
    document_created_at: datetime
    body: bytes = field(repr=False)
    # True: deliver by pushing to the authority's callback; False: it pulls.
    push: bool = False
    # The keyed digest of ``body`` for its audit entry (gateway.core.audit.AuditKey.digest).
    digest: str = ""
    # A Forward: the authority that becomes the exchange's responder (ForwardTo).
    forward_to: str | None = None
    # Exchange metadata the document sets (deadlines, milestones: no personal data).
    metadata: Mapping[str, object] = field(default_factory=dict)
    # Callers of this node that also receive the document (its coordinators; they pull).
    copies: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboundEnvelope:
    """A verified envelope from ``peer_node`` and the receipt this node answers with."""

    envelope_id: str
    peer_node: str
    sha256: str
    receipt: bytes = field(repr=False)
    payloads: Sequence[InboundPayload] = ()


@dataclass(frozen=True)
class InboundResult:
    """What storing an envelope did.

    ``receipt`` is the receipt to answer with: the stored one when the
    envelope id was seen before (``replayed``). ``duplicates`` are message ids
    already received in an earlier envelope (stored once, not delivered again).
    """

    receipt: bytes = field(repr=False)
    replayed: bool = False
    stored: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """A document of an envelope that cannot be stored; nothing of the envelope was stored.

    ``error`` says why (a lifecycle conflict, an exchange of other
    authorities, an erased exchange, a reused message id); the answer to the
    peer names ``message_id`` so that it sets that document aside.
    """

    message_id: str
    error: GatewayError


@dataclass(frozen=True)
class MessageMeta:
    """A stored message's metadata."""

    message_id: str
    exchange_id: str
    direction: str  # 'out': submitted here; 'in': received from a peer node
    document_type: str
    sender_authority: str
    receiver_authority: str
    peer_node: str
    sha256: str
    document_created_at: datetime
    stored_at: datetime
    erased: bool


@dataclass(frozen=True)
class StoredMessage:
    """A stored message with its unsealed signed bytes (personal data: never log ``body``)."""

    meta: MessageMeta
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class OutboxItem:
    """A claimed outbox row. ``attempts`` (counting this one) fences later updates."""

    id: int
    message_id: str
    peer_node: str
    attempts: int
    lease_until: datetime
    # When the row was queued (for "give up after" policies); set by claims.
    created_at: datetime | None = None


@dataclass(frozen=True)
class DeadLetter:
    """An outbox row that sending gave up on."""

    id: int
    message_id: str
    exchange_id: str
    document_type: str
    peer_node: str
    attempts: int
    last_error: str | None
    dead_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class QueueDepth:
    """Outbox rows of one peer in one state, and the creation time of the oldest."""

    peer_node: str
    state: str
    count: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    """A message waiting for (or delivered to) a national system; ``seq`` is the pull cursor."""

    seq: int
    authority_id: str
    message_id: str
    exchange_id: str
    document_type: str
    sender_authority: str
    sha256: str
    created_at: datetime
    delivered_at: datetime | None
    push_state: str | None
    attempts: int
    erased: bool


@dataclass(frozen=True)
class PushItem:
    """A claimed push delivery. ``attempts`` (counting this one) fences later updates."""

    seq: int
    authority_id: str
    message_id: str
    attempts: int
    lease_until: datetime


@dataclass(frozen=True)
class DeliveryBacklog:
    """Undelivered messages of one authority, and the creation time of the oldest."""

    authority_id: str
    count: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class TrackingEvent:
    """One stage of an exchange, as observed by ``node``."""

    id: int
    exchange_id: str
    stage: str
    at: datetime
    message_id: str | None
    node: str
    detail: str | None
