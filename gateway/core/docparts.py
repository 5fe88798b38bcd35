"""The parts exchange documents are made of: header, questions, replies, person, attachments.

Frozen dataclasses with ``write`` (append to a tree) and ``read`` (from a
validated tree) methods, used by ``gateway.core.documents`` (import them from
there). Personal data (the PersonConcerned block, registration numbers,
attachment names and content, free text) stays out of ``repr``.
This module is sans-IO and never logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

from gateway.core.docxml import (
    AttachmentMismatch,
    LocalizedText,
    attr,
    b64decode,
    b64encode,
    child,
    children,
    format_date,
    format_datetime,
    opt_localized,
    opt_text,
    parse_date,
    parse_datetime,
    sha256_hex,
    sub,
    sub_localized,
    sub_opt,
    text,
    text_of,
    texts,
)

#: Largest attachment the schema accepts (so a document with one fits an envelope payload).
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Header:
    """The header every exchange document carries.

    sender / receiver: authority ids. catalogue_version: required on Request,
    Answer and InformationRequest, optional elsewhere. in_reply_to: the
    DocumentId this document responds to; required on replies (Acceptance,
    ReplyDateProposal, InformationRequest, AdditionalInformation, Answer,
    Closure, Rejection, Forward), absent on Request, optional on notices.
    """

    exchange_id: str
    document_id: str
    sender: str
    receiver: str
    created: datetime
    catalogue_version: str | None = None
    in_reply_to: str | None = None

    def write(self, root: etree._Element) -> None:
        header = sub(root, "Header")
        sub(header, "ExchangeId", self.exchange_id)
        sub(header, "DocumentId", self.document_id)
        sub(header, "SenderAuthority", self.sender)
        sub(header, "ReceiverAuthority", self.receiver)
        sub(header, "Created", format_datetime(self.created))
        sub_opt(header, "CatalogueVersion", self.catalogue_version)
        sub_opt(header, "InReplyTo", self.in_reply_to)

    @classmethod
    def read(cls, root: etree._Element) -> Header:
        header = child(root, "Header")
        return cls(
            exchange_id=text(header, "ExchangeId"),
            document_id=text(header, "DocumentId"),
            sender=text(header, "SenderAuthority"),
            receiver=text(header, "ReceiverAuthority"),
            created=parse_datetime(text(header, "Created")),
            catalogue_version=opt_text(header, "CatalogueVersion"),
            in_reply_to=opt_text(header, "InReplyTo"),
        )


@dataclass(frozen=True)
class Question:
    """A standard question by catalogue code, with optional free text."""

    code: str
    free_text: LocalizedText | None = None

    def write(self, parent: etree._Element) -> None:
        sub_localized(sub(parent, "Question", code=self.code), "FreeText", self.free_text)

    @classmethod
    def read(cls, element: etree._Element) -> Question:
        return cls(code=attr(element, "code"), free_text=opt_localized(element, "FreeText"))


@dataclass(frozen=True)
class Reply:
    """The answer to one question: option codes, a date and/or free text (at least one)."""

    question: str
    options: tuple[str, ...] = ()
    date: date | None = None
    free_text: LocalizedText | None = None

    def write(self, parent: etree._Element) -> None:
        element = sub(parent, "Reply", question=self.question)
        for option in self.options:
            sub(element, "Option", option)
        sub_opt(element, "Date", None if self.date is None else format_date(self.date))
        sub_localized(element, "FreeText", self.free_text)

    @classmethod
    def read(cls, element: etree._Element) -> Reply:
        day = opt_text(element, "Date")
        return cls(
            question=attr(element, "question"),
            options=texts(element, "Option"),
            date=None if day is None else parse_date(day),
            free_text=opt_localized(element, "FreeText"),
        )


@dataclass(frozen=True)
class RegistrationNumber:
    """A registration number of the person concerned (personal data)."""

    scheme: str
    value: str = field(repr=False)
    issuer: str | None = None


@dataclass(frozen=True, repr=False)
class PersonConcerned:
    """The personal data of the person an exchange is about; never shown in ``repr``."""

    given_names: str
    family_name: str
    birth_name: str | None = None
    date_of_birth: date | None = None
    place_of_birth: str | None = None
    nationalities: tuple[str, ...] = ()
    registration_numbers: tuple[RegistrationNumber, ...] = ()

    def __repr__(self) -> str:
        return "PersonConcerned(<personal data>)"

    def write(self, parent: etree._Element) -> None:
        element = sub(parent, "PersonConcerned")
        sub(element, "GivenNames", self.given_names)
        sub(element, "FamilyName", self.family_name)
        sub_opt(element, "BirthName", self.birth_name)
        born = None if self.date_of_birth is None else format_date(self.date_of_birth)
        sub_opt(element, "DateOfBirth", born)
        sub_opt(element, "PlaceOfBirth", self.place_of_birth)
        for nationality in self.nationalities:
            sub(element, "Nationality", nationality)
        for number in self.registration_numbers:
            reg = sub(element, "RegistrationNumber", number.value, scheme=number.scheme)
            if number.issuer is not None:
                reg.set("issuer", number.issuer)

    @classmethod
    def read(cls, element: etree._Element) -> PersonConcerned:
        born = opt_text(element, "DateOfBirth")
        return cls(
            given_names=text(element, "GivenNames"),
            family_name=text(element, "FamilyName"),
            birth_name=opt_text(element, "BirthName"),
            date_of_birth=None if born is None else parse_date(born),
            place_of_birth=opt_text(element, "PlaceOfBirth"),
            nationalities=texts(element, "Nationality"),
            registration_numbers=tuple(
                RegistrationNumber(
                    scheme=attr(reg, "scheme"), value=text_of(reg), issuer=reg.get("issuer")
                )
                for reg in children(element, "RegistrationNumber")
            ),
        )


@dataclass(frozen=True)
class Attachment:
    """A file carried inline; its size and SHA-256 are derived from ``content``."""

    name: str = field(repr=False)
    media_type: str
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return sha256_hex(self.content)

    def write(self, parent: etree._Element) -> None:
        element = sub(parent, "Attachment")
        sub(element, "Name", self.name)
        sub(element, "MediaType", self.media_type)
        sub(element, "Size", str(self.size))
        sub(element, "Sha256", self.sha256)
        sub(element, "Content", b64encode(self.content))

    @classmethod
    def read(cls, element: etree._Element) -> Attachment:
        attachment = cls(
            name=text(element, "Name"),
            media_type=text(element, "MediaType"),
            content=b64decode(text(element, "Content")),
        )
        if attachment.size != int(text(element, "Size")):
            raise AttachmentMismatch("an attachment's Size does not match its content")
        if attachment.sha256 != text(element, "Sha256"):
            raise AttachmentMismatch("an attachment's Sha256 does not match its content")
        return attachment


def write_all(parent: etree._Element, items: Iterable[Question | Attachment]) -> None:
    for item in items:
        item.write(parent)


def read_attachments(root: etree._Element) -> tuple[Attachment, ...]:
    return tuple(Attachment.read(e) for e in children(root, "Attachment"))


def read_questions(root: etree._Element) -> tuple[Question, ...]:
    return tuple(Question.read(e) for e in children(root, "Question"))
