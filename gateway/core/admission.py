"""Admission: may this document enter the node? (sans-IO)

The decisions made on every document before anything is stored, in the
order: parse, verify, then read only the signed tree:

* :func:`admit_submission`: a national system of this node submits a signed
  exchange document over the national-system API;
* :func:`admit_envelope`: a peer node posts a node-signed envelope;
* :func:`admit_payload`: one signed exchange document inside that envelope.

Each returns the verified, schema-valid, typed document, or raises a
``GatewayError`` with a stable code. Lifecycle rules (which document may
follow which) need the stored exchange and are applied in the storing
transaction; everything else is decided here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.access import (
    EVERYTHING,
    Directory,
    PeerAccess,
    check_forward_target,
    check_request_competences,
)
from gateway.core.catalogue import Catalogue, CatalogueCodeUnknown, CatalogueRegistry
from gateway.core.certs import TrustStore
from gateway.core.documents import (
    Answer,
    ExchangeDocument,
    Forward,
    Header,
    InformationRequest,
    Request,
    read_exchange_document,
)
from gateway.core.envelopes import Envelope, Payload, read_envelope
from gateway.core.errors import AccessDenied, InvalidInput
from gateway.core.lifecycle import REQUESTER_DOCUMENTS, RESPONDER_DOCUMENTS
from gateway.core.signing import Verified, verify


class SenderNotBound(AccessDenied):
    """The document's sender authority is not the authority bound to its signing certificate."""

    code = "SENDER_NOT_BOUND"


class SenderNotCaller(AccessDenied):
    """The document's sender authority is not the national system that submitted it."""

    code = "SENDER_NOT_CALLER"


class AuthorityNotPublished(AccessDenied):
    """The signing certificate is not listed in this node's published authority directory, so peer nodes would refuse the document; register the authority (imi-gateway authorities add) and retry."""

    code = "AUTHORITY_NOT_PUBLISHED"


class DocumentIdNotOwned(InvalidInput):
    """The DocumentId does not begin with the sender authority's id and ':' (ids are scoped per authority)."""

    code = "DOCUMENT_ID_NOT_OWNED"


class ExchangeIdNotOwned(InvalidInput):
    """The ExchangeId does not begin with the requesting authority's id and ':' (ids are scoped per authority)."""

    code = "EXCHANGE_ID_NOT_OWNED"


class ReceiverNodeUnknown(InvalidInput):
    """The receiving authority's country has no peer node configured at this node."""

    code = "RECEIVER_NODE_UNKNOWN"


class ReceiverNotHere(InvalidInput):
    """The receiving authority does not belong to the node the document was sent to."""

    code = "RECEIVER_NOT_AT_NODE"


class PeerMismatch(AccessDenied):
    """The envelope's sender node, its signature and the TLS client certificate disagree."""

    code = "PEER_MISMATCH"


class OutsideReplayWindow(InvalidInput):
    """The creation time is outside the acceptance window (stale, replayed or clock skew)."""

    code = "CREATION_TIME_OUT_OF_WINDOW"


#: What separates the owning authority's id from the rest of an id.
ID_SCOPE_SEPARATOR = ":"


def scoped_id(authority_id: str, local: str) -> str:
    """``local`` scoped to ``authority_id``: ``scoped_id("NO-HELSEDIR", "2026-000417")``."""
    return f"{authority_id}{ID_SCOPE_SEPARATOR}{local}"


def owns_id(authority_id: str, identifier: str) -> bool:
    """Whether ``identifier`` is scoped to ``authority_id`` (``NO-HELSEDIR:2026-000417``)."""
    return identifier.startswith(authority_id + ID_SCOPE_SEPARATOR)


def check_id_scope(header: Header, document_type: str) -> None:
    """Refuse ids another authority owns: ids are scoped so none can be taken or probed.

    The DocumentId begins with the sender's authority id, the ExchangeId with
    the requester's (the sender of a document only requesters send, the
    receiver of one only responders send, either for documents both sides
    may send: ``gateway.core.lifecycle.TRANSITIONS`` tells), each followed by
    ``:``. Authority ids cannot contain ``:``, so no authority's ids are a
    prefix of another's. Checked before any stored state is read, so the
    answer says nothing about other authorities' exchanges or documents.
    """
    if not owns_id(header.sender, header.document_id):
        raise DocumentIdNotOwned("DocumentId must begin with SenderAuthority and ':'")
    if document_type in REQUESTER_DOCUMENTS:
        owners: tuple[str, ...] = (header.sender,)
    elif document_type in RESPONDER_DOCUMENTS:
        owners = (header.receiver,)
    else:
        owners = (header.sender, header.receiver)
    if not any(owns_id(owner, header.exchange_id) for owner in owners):
        raise ExchangeIdNotOwned("ExchangeId must begin with the requesting authority's id and ':'")


@dataclass(frozen=True)
class Admitted:
    """A verified, schema-valid exchange document and where it goes."""

    verified: Verified
    document: ExchangeDocument
    #: The node at the other end: the receiver's for a submission, the sender's for a payload.
    peer_node: str

    @property
    def header(self) -> Header:
        return self.document.header

    @property
    def document_type(self) -> str:
        return self.document.document_type


def country_of(authority_id: str) -> str:
    """The node (country code) an authority id belongs to."""
    return authority_id[:2]


def check_window(created: datetime, now: datetime, window_seconds: float, what: str) -> None:
    skew = abs((now - created).total_seconds())
    if skew > window_seconds:
        raise OutsideReplayWindow(
            f"the {what} was created {skew:.0f} s from this node's clock; "
            f"the window is {window_seconds:.0f} s"
        )


def check_catalogue(document: ExchangeDocument, catalogues: CatalogueRegistry | None) -> None:
    """Refuse codes or a catalogue version this node does not know (CATALOGUE_* codes)."""
    if catalogues is None:
        return
    version = document.header.catalogue_version
    if version is None:
        return
    catalogue: Catalogue = catalogues.get(version)
    if isinstance(document, Request):
        catalogue.area(document.legislation_area)
        if catalogue.question_set(document.question_set).area != document.legislation_area:
            raise CatalogueCodeUnknown(
                f"question set {document.question_set} is not in area {document.legislation_area}"
            )
        catalogue.validate_codes(document.question_set, [q.code for q in document.questions])
    elif isinstance(document, InformationRequest):
        catalogue.validate_codes(None, [q.code for q in document.questions])
    elif isinstance(document, Answer):
        catalogue.validate_codes(
            None,
            [r.question for r in document.replies],
            [(r.question, option) for r in document.replies for option in r.options],
        )


def check_access(
    document: ExchangeDocument,
    *,
    peer: str,
    peer_access: PeerAccess,
    sender_directory: Directory | None,
    receiver_directory: Directory | None,
    catalogues: CatalogueRegistry | None,
) -> None:
    """The access rules of ``gateway.core.access`` that need no stored state.

    A Request: this node exchanges its legislation area with ``peer``
    (PEER_AREA_NOT_ALLOWED), and both authorities are competent for its
    question set by the directories given (AUTHORITY_NOT_COMPETENT,
    SENDER_NOT_COMPETENT). A Forward: it names another authority of the
    sender's node (FORWARD_TARGET_INVALID); its competence needs the stored
    exchange's question set and is checked by the pipeline
    (``gateway.core.access.check_forward``).
    """
    if isinstance(document, Request):
        peer_access.check(peer, document.legislation_area)
        catalogue = None
        version = document.header.catalogue_version
        if catalogues is not None and version is not None:
            catalogue = catalogues.get(version)
        check_request_competences(
            document,
            sender_directory=sender_directory,
            receiver_directory=receiver_directory,
            catalogue=catalogue,
        )
    elif isinstance(document, Forward):
        check_forward_target(document)


def admit_submission(
    data: bytes,
    *,
    caller: str,
    node_id: str,
    trust: TrustStore,
    peers: Collection[str],
    now: datetime,
    window_seconds: float,
    catalogues: CatalogueRegistry | None = None,
    published: Collection[bytes] = (),
    peer_access: PeerAccess = EVERYTHING,
    own_directory: Directory | None = None,
    peer_directories: Mapping[str, Directory] | None = None,
) -> Admitted:
    """Admit a document submitted by the national system of authority ``caller``.

    ``trust`` pins the registered national-system certificates of this node's
    authorities; ``peers`` are the node ids this node exchanges with.
    ``published`` holds the certificates (DER) that this node's published
    authority directory lists. Once it lists any, a peer that synced it pins
    exactly those, so a document signed with another certificate is refused
    here (AUTHORITY_NOT_PUBLISHED) rather than acknowledged and then refused
    by the peer. An empty directory leaves peers trusting this node's CA.
    ``peer_access``, ``own_directory`` (this node's published authorities)
    and ``peer_directories`` (each peer's cached directory) feed
    :func:`check_access`, so that a document the peer would refuse for
    access reasons is refused here, before it is acknowledged.
    """
    verified = verify(data, trust, now=now)
    document = read_exchange_document(verified.root)
    header = document.header
    if verified.authority_id != header.sender or country_of(header.sender) != node_id:
        raise SenderNotBound()
    if caller != header.sender:
        raise SenderNotCaller()
    check_id_scope(header, document.document_type)
    if published and verified.certificate.public_bytes(Encoding.DER) not in published:
        raise AuthorityNotPublished(
            f"the signing certificate of {header.sender} is not in this node's published "
            "authority directory"
        )
    check_window(header.created, now, window_seconds, "document")
    peer = country_of(header.receiver)
    if peer not in peers:
        raise ReceiverNodeUnknown(f"no peer node is configured for {peer}")
    check_catalogue(document, catalogues)
    check_access(
        document,
        peer=peer,
        peer_access=peer_access,
        sender_directory=own_directory,
        receiver_directory=(peer_directories or {}).get(peer),
        catalogues=catalogues,
    )
    return Admitted(verified=verified, document=document, peer_node=peer)


def admit_envelope(
    data: bytes,
    *,
    tls_peer: str,
    node_id: str,
    trust: TrustStore,
    now: datetime,
    window_seconds: float,
) -> tuple[Verified, Envelope]:
    """Admit an envelope posted by the peer whose TLS certificate names ``tls_peer``.

    ``trust`` pins that peer's node signing certificate.
    """
    verified = verify(data, trust, now=now)
    envelope = read_envelope(verified.root)
    if verified.node_id != tls_peer or envelope.sender_node != tls_peer:
        raise PeerMismatch()
    if envelope.receiver_node != node_id:
        raise ReceiverNotHere(f"the envelope is addressed to node {envelope.receiver_node}")
    check_window(envelope.created, now, window_seconds, "envelope")
    return verified, envelope


def admit_payload(
    payload: Payload,
    *,
    peer_node: str,
    node_id: str,
    trust: TrustStore,
    now: datetime,
    catalogues: CatalogueRegistry | None = None,
    peer_access: PeerAccess = EVERYTHING,
    own_directory: Directory | None = None,
    peer_directory: Directory | None = None,
) -> Admitted:
    """Admit one signed document from an envelope of ``peer_node``.

    ``trust`` holds the certificates of that peer's authorities (pinned from
    its directory, or its node CA). The document's own creation time is not
    windowed here: it may have waited in the sender's queue while this node
    was down; the envelope's time is. The access rules are checked again
    here (:func:`check_access`), with this node's own ``[access]`` settings,
    its published directory for the receiver and the peer's cached
    directory for the sender.
    """
    verified = verify(payload.data, trust, now=now)
    document = read_exchange_document(verified.root)
    header = document.header
    if header.document_id != payload.message_id:
        raise PeerMismatch("the payload's message id is not the document's id")
    if verified.authority_id != header.sender or country_of(header.sender) != peer_node:
        raise SenderNotBound()
    if country_of(header.receiver) != node_id:
        raise ReceiverNotHere()
    # The same rule as at submission: a peer creates exchanges only for its own
    # country's authorities (the sender's country was checked above).
    check_id_scope(header, document.document_type)
    check_catalogue(document, catalogues)
    check_access(
        document,
        peer=peer_node,
        peer_access=peer_access,
        sender_directory=peer_directory,
        receiver_directory=own_directory,
        catalogues=catalogues,
    )
    return Admitted(verified=verified, document=document, peer_node=peer_node)


__all__ = [
    "ID_SCOPE_SEPARATOR",
    "Admitted",
    "AuthorityNotPublished",
    "DocumentIdNotOwned",
    "ExchangeIdNotOwned",
    "OutsideReplayWindow",
    "PeerMismatch",
    "ReceiverNodeUnknown",
    "ReceiverNotHere",
    "SenderNotBound",
    "SenderNotCaller",
    "admit_envelope",
    "admit_payload",
    "admit_submission",
    "check_access",
    "check_id_scope",
    "check_window",
    "country_of",
    "owns_id",
    "scoped_id",
]
