"""Node documents: the Envelope, the Receipt, the Error document and the Delivery.

Nodes create and sign these themselves (the signing module appends the
ds:Signature); builders here return UNSIGNED trees that are schema-valid for
every value the node passes them (ids, digests and codes it has already
verified or made itself). They do not validate their own output on every
call (it cost ~10 % of a submission and ~25 % of a delivery): the tests do
(tests/core/test_node_documents_valid.py), every reader validates what it
receives, and ``gateway.core.documents.to_xml`` validates for callers that
build from values of their own.

* Envelope: node-to-node transport of 1-100 signed documents. Each payload is
  the exact bytes a national system signed, carried as base64 with its message
  id and SHA-256; :func:`read_envelope` decodes every payload and refuses the
  envelope (PAYLOAD_DIGEST_MISMATCH) if one digest does not match its bytes.
* Receipt: a node's acknowledgement of 1-100 messages, by message id and the
  SHA-256 of the exact bytes received, each ``accepted`` or ``duplicate``.
* Error: a stable error code, a message without personal data, and the
  message id it concerns when known.
* Delivery: the original signed bytes of one document for the addressee's
  national system, plus renderings of its codes (and machine translations of
  its free text) in local languages.

Readers take a VERIFIED tree and validate it against the XSDs first. This
module is sans-IO and never logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from lxml import etree

from gateway.core.docxml import (
    DigestMismatch,
    attr,
    b64decode,
    b64encode,
    checked_type,
    child,
    children,
    format_datetime,
    new_root,
    opt_text,
    parse_datetime,
    sha256_hex,
    sub,
    sub_opt,
    text,
    text_of,
)
from gateway.core.errors import GatewayError, InvalidInput, SchemaInvalid
from gateway.core.ns import XML_NS
from gateway.core.schemas import DocumentType

__all__ = [
    "MAX_ENVELOPE_PAYLOADS",
    "MAX_PAYLOAD_BYTES",
    "Delivery",
    "DigestMismatch",
    "Envelope",
    "ErrorDocument",
    "MachineTranslation",
    "OptionText",
    "Payload",
    "QuestionText",
    "Receipt",
    "ReceiptItem",
    "ReceiptStatus",
    "Rendering",
    "RenderingStatus",
    "build_delivery",
    "build_envelope",
    "build_error",
    "build_receipt",
    "error_for",
    "read_delivery",
    "read_envelope",
    "read_error",
    "read_receipt",
]

_XML_LANG = f"{{{XML_NS}}}lang"

#: Largest signed document an envelope payload or a delivery may carry (the XSD cap).
#: Its base64 text stays below the 10 MB libxml2 accepts in one text node without
#: XML_PARSE_HUGE; nodes should refuse larger submissions up front.
MAX_PAYLOAD_BYTES = 7 * 1024 * 1024

#: Most documents one envelope (and its receipt) may carry (the XSD cap).
MAX_ENVELOPE_PAYLOADS = 100

#: Longest Error message the schema accepts; longer messages are cut.
MAX_ERROR_MESSAGE = 1000


# --- Envelope --------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """One signed document inside an envelope: its message id and exact bytes."""

    message_id: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)


@dataclass(frozen=True)
class Envelope:
    """Node-to-node transport of a batch of signed documents."""

    sender_node: str
    receiver_node: str
    message_id: str
    created: datetime
    payloads: tuple[Payload, ...]

    def to_xml(self) -> etree._Element:
        root = new_root(DocumentType.ENVELOPE)
        header = sub(root, "Header")
        sub(header, "SenderNode", self.sender_node)
        sub(header, "ReceiverNode", self.receiver_node)
        sub(header, "MessageId", self.message_id)
        sub(header, "Created", format_datetime(self.created))
        for payload in self.payloads:
            sub(
                root,
                "Payload",
                b64encode(payload.data),
                messageId=payload.message_id,
                sha256=payload.sha256,
            )
        return root


def build_envelope(
    sender_node: str,
    receiver_node: str,
    message_id: str,
    created: datetime,
    payloads: Sequence[Payload],
) -> etree._Element:
    """The unsigned Envelope tree carrying ``payloads`` byte for byte.

    The two limits a queue could break are checked here (cheaply, without the
    XSD): at most 100 payloads, none larger than :data:`MAX_PAYLOAD_BYTES`.
    """
    if not 1 <= len(payloads) <= MAX_ENVELOPE_PAYLOADS:
        raise SchemaInvalid(f"an envelope carries 1 to {MAX_ENVELOPE_PAYLOADS} payloads")
    if any(len(p.data) > MAX_PAYLOAD_BYTES for p in payloads):
        raise SchemaInvalid(f"a payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    return Envelope(sender_node, receiver_node, message_id, created, tuple(payloads)).to_xml()


def envelope_from(root: etree._Element) -> Envelope:
    """Read a validated Envelope; every payload's SHA-256 is checked against its bytes."""
    header = child(root, "Header")
    payloads = []
    for element in children(root, "Payload"):
        payload = Payload(attr(element, "messageId"), b64decode(text_of(element)))
        if payload.sha256 != attr(element, "sha256"):
            raise DigestMismatch(
                f"the SHA-256 of payload {payload.message_id} does not match its bytes"
            )
        payloads.append(payload)
    return Envelope(
        sender_node=text(header, "SenderNode"),
        receiver_node=text(header, "ReceiverNode"),
        message_id=text(header, "MessageId"),
        created=parse_datetime(text(header, "Created")),
        payloads=tuple(payloads),
    )


def read_envelope(root: etree._Element) -> Envelope:
    """Validate a verified Envelope tree and decode it (see :func:`envelope_from`)."""
    checked_type(root, DocumentType.ENVELOPE)
    return envelope_from(root)


# --- Receipt ---------------------------------------------------------------------


class ReceiptMismatch(InvalidInput):
    """A receipt does not acknowledge exactly the documents and bytes sent (checked by the sender)."""

    code = "RECEIPT_MISMATCH"


class ReceiptStatus(StrEnum):
    """What the receiving node did with one message."""

    ACCEPTED = "accepted"  # new, committed
    DUPLICATE = "duplicate"  # already held (same message id): not stored again


@dataclass(frozen=True)
class ReceiptItem:
    """One acknowledged message: id, SHA-256 of the exact bytes received, status."""

    message_id: str
    sha256: str
    status: ReceiptStatus

    @classmethod
    def for_bytes(cls, message_id: str, data: bytes, status: ReceiptStatus) -> ReceiptItem:
        return cls(message_id, sha256_hex(data), status)


@dataclass(frozen=True)
class Receipt:
    """A node's acknowledgement of a batch (an envelope) or of one submission.

    issuer_node: the node that received and signs. recipient: the peer node or
    the submitting authority. envelope_id: the acknowledged envelope, if any.
    """

    receipt_id: str
    issuer_node: str
    recipient: str
    created: datetime
    items: tuple[ReceiptItem, ...]
    envelope_id: str | None = None

    def to_xml(self) -> etree._Element:
        root = new_root(DocumentType.RECEIPT)
        header = sub(root, "Header")
        sub(header, "ReceiptId", self.receipt_id)
        sub(header, "IssuerNode", self.issuer_node)
        sub(header, "Recipient", self.recipient)
        sub(header, "Created", format_datetime(self.created))
        sub_opt(header, "EnvelopeId", self.envelope_id)
        for item in self.items:
            sub(
                root,
                "Item",
                messageId=item.message_id,
                sha256=item.sha256,
                status=ReceiptStatus(item.status).value,
            )
        return root


def build_receipt(
    receipt_id: str,
    issuer_node: str,
    recipient: str,
    created: datetime,
    items: Sequence[ReceiptItem],
    envelope_id: str | None = None,
) -> etree._Element:
    """The unsigned Receipt tree."""
    return Receipt(receipt_id, issuer_node, recipient, created, tuple(items), envelope_id).to_xml()


def receipt_from(root: etree._Element) -> Receipt:
    header = child(root, "Header")
    return Receipt(
        receipt_id=text(header, "ReceiptId"),
        issuer_node=text(header, "IssuerNode"),
        recipient=text(header, "Recipient"),
        created=parse_datetime(text(header, "Created")),
        items=tuple(
            ReceiptItem(
                attr(item, "messageId"), attr(item, "sha256"), ReceiptStatus(attr(item, "status"))
            )
            for item in children(root, "Item")
        ),
        envelope_id=opt_text(header, "EnvelopeId"),
    )


def read_receipt(root: etree._Element) -> Receipt:
    """Validate a verified Receipt tree and read it."""
    checked_type(root, DocumentType.RECEIPT)
    return receipt_from(root)


# --- Error -----------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDocument:
    """A refusal: stable code, human message (no personal data), message id if known."""

    code: str
    message: str
    message_id: str | None = None
    created: datetime | None = None

    def to_xml(self) -> etree._Element:
        root = new_root(DocumentType.ERROR)
        sub(root, "Code", self.code)
        sub(root, "Message", self.message)
        sub_opt(root, "MessageId", self.message_id)
        sub_opt(root, "Created", None if self.created is None else format_datetime(self.created))
        return root


def build_error(
    code: str,
    message: str,
    *,
    message_id: str | None = None,
    created: datetime | None = None,
) -> etree._Element:
    """The unsigned Error tree; a message longer than 1000 characters is cut."""
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 1] + "…"
    return ErrorDocument(code, message or code, message_id, created).to_xml()


def error_for(
    error: GatewayError, *, message_id: str | None = None, created: datetime | None = None
) -> etree._Element:
    """The unsigned Error tree reporting ``error`` (its code and message)."""
    return build_error(error.code, error.message, message_id=message_id, created=created)


def error_from(root: etree._Element) -> ErrorDocument:
    created = opt_text(root, "Created")
    return ErrorDocument(
        code=text(root, "Code"),
        message=text(root, "Message"),
        message_id=opt_text(root, "MessageId"),
        created=None if created is None else parse_datetime(created),
    )


def read_error(root: etree._Element) -> ErrorDocument:
    """Validate an Error tree and read it."""
    checked_type(root, DocumentType.ERROR)
    return error_from(root)


# --- Delivery --------------------------------------------------------------------


class RenderingStatus(StrEnum):
    """How complete a rendering is."""

    COMPLETE = "complete"  # every code has a text, every free text a translation
    PARTIAL = "partial"  # some texts are missing in this language
    PENDING = "pending"  # machine translations are not ready yet


@dataclass(frozen=True)
class QuestionText:
    """The catalogue text of question ``code`` in the rendering's language."""

    code: str
    text: str


@dataclass(frozen=True)
class OptionText:
    """The text of answer option ``code`` of ``question`` in the rendering's language."""

    question: str
    code: str
    text: str


@dataclass(frozen=True)
class MachineTranslation:
    """A machine translation of one free-text field; never replaces the original.

    text_field: which free text of the original: ``Question/CODE``,
    ``Reply/CODE`` or ``Note`` (the XML attribute ``field``).
    """

    text_field: str
    engine: str
    source_language: str
    target_language: str
    text: str = field(repr=False)


@dataclass(frozen=True)
class Rendering:
    """The document's codes and free text rendered in language ``lang``."""

    lang: str
    status: RenderingStatus
    catalogue_version: str | None = None
    question_texts: tuple[QuestionText, ...] = ()
    option_texts: tuple[OptionText, ...] = ()
    translations: tuple[MachineTranslation, ...] = ()

    def write(self, parent: etree._Element) -> None:
        element = sub(parent, "Rendering", status=RenderingStatus(self.status).value)
        element.set(_XML_LANG, self.lang)
        if self.catalogue_version is not None:
            element.set("catalogueVersion", self.catalogue_version)
        for question in self.question_texts:
            sub(element, "QuestionText", question.text, code=question.code)
        for option in self.option_texts:
            sub(element, "OptionText", option.text, question=option.question, code=option.code)
        for mt in self.translations:
            sub(
                element,
                "MachineTranslation",
                mt.text,
                field=mt.text_field,
                engine=mt.engine,
                sourceLanguage=mt.source_language,
                targetLanguage=mt.target_language,
            )

    @classmethod
    def read(cls, element: etree._Element) -> Rendering:
        return cls(
            lang=attr(element, _XML_LANG),
            status=RenderingStatus(attr(element, "status")),
            catalogue_version=element.get("catalogueVersion"),
            question_texts=tuple(
                QuestionText(attr(e, "code"), text_of(e)) for e in children(element, "QuestionText")
            ),
            option_texts=tuple(
                OptionText(attr(e, "question"), attr(e, "code"), text_of(e))
                for e in children(element, "OptionText")
            ),
            translations=tuple(
                MachineTranslation(
                    text_field=attr(e, "field"),
                    engine=attr(e, "engine"),
                    source_language=attr(e, "sourceLanguage"),
                    target_language=attr(e, "targetLanguage"),
                    text=text_of(e),
                )
                for e in children(element, "MachineTranslation")
            ),
        )


@dataclass(frozen=True)
class Delivery:
    """One received document for the national system of ``recipient``.

    document: the original signed bytes, exactly as received.
    """

    delivery_id: str
    issuer_node: str
    recipient: str
    created: datetime
    exchange_id: str
    document_type: str
    document: bytes = field(repr=False)
    renderings: tuple[Rendering, ...] = ()

    @property
    def sha256(self) -> str:
        return sha256_hex(self.document)

    def to_xml(self) -> etree._Element:
        root = new_root(DocumentType.DELIVERY)
        header = sub(root, "Header")
        sub(header, "DeliveryId", self.delivery_id)
        sub(header, "IssuerNode", self.issuer_node)
        sub(header, "Recipient", self.recipient)
        sub(header, "Created", format_datetime(self.created))
        sub(header, "ExchangeId", self.exchange_id)
        sub(header, "DocumentType", self.document_type)
        sub(root, "Document", b64encode(self.document), sha256=self.sha256)
        for rendering in self.renderings:
            rendering.write(root)
        return root


def build_delivery(
    delivery_id: str,
    issuer_node: str,
    recipient: str,
    created: datetime,
    exchange_id: str,
    document_type: str,
    document: bytes,
    renderings: Sequence[Rendering] = (),
) -> etree._Element:
    """The unsigned Delivery tree carrying ``document`` byte for byte."""
    return Delivery(
        delivery_id,
        issuer_node,
        recipient,
        created,
        exchange_id,
        document_type,
        document,
        tuple(renderings),
    ).to_xml()


def delivery_from(root: etree._Element) -> Delivery:
    """Read a validated Delivery; the document's SHA-256 is checked against its bytes."""
    header = child(root, "Header")
    document = child(root, "Document")
    data = b64decode(text_of(document))
    if sha256_hex(data) != attr(document, "sha256"):
        raise DigestMismatch("the SHA-256 of the delivered document does not match its bytes")
    return Delivery(
        delivery_id=text(header, "DeliveryId"),
        issuer_node=text(header, "IssuerNode"),
        recipient=text(header, "Recipient"),
        created=parse_datetime(text(header, "Created")),
        exchange_id=text(header, "ExchangeId"),
        document_type=text(header, "DocumentType"),
        document=data,
        renderings=tuple(Rendering.read(e) for e in children(root, "Rendering")),
    )


def read_delivery(root: etree._Element) -> Delivery:
    """Validate a verified Delivery tree and read it."""
    checked_type(root, DocumentType.DELIVERY)
    return delivery_from(root)
