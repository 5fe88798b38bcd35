"""Small XML helpers shared by the document builders and readers.

Used by ``documents`` (exchange documents), ``envelopes`` (envelope, receipt,
error, delivery) and ``directory.document`` (authority directory): element
construction in the protocol namespace, reading children of a tree that has
passed schema validation, the one text form of dates, times, digests and
base64, the localized-text value type, and the errors a reader raises when a
valid document is still inconsistent (a digest that does not match its bytes).

Nothing here does I/O, and nothing here logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from lxml import etree

from gateway.core.errors import InvalidInput
from gateway.core.ns import DOC_NS, XML_NS
from gateway.core.schemas import validate

XML_LANG = f"{{{XML_NS}}}lang"


class DigestMismatch(InvalidInput):
    """A carried payload's SHA-256 does not match its bytes."""

    code = "PAYLOAD_DIGEST_MISMATCH"


class AttachmentMismatch(InvalidInput):
    """An attachment's declared size or SHA-256 does not match its content."""

    code = "ATTACHMENT_MISMATCH"


class UnexpectedDocumentType(InvalidInput):
    """The document is valid but of another type than expected here."""

    code = "DOCUMENT_TYPE_UNEXPECTED"


@dataclass(frozen=True)
class LocalizedText:
    """A text and its language (one of ``gateway.core.ns.LANGUAGES``).

    The text is left out of ``repr``: free text may hold personal data.
    """

    text: str = field(repr=False)
    lang: str


# --- names and construction ----------------------------------------------------


def q(local: str) -> str:
    """The Clark name ``{DOC_NS}local``."""
    return f"{{{DOC_NS}}}{local}"


def new_root(document_type: str) -> etree._Element:
    """An empty root element of ``document_type``, the protocol namespace as default."""
    nsmap: Any = {None: DOC_NS}  # lxml-stubs do not allow the None (default) prefix
    return etree.Element(q(document_type), nsmap=nsmap)


def sub(
    parent: etree._Element, local: str, text: str | None = None, **attributes: str
) -> etree._Element:
    """Append child ``local`` (protocol namespace) with optional text and attributes."""
    child = etree.SubElement(parent, q(local))
    if text is not None:
        child.text = text
    for name, value in attributes.items():
        child.set(name, value)
    return child


def sub_opt(parent: etree._Element, local: str, text: str | None) -> None:
    """Append child ``local`` with ``text`` unless ``text`` is None."""
    if text is not None:
        sub(parent, local, text)


def sub_localized(parent: etree._Element, local: str, value: LocalizedText | None) -> None:
    """Append child ``local`` holding ``value`` with its xml:lang, unless None."""
    if value is not None:
        sub(parent, local, value.text).set(XML_LANG, value.lang)


# --- reading a validated tree --------------------------------------------------


def checked_type(root: etree._Element, expected: str) -> None:
    """Validate ``root`` and check it is a document of type ``expected``."""
    actual = validate(root)
    if actual != expected:
        raise UnexpectedDocumentType(f"expected a {expected} document, got {actual}")


def child(element: etree._Element, local: str) -> etree._Element:
    """The required child ``local`` of a validated element."""
    found = element.find(q(local))
    if found is None:  # only when called on a tree that skipped validation
        raise InvalidInput(f"{local} is missing")
    return found


def children(element: etree._Element, local: str) -> list[etree._Element]:
    return element.findall(q(local))


def text_of(element: etree._Element) -> str:
    return element.text or ""


def text(element: etree._Element, local: str) -> str:
    return text_of(child(element, local))


def opt_text(element: etree._Element, local: str) -> str | None:
    found = element.find(q(local))
    return None if found is None else text_of(found)


def texts(element: etree._Element, local: str) -> tuple[str, ...]:
    return tuple(text_of(e) for e in children(element, local))


def attr(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise InvalidInput(f"attribute {name} is missing")
    return value


def localized(element: etree._Element) -> LocalizedText:
    return LocalizedText(text=text_of(element), lang=element.get(XML_LANG) or "")


def opt_localized(element: etree._Element, local: str) -> LocalizedText | None:
    found = element.find(q(local))
    return None if found is None else localized(found)


# --- value forms ------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    """xs:dateTime in UTC with ``Z``; microseconds only when non-zero."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("protocol datetimes must be timezone-aware")
    utc = value.astimezone(UTC)
    return (
        utc.replace(tzinfo=None).isoformat(
            timespec="microseconds" if utc.microsecond else "seconds"
        )
        + "Z"
    )


def parse_datetime(value: str) -> datetime:
    """A validated xs:dateTime (always with a zone) as an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("a timestamp is not a valid date and time") from None
    if parsed.tzinfo is None:
        raise InvalidInput("a timestamp has no time zone")
    return parsed.astimezone(UTC)


def format_date(value: date) -> str:
    return value.isoformat()


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("a date is not a valid calendar date") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str) -> bytes:
    """Decode xs:base64Binary text (whitespace between characters allowed)."""
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("base64 content is not valid") from None
