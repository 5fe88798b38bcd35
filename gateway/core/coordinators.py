"""Coordinators, their scope, and the admission of coordinator- and node-signed documents.

A **coordinator** (national or regional IMI coordinator) is registered at
its country's node with a scope: the whole country, a list of regions, or a
list of authorities (:class:`Coordinator`). Its certificate is issued by the
node CA and bound to its id like a national system's
(``urn:imi-gateway:authority:<ID>``), and marked as a coordinator's
(``urn:imi-gateway:coordinator:<ID>``, :data:`COORDINATOR_URI_PREFIX`): the
API's guard names it like any caller, and only a marked certificate may
sign coordinator documents, while a marked certificate may sign nothing else.

The responsible coordinator of an authority (:func:`responsible_coordinator`)
is the most specific one covering it: one listing the authority, else one
listing its region, else the national one.

Admission here (the parts ``gateway.core.admission`` does not cover):

* :func:`admit_coordinator_submission`: a coordinator of this node submits
  a coordinator document (signed with its certificate);
* :func:`admit_node_document`: this node's own Reminder or Escalation
  (deadline service), signed with the node's signing key;
* :func:`admit_peer_special`: a peer's node-signed Reminder/Escalation
  (verified against the peer's pinned signing certificate) or a coordinator
  document of the peer's country (verified against the peer's pinned CA and
  the coordinator mark).

Sans-IO; never logs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509

from gateway.core.access import ForwardTargetInvalid
from gateway.core.admission import (
    Admitted,
    ReceiverNodeUnknown,
    ReceiverNotHere,
    SenderNotBound,
    check_window,
    country_of,
    owns_id,
)
from gateway.core.certs import TrustStore, node_id_of
from gateway.core.coordination import CoordinatorForward
from gateway.core.documents import ExchangeDocument, read_exchange_document
from gateway.core.envelopes import Payload
from gateway.core.errors import AccessDenied, InvalidInput
from gateway.core.ns import is_authority_id
from gateway.core.schemas import COORDINATOR_DOCUMENT_TYPES, DocumentType
from gateway.core.signing import Verified, verify

__all__ = [
    "COORDINATOR_URI_PREFIX",
    "NODE_DOCUMENT_TYPES",
    "Coordinator",
    "CoordinatorInvalid",
    "CoordinatorNotBound",
    "CoordinatorOutOfScope",
    "CoordinatorUnknown",
    "ForwardTargetInvalid",
    "NodeDocumentRefused",
    "Scope",
    "admit_coordinator_submission",
    "admit_node_document",
    "admit_peer_special",
    "coordinator_copies",
    "coordinator_id_of",
    "refuse_coordinator_as_authority",
    "responsible_coordinator",
]

#: subjectAltName URI prefix marking a coordinator's certificate.
COORDINATOR_URI_PREFIX = "urn:imi-gateway:coordinator:"

#: The exchange documents a node signs itself (deadline reminders and escalations).
NODE_DOCUMENT_TYPES: frozenset[str] = frozenset({DocumentType.REMINDER, DocumentType.ESCALATION})

#: Documents whose copy goes to the responsible coordinator on each node.
COORDINATOR_COPIES: frozenset[str] = frozenset(
    {
        DocumentType.ESCALATION,
        DocumentType.DISPUTE,
        DocumentType.MEDIATION_NOTE,
        DocumentType.DISPUTE_SETTLED,
        DocumentType.DISPUTE_ENDED,
        DocumentType.COORDINATOR_FORWARD,
    }
)


# --- errors ---------------------------------------------------------------------------


class CoordinatorUnknown(AccessDenied):
    """The caller is not a coordinator registered at this node (imi-gateway coordinators add)."""

    code = "COORDINATOR_UNKNOWN"


class CoordinatorOutOfScope(AccessDenied):
    """The exchange's authority of this country is outside the coordinator's scope (national, regions or authorities)."""

    code = "COORDINATOR_OUT_OF_SCOPE"


class CoordinatorNotBound(AccessDenied):
    """A coordinator document whose Coordinator is not the coordinator bound to its signing certificate, or a document of another type signed with a coordinator's certificate."""

    code = "COORDINATOR_NOT_BOUND"


class NodeDocumentRefused(AccessDenied):
    """A node-signed exchange document that is not a Reminder or Escalation of the signing node's own authorities."""

    code = "NODE_DOCUMENT_REFUSED"


class CoordinatorInvalid(InvalidInput):
    """A coordinator registration is malformed (id, name or scope)."""

    code = "COORDINATOR_INVALID"


# --- coordinators and scope -----------------------------------------------------------


class Scope(StrEnum):
    """What a coordinator covers."""

    AUTHORITIES = "authorities"  # the listed authorities
    REGIONS = "regions"  # the authorities of the listed regions
    NATIONAL = "national"  # every authority of its country


_SPECIFICITY = {Scope.AUTHORITIES: 0, Scope.REGIONS: 1, Scope.NATIONAL: 2}


@dataclass(frozen=True)
class Coordinator:
    """A registered coordinator: its id (authority-id shaped), name and scope."""

    id: str
    name: str
    scope: Scope
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not is_authority_id(self.id):
            raise CoordinatorInvalid(
                "id must look like an authority id (country code, hyphen, upper-case letters)"
            )
        if not self.name.strip():
            raise CoordinatorInvalid("name must not be empty")
        if (self.scope is Scope.NATIONAL) != (not self.members):
            raise CoordinatorInvalid(
                "a national scope lists nothing; regions/authorities list some"
            )
        if self.scope is Scope.AUTHORITIES:
            for member in self.members:
                if not is_authority_id(member) or country_of(member) != self.country:
                    raise CoordinatorInvalid("authorities must be authority ids of its country")

    @property
    def country(self) -> str:
        return country_of(self.id)

    def covers(self, authority_id: str, region: str | None) -> bool:
        """Whether ``authority_id`` (in ``region``, if known) is in this coordinator's scope."""
        if country_of(authority_id) != self.country:
            return False
        if self.scope is Scope.NATIONAL:
            return True
        if self.scope is Scope.REGIONS:
            return region is not None and region in self.members
        return authority_id in self.members


def responsible_coordinator(
    coordinators: Iterable[Coordinator], authority_id: str, region: str | None
) -> Coordinator | None:
    """The most specific coordinator covering ``authority_id`` (ties: the smallest id)."""
    covering = [c for c in coordinators if c.covers(authority_id, region)]
    if not covering:
        return None
    return min(covering, key=lambda c: (_SPECIFICITY[c.scope], c.id))


def coordinator_copies(
    document: ExchangeDocument,
    local_authority: str,
    coordinators: Iterable[Coordinator],
    region: str | None,
) -> tuple[str, ...]:
    """Who besides the addressee receives ``document`` on this node: the coordinator
    responsible for the exchange's authority here, for escalations, disputes and
    coordinator documents (never the coordinator who sent it)."""
    if document.document_type not in COORDINATOR_COPIES:
        return ()
    found = responsible_coordinator(coordinators, local_authority, region)
    signer = (
        getattr(document, "coordinator", None)
        if document.document_type in COORDINATOR_DOCUMENT_TYPES
        else None
    )
    if found is None or found.id == signer:
        return ()
    if found.id == document.header.receiver:
        return ()
    return (found.id,)


# --- certificates ---------------------------------------------------------------------


def _san_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]


def coordinator_id_of(cert: x509.Certificate) -> str | None:
    """The coordinator id a certificate is marked for (exactly one mark), or None."""
    values = {
        uri[len(COORDINATOR_URI_PREFIX) :]
        for uri in _san_uris(cert)
        if uri.startswith(COORDINATOR_URI_PREFIX)
    }
    if len(values) != 1:
        return None
    value = values.pop()
    return value if is_authority_id(value) else None


def refuse_coordinator_as_authority(verified: Verified, document_type: str) -> None:
    """A coordinator's certificate signs only coordinator documents, and an
    authority's certificate never signs one (COORDINATOR_NOT_BOUND)."""
    marked = coordinator_id_of(verified.certificate) is not None
    if marked or document_type in COORDINATOR_DOCUMENT_TYPES:
        raise CoordinatorNotBound(
            "coordinator documents are signed by coordinators, and coordinators sign nothing else"
        )


def _check_exchange_owned(document: ExchangeDocument) -> None:
    header = document.header
    if not (
        owns_id(header.sender, header.exchange_id) or owns_id(header.receiver, header.exchange_id)
    ):
        raise SenderNotBound("ExchangeId must begin with one of the exchange's authorities and ':'")


def _check_coordinator_document(
    verified: Verified, document: ExchangeDocument, country: str
) -> str:
    if document.document_type not in COORDINATOR_DOCUMENT_TYPES:
        raise CoordinatorNotBound("a coordinator's certificate signs only coordinator documents")
    coordinator: str = getattr(document, "coordinator")  # noqa: B009 (every coordinator document has it)
    header = document.header
    if (
        coordinator_id_of(verified.certificate) != coordinator
        or verified.authority_id != coordinator
    ):
        raise CoordinatorNotBound("Coordinator is not bound to the signing certificate")
    if country_of(coordinator) != country or country_of(header.sender) != country:
        raise CoordinatorNotBound("the coordinator and SenderAuthority must be of the sending node")
    if not owns_id(coordinator, header.document_id):
        raise CoordinatorNotBound("DocumentId must begin with the coordinator's id and ':'")
    if isinstance(document, CoordinatorForward) and (
        country_of(document.forward_to) != country or document.forward_to == header.sender
    ):
        raise ForwardTargetInvalid(
            "ForwardTo must be another authority of the coordinator's country"
        )
    _check_exchange_owned(document)
    return coordinator


def admit_coordinator_submission(
    data: bytes,
    *,
    caller: str,
    node_id: str,
    trust: TrustStore,
    peers: Collection[str],
    now: datetime,
    window_seconds: float,
) -> Admitted:
    """Admit a coordinator document submitted by coordinator ``caller`` of this node."""
    verified = verify(data, trust, now=now)
    document = read_exchange_document(verified.root)
    coordinator = _check_coordinator_document(verified, document, node_id)
    if coordinator != caller:
        raise CoordinatorNotBound("Coordinator is not the caller")
    check_window(document.header.created, now, window_seconds, "document")
    peer = country_of(document.header.receiver)
    if peer not in peers:
        raise ReceiverNodeUnknown(f"no peer node is configured for {peer}")
    return Admitted(verified=verified, document=document, peer_node=peer)


def _check_node_document(verified: Verified, document: ExchangeDocument, node: str) -> None:
    header = document.header
    if (
        node_id_of(verified.certificate) != node
        or document.document_type not in NODE_DOCUMENT_TYPES
        or country_of(header.sender) != node
        or not owns_id(header.sender, header.document_id)
    ):
        raise NodeDocumentRefused()
    _check_exchange_owned(document)


def admit_node_document(
    data: bytes,
    *,
    node_id: str,
    trust: TrustStore,
    peers: Collection[str],
    now: datetime,
    window_seconds: float,
) -> Admitted:
    """Admit this node's own Reminder or Escalation (``trust`` pins its signing certificate)."""
    verified = verify(data, trust, now=now)
    document = read_exchange_document(verified.root)
    _check_node_document(verified, document, node_id)
    check_window(document.header.created, now, window_seconds, "document")
    peer = country_of(document.header.receiver)
    if peer not in peers:
        raise ReceiverNodeUnknown(f"no peer node is configured for {peer}")
    return Admitted(verified=verified, document=document, peer_node=peer)


def admit_peer_special(
    payload: Payload,
    *,
    peer_node: str,
    node_id: str,
    trust: TrustStore,
    now: datetime,
) -> Admitted:
    """Admit a peer's node-signed Reminder/Escalation or one of its coordinators' documents.

    ``trust`` pins the peer's signing certificate and its node CA (which
    issued its coordinators' certificates); the signer's identity decides:
    the peer node itself, or a coordinator (the mark) of the peer's country.
    """
    verified = verify(payload.data, trust, now=now)
    document = read_exchange_document(verified.root)
    if node_id_of(verified.certificate) is not None:
        _check_node_document(verified, document, peer_node)
    else:
        _check_coordinator_document(verified, document, peer_node)
    header = document.header
    if header.document_id != payload.message_id:
        raise SenderNotBound("the payload's message id is not the document's id")
    if country_of(header.receiver) != node_id:
        raise ReceiverNotHere()
    return Admitted(verified=verified, document=document, peer_node=peer_node)


def check_coordinator_forward(document: ExchangeDocument, responder: str) -> None:
    """A CoordinatorForward comes from the responder's side (its header names the responder)."""
    if isinstance(document, CoordinatorForward) and document.header.sender != responder:
        raise ForwardTargetInvalid("only the responder's coordinator forwards the request")


def scope_members(values: Sequence[str]) -> tuple[str, ...]:
    """Scope members as stored: stripped, unique, sorted."""
    return tuple(sorted({v.strip() for v in values if v.strip()}))
