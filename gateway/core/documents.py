"""The exchange documents as frozen dataclasses, built to and read from lxml trees.

Twelve document types make up an IMI exchange (see docs/protocol.md):
Request, Acceptance, ReplyDateProposal, InformationRequest,
AdditionalInformation, Answer, Closure, Rejection, Forward, Withdrawal,
Reminder, Escalation; six more (Dispute and the coordinators' documents)
live in ``gateway.core.coordination`` and are re-exported here. Each is a frozen dataclass here with a common
:class:`Header`; the parts they are made of (Header, Question, Reply,
PersonConcerned, Attachment) live in ``docparts`` and are re-exported here.

* :func:`to_xml` builds the UNSIGNED tree of any protocol document (exchange
  documents here; envelopes, receipts, errors, deliveries and the authority
  directory from their own modules) and validates it against the XSDs, so a
  builder never hands out a document a peer would refuse. Signing is
  ``gateway.core.signing``'s job: it appends ds:Signature as the last child.
* :func:`read_document` turns a VERIFIED tree (the one the signature verifier
  returns as signed, never the raw input) into the dataclass, after schema
  validation. Attachment sizes and digests are checked on reading.

Datetimes are timezone-aware (UTC on reading). Personal data (the
PersonConcerned block, free text, attachments) stays out of ``repr``.
This module is sans-IO and never logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, TypeAlias

from lxml import etree

from gateway.core import envelopes
from gateway.core.coordination import (
    CoordinatorForward,
    CoordinatorReminder,
    Dispute,
    DisputeEnded,
    DisputeSettled,
    MediationNote,
)
from gateway.core.directory import document as directorydoc
from gateway.core.docparts import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    Header,
    PersonConcerned,
    Question,
    RegistrationNumber,
    Reply,
    read_attachments,
    read_questions,
    write_all,
)
from gateway.core.docxml import (
    AttachmentMismatch,
    LocalizedText,
    UnexpectedDocumentType,
    child,
    children,
    format_date,
    localized,
    new_root,
    opt_localized,
    opt_text,
    parse_date,
    q,
    sub,
    sub_localized,
    sub_opt,
    text,
)
from gateway.core.schemas import DocumentType, validate

__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "Acceptance",
    "AdditionalInformation",
    "Answer",
    "Attachment",
    "AttachmentMismatch",
    "Closure",
    "CoordinatorForward",
    "CoordinatorReminder",
    "Dispute",
    "DisputeEnded",
    "DisputeSettled",
    "Document",
    "Escalation",
    "ExchangeDocument",
    "Forward",
    "Header",
    "InformationRequest",
    "LocalizedText",
    "MediationNote",
    "PersonConcerned",
    "Question",
    "RegistrationNumber",
    "Rejection",
    "Reminder",
    "Reply",
    "ReplyDateProposal",
    "Request",
    "Withdrawal",
    "read_document",
    "read_exchange_document",
    "to_bytes",
    "to_xml",
]


# --- the exchange documents --------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """Opens an exchange: questions of one question set about the person concerned."""

    document_type: ClassVar[str] = DocumentType.REQUEST
    header: Header
    legislation_area: str
    question_set: str
    sender_language: str
    requested_reply_date: date
    questions: tuple[Question, ...]
    person: PersonConcerned | None = None
    attachments: tuple[Attachment, ...] = ()

    def write_body(self, root: etree._Element) -> None:
        sub(root, "LegislationArea", self.legislation_area)
        sub(root, "QuestionSet", self.question_set)
        sub(root, "SenderLanguage", self.sender_language)
        sub(root, "RequestedReplyDate", format_date(self.requested_reply_date))
        if self.person is not None:
            self.person.write(root)
        write_all(root, self.questions)
        write_all(root, self.attachments)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Request:
        person = root.find(q("PersonConcerned"))
        return cls(
            header=header,
            legislation_area=text(root, "LegislationArea"),
            question_set=text(root, "QuestionSet"),
            sender_language=text(root, "SenderLanguage"),
            requested_reply_date=parse_date(text(root, "RequestedReplyDate")),
            questions=read_questions(root),
            person=None if person is None else PersonConcerned.read(person),
            attachments=read_attachments(root),
        )


@dataclass(frozen=True)
class Acceptance:
    """Agreement on the reply date (responder accepts, or requester agrees to a proposal)."""

    document_type: ClassVar[str] = DocumentType.ACCEPTANCE
    header: Header
    agreed_reply_date: date
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub(root, "AgreedReplyDate", format_date(self.agreed_reply_date))
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Acceptance:
        return cls(
            header=header,
            agreed_reply_date=parse_date(text(root, "AgreedReplyDate")),
            note=opt_localized(root, "Note"),
        )


@dataclass(frozen=True)
class ReplyDateProposal:
    """The responder's counter-proposal of the reply date."""

    document_type: ClassVar[str] = DocumentType.REPLY_DATE_PROPOSAL
    header: Header
    proposed_reply_date: date
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub(root, "ProposedReplyDate", format_date(self.proposed_reply_date))
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> ReplyDateProposal:
        return cls(
            header=header,
            proposed_reply_date=parse_date(text(root, "ProposedReplyDate")),
            note=opt_localized(root, "Note"),
        )


@dataclass(frozen=True)
class InformationRequest:
    """A request for further information: what is needed, and questions concerned."""

    document_type: ClassVar[str] = DocumentType.INFORMATION_REQUEST
    header: Header
    note: LocalizedText
    questions: tuple[Question, ...] = ()

    def write_body(self, root: etree._Element) -> None:
        sub_localized(root, "Note", self.note)
        write_all(root, self.questions)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> InformationRequest:
        return cls(
            header=header, note=localized(child(root, "Note")), questions=read_questions(root)
        )


@dataclass(frozen=True)
class AdditionalInformation:
    """The requester's reply to an InformationRequest: a note and/or attachments."""

    document_type: ClassVar[str] = DocumentType.ADDITIONAL_INFORMATION
    header: Header
    note: LocalizedText | None = None
    attachments: tuple[Attachment, ...] = ()

    def write_body(self, root: etree._Element) -> None:
        sub_localized(root, "Note", self.note)
        write_all(root, self.attachments)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> AdditionalInformation:
        return cls(
            header=header, note=opt_localized(root, "Note"), attachments=read_attachments(root)
        )


@dataclass(frozen=True)
class Answer:
    """The responder's answer: one Reply per question answered."""

    document_type: ClassVar[str] = DocumentType.ANSWER
    header: Header
    replies: tuple[Reply, ...]
    attachments: tuple[Attachment, ...] = ()
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        for reply in self.replies:
            reply.write(root)
        write_all(root, self.attachments)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Answer:
        return cls(
            header=header,
            replies=tuple(Reply.read(e) for e in children(root, "Reply")),
            attachments=read_attachments(root),
            note=opt_localized(root, "Note"),
        )


@dataclass(frozen=True)
class Closure:
    """The requester accepts the answer and closes the exchange."""

    document_type: ClassVar[str] = DocumentType.CLOSURE
    header: Header
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Closure:
        return cls(header=header, note=opt_localized(root, "Note"))


@dataclass(frozen=True)
class Rejection:
    """The responder refuses the request; reason: NOT_COMPETENT, INFORMATION_NOT_AVAILABLE,
    INSUFFICIENT_DETAIL, LEGAL_GROUNDS or OTHER."""

    document_type: ClassVar[str] = DocumentType.REJECTION
    header: Header
    reason: str
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Reason", self.reason)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Rejection:
        return cls(header=header, reason=text(root, "Reason"), note=opt_localized(root, "Note"))


@dataclass(frozen=True)
class Forward:
    """The responder hands the request on to authority ``forward_to``."""

    document_type: ClassVar[str] = DocumentType.FORWARD
    header: Header
    forward_to: str
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub(root, "ForwardTo", self.forward_to)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Forward:
        return cls(
            header=header, forward_to=text(root, "ForwardTo"), note=opt_localized(root, "Note")
        )


@dataclass(frozen=True)
class Withdrawal:
    """The requester withdraws; reason: NO_LONGER_NEEDED, SENT_IN_ERROR or OTHER."""

    document_type: ClassVar[str] = DocumentType.WITHDRAWAL
    header: Header
    reason: str | None = None
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub_opt(root, "Reason", self.reason)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Withdrawal:
        return cls(header=header, reason=opt_text(root, "Reason"), note=opt_localized(root, "Note"))


@dataclass(frozen=True)
class Reminder:
    """A reminder to the side the exchange waits for (tracked; no state change)."""

    document_type: ClassVar[str] = DocumentType.REMINDER
    header: Header
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Reminder:
        return cls(header=header, note=opt_localized(root, "Note"))


@dataclass(frozen=True)
class Escalation:
    """A call on a coordinator; reason: ANSWER_OVERDUE, DISAGREEMENT or OTHER."""

    document_type: ClassVar[str] = DocumentType.ESCALATION
    header: Header
    reason: str
    coordinator: str | None = None
    note: LocalizedText | None = None

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Reason", self.reason)
        sub_opt(root, "Coordinator", self.coordinator)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Escalation:
        return cls(
            header=header,
            reason=text(root, "Reason"),
            coordinator=opt_text(root, "Coordinator"),
            note=opt_localized(root, "Note"),
        )


ExchangeDocument: TypeAlias = (
    Request
    | Acceptance
    | ReplyDateProposal
    | InformationRequest
    | AdditionalInformation
    | Answer
    | Closure
    | Rejection
    | Forward
    | Withdrawal
    | Reminder
    | Escalation
    | Dispute
    | CoordinatorReminder
    | CoordinatorForward
    | MediationNote
    | DisputeSettled
    | DisputeEnded
)

Document: TypeAlias = (
    ExchangeDocument
    | envelopes.Envelope
    | envelopes.Receipt
    | envelopes.ErrorDocument
    | envelopes.Delivery
    | directorydoc.AuthorityDirectory
)

_EXCHANGE_CLASSES: dict[str, Callable[[etree._Element, Header], ExchangeDocument]] = {
    cls.document_type: cls.read_body
    for cls in (
        Request,
        Acceptance,
        ReplyDateProposal,
        InformationRequest,
        AdditionalInformation,
        Answer,
        Closure,
        Rejection,
        Forward,
        Withdrawal,
        Reminder,
        Escalation,
        Dispute,
        CoordinatorReminder,
        CoordinatorForward,
        MediationNote,
        DisputeSettled,
        DisputeEnded,
    )
}

_NODE_READERS: dict[str, Callable[[etree._Element], Document]] = {
    DocumentType.ENVELOPE: envelopes.envelope_from,
    DocumentType.RECEIPT: envelopes.receipt_from,
    DocumentType.ERROR: envelopes.error_from,
    DocumentType.DELIVERY: envelopes.delivery_from,
    DocumentType.AUTHORITY_DIRECTORY: directorydoc.directory_from,
}


# --- public API --------------------------------------------------------------------


def to_xml(doc: Document) -> etree._Element:
    """The unsigned, schema-valid tree of ``doc`` (raises SchemaInvalid on bad values)."""
    if isinstance(
        doc,
        envelopes.Envelope
        | envelopes.Receipt
        | envelopes.ErrorDocument
        | envelopes.Delivery
        | directorydoc.AuthorityDirectory,
    ):
        root = doc.to_xml()
        validate(root)  # the node's builders leave that to their tests (core/envelopes.py)
        return root
    root = new_root(doc.document_type)
    doc.header.write(root)
    doc.write_body(root)
    validate(root)
    return root


def to_bytes(doc: Document) -> bytes:
    """``to_xml(doc)`` serialized as UTF-8 with an XML declaration (unsigned)."""
    return etree.tostring(to_xml(doc), xml_declaration=True, encoding="UTF-8")


def read_document(root: etree._Element) -> Document:
    """Validate a VERIFIED tree and read it into its dataclass.

    Raises UnknownDocumentType, SchemaInvalid, AttachmentMismatch or
    PAYLOAD_DIGEST_MISMATCH (envelopes and deliveries).
    """
    doc_type = validate(root)
    reader = _EXCHANGE_CLASSES.get(doc_type)
    if reader is not None:
        return reader(root, Header.read(root))
    return _NODE_READERS[doc_type](root)


def read_exchange_document(root: etree._Element) -> ExchangeDocument:
    """Like :func:`read_document`, but only exchange documents are accepted."""
    doc_type = validate(root)
    reader = _EXCHANGE_CLASSES.get(doc_type)
    if reader is None:
        raise UnexpectedDocumentType(f"expected an exchange document, got {doc_type}")
    return reader(root, Header.read(root))
