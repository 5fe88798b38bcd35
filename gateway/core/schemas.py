"""Schema validation of protocol documents against the XSDs in ``schemas/``.

The protocol's XSDs (one namespace, ``urn:imi-gateway:protocol:1``) are read
from the ``gateway.schemas`` package resources and compiled as ONE lxml
``XMLSchema`` (``protocol.xsd``, which includes every document family). Each
global element of that schema is a document root; :data:`DOCUMENT_TYPES`
lists them.

:func:`validate` answers the document type (the root's local name) or raises

* ``UnknownDocumentType`` (DOCUMENT_TYPE_UNKNOWN): the root is not in the
  protocol namespace, or is not a document of this protocol version;
* ``SchemaInvalid`` (SCHEMA_INVALID): the first schema error, with its line
  number. The message is built from the schema's own vocabulary only (element
  and type names, facets): values taken from the document are replaced by
  ``'…'``, so no document content (personal data) reaches a log or a peer.

Threads: a compiled lxml ``XMLSchema`` shares one error log between all the
validations that use it, and validation runs without the GIL, so two threads
validating with one object could read each other's errors. Each thread
therefore compiles its own copy on first use (about 2 ms) and keeps it.
No network access: includes and imports name only the package's own files
(a test checks every schemaLocation).
"""

from __future__ import annotations

import re
import threading
from enum import StrEnum
from functools import cache
from importlib.resources import as_file, files
from typing import Any

from lxml import etree

from gateway.core.errors import SchemaInvalid, UnknownDocumentType
from gateway.core.ns import DOC_NS

XS_NS = "http://www.w3.org/2001/XMLSchema"
ENTRY_SCHEMA = "protocol.xsd"
SCHEMA_FILES = (
    "protocol.xsd",
    "common.xsd",
    "exchange.xsd",
    "envelope.xsd",
    "delivery.xsd",
    "directory.xsd",
    "xml.xsd",
    "xmldsig.xsd",
)


class DocumentType(StrEnum):
    """The root element names of protocol version 1 (``urn:imi-gateway:protocol:1``)."""

    # exchange documents (end to end, signed by a national system)
    REQUEST = "Request"
    ACCEPTANCE = "Acceptance"
    REPLY_DATE_PROPOSAL = "ReplyDateProposal"
    INFORMATION_REQUEST = "InformationRequest"
    ADDITIONAL_INFORMATION = "AdditionalInformation"
    ANSWER = "Answer"
    CLOSURE = "Closure"
    REJECTION = "Rejection"
    FORWARD = "Forward"
    WITHDRAWAL = "Withdrawal"
    REMINDER = "Reminder"
    ESCALATION = "Escalation"
    # node documents (signed by a node)
    ENVELOPE = "Envelope"
    RECEIPT = "Receipt"
    ERROR = "Error"
    DELIVERY = "Delivery"
    AUTHORITY_DIRECTORY = "AuthorityDirectory"


#: Every document type (root local name) of this protocol version.
DOCUMENT_TYPES: frozenset[str] = frozenset(t.value for t in DocumentType)

#: The documents of an exchange, sent end to end between national systems.
EXCHANGE_DOCUMENT_TYPES: frozenset[str] = frozenset(
    {
        DocumentType.REQUEST,
        DocumentType.ACCEPTANCE,
        DocumentType.REPLY_DATE_PROPOSAL,
        DocumentType.INFORMATION_REQUEST,
        DocumentType.ADDITIONAL_INFORMATION,
        DocumentType.ANSWER,
        DocumentType.CLOSURE,
        DocumentType.REJECTION,
        DocumentType.FORWARD,
        DocumentType.WITHDRAWAL,
        DocumentType.REMINDER,
        DocumentType.ESCALATION,
    }
)

#: The documents nodes create and sign themselves.
NODE_DOCUMENT_TYPES: frozenset[str] = DOCUMENT_TYPES - EXCHANGE_DOCUMENT_TYPES


@cache
def schema_sources() -> dict[str, bytes]:
    """The bytes of every XSD of the protocol, by file name (read once)."""
    package = files("gateway.schemas")
    return {name: package.joinpath(name).read_bytes() for name in SCHEMA_FILES}


def _schema_parser() -> etree.XMLParser:
    """A parser for the package's own XSDs (trusted data; still no DTD, no network)."""
    return etree.XMLParser(
        resolve_entities=False, load_dtd=False, no_network=True, remove_comments=True
    )


def _compile() -> etree.XMLSchema:
    # libxml2 reads protocol.xsd and its includes and imports from the installed
    # package directory itself (the package is installed unzipped: zip_safe =
    # False). A custom lxml resolver is NOT used: lxml routes resolvers through a
    # process-wide document loader that parsing in other threads swaps out, so
    # includes would fail to load at random under concurrency.
    with as_file(files("gateway.schemas").joinpath(ENTRY_SCHEMA)) as path:
        return etree.XMLSchema(file=str(path))


_local = threading.local()


def compiled_schema() -> etree.XMLSchema:
    """This thread's compiled protocol schema (compiled on first use in the thread)."""
    schema: etree.XMLSchema | None = getattr(_local, "schema", None)
    if schema is None:
        schema = _compile()
        _local.schema = schema
    return schema


@cache
def _vocabulary() -> frozenset[str]:
    """Every name and facet value the XSDs declare: words an error message may quote."""
    words: set[str] = set()
    parser = _schema_parser()
    for source in schema_sources().values():
        root = etree.fromstring(source, parser)
        for node in root.iter(f"{{{XS_NS}}}*"):
            for attribute in ("name", "value"):
                value = node.get(attribute)
                if value is not None:
                    words.add(value)
    return frozenset(words)


_QUOTED = re.compile(r"'([^']*)'")
_NS_PREFIX = re.compile(r"\{(?:urn|https?):[^{}\s]*\}")
_BUILTIN_TYPE = re.compile(r"xs:[A-Za-z]+")
_FACETS = frozenset(
    "length minLength maxLength pattern enumeration minInclusive maxInclusive "
    "minExclusive maxExclusive totalDigits fractionDigits whiteSpace".split()
)


def sanitize_message(message: str) -> str:
    """Keep a libxml2 schema error's wording, but only the schema's own words in quotes."""
    vocabulary = _vocabulary()

    def quoted(match: re.Match[str]) -> str:
        word = _NS_PREFIX.sub("", match.group(1))
        keep = (
            word in vocabulary
            or word in _FACETS
            or _BUILTIN_TYPE.fullmatch(word) is not None
            or (word.isdigit() and message[: match.start()].endswith("length of "))
        )
        return f"'{word}'" if keep else "'…'"

    text = _QUOTED.sub(quoted, message.strip())
    return _NS_PREFIX.sub("", text)


def document_type(root: etree._Element) -> str:
    """The document type named by ``root`` (its local name), or UnknownDocumentType."""
    tag = root.tag
    if not isinstance(tag, str):
        raise UnknownDocumentType("the root is not an element")
    qname = etree.QName(tag)
    if qname.namespace != DOC_NS:
        raise UnknownDocumentType(
            f"the root element is not in the protocol namespace {DOC_NS} "
            "(another protocol version, or not a protocol document)"
        )
    if qname.localname not in DOCUMENT_TYPES:
        raise UnknownDocumentType("the root element is not a document type of protocol version 1")
    return qname.localname


def validate(root: etree._Element) -> str:
    """Validate ``root`` against the protocol XSDs; return its document type.

    Raises UnknownDocumentType or SchemaInvalid (see the module docstring).
    """
    doc_type = document_type(root)
    schema = compiled_schema()
    if schema.validate(root):
        return doc_type
    errors: Any = schema.error_log  # lxml-stubs do not type the error log's sequence API
    if len(errors) == 0:
        raise SchemaInvalid(f"the {doc_type} document does not validate")
    first = errors[0]
    raise SchemaInvalid(f"line {first.line}: {sanitize_message(first.message)}")
