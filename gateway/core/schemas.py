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
  number, element path and kind (:func:`describe_error`). The message is
  built from the error's structure (libxml2's error type and positional
  path) and names the schema declares; libxml2's own text, which quotes the
  offending value, is never passed on, so no document content (personal
  data) reaches a log, a national system or a peer.

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
    "coordination.xsd",
    "envelope.xsd",
    "delivery.xsd",
    "directory.xsd",
    "xml.xsd",
    "xmldsig.xsd",
    # not part of protocol.xsd: the audit export (gateway.core.audit), compiled on its own
    "audit.xsd",
    # the audit checkpoints peers exchange (gateway.core.audit_checkpoint), on its own too
    "audit-checkpoint.xsd",
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
    # disputes and coordinators (a party, or a coordinator, signs them)
    DISPUTE = "Dispute"
    COORDINATOR_REMINDER = "CoordinatorReminder"
    COORDINATOR_FORWARD = "CoordinatorForward"
    MEDIATION_NOTE = "MediationNote"
    DISPUTE_SETTLED = "DisputeSettled"
    DISPUTE_ENDED = "DisputeEnded"
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
        DocumentType.DISPUTE,
        DocumentType.COORDINATOR_REMINDER,
        DocumentType.COORDINATOR_FORWARD,
        DocumentType.MEDIATION_NOTE,
        DocumentType.DISPUTE_SETTLED,
        DocumentType.DISPUTE_ENDED,
    }
)

#: The exchange documents only a coordinator signs (gateway.core.coordinators admits them).
COORDINATOR_DOCUMENT_TYPES: frozenset[str] = frozenset(
    {
        DocumentType.COORDINATOR_REMINDER,
        DocumentType.COORDINATOR_FORWARD,
        DocumentType.MEDIATION_NOTE,
        DocumentType.DISPUTE_SETTLED,
        DocumentType.DISPUTE_ENDED,
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


#: The kind of each libxml2 schema error, in words of our own (libxml2's text
#: quotes the offending value, so it is never used).
_KINDS: dict[str, str] = {
    "SCHEMAV_ELEMENT_CONTENT": "element not expected here",
    "SCHEMAV_CVC_ELT_1": "no such document element",
    "SCHEMAV_CVC_PATTERN_VALID": "value does not match the pattern of its type",
    "SCHEMAV_CVC_ENUMERATION_VALID": "value is not one of the allowed codes",
    "SCHEMAV_CVC_LENGTH_VALID": "value has the wrong length",
    "SCHEMAV_CVC_MINLENGTH_VALID": "value is too short",
    "SCHEMAV_CVC_MAXLENGTH_VALID": "value is too long",
    "SCHEMAV_CVC_MININCLUSIVE_VALID": "value is below the allowed range",
    "SCHEMAV_CVC_MINEXCLUSIVE_VALID": "value is below the allowed range",
    "SCHEMAV_CVC_MAXINCLUSIVE_VALID": "value is above the allowed range",
    "SCHEMAV_CVC_MAXEXCLUSIVE_VALID": "value is above the allowed range",
    "SCHEMAV_CVC_TOTALDIGITS_VALID": "value has too many digits",
    "SCHEMAV_CVC_FRACTIONDIGITS_VALID": "value has too many fraction digits",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "value is not valid for its type",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_2": "value is not valid for its type",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_3": "value is not valid for its type",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_1": "element must be empty",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "text is not allowed in this element",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_4": "element content is missing or not expected",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "attribute not allowed",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "attribute not allowed",
    "SCHEMAV_CVC_COMPLEX_TYPE_4": "required attribute missing",
    "SCHEMAV_CVC_ELT_4_2": "xsi:type not allowed",
    "SCHEMAV_CVC_IDC": "a value that must be unique is repeated, or a key is missing",
    "SCHEMAV_CVC_FACET_VALID": "value does not satisfy a facet of its type",
    "SCHEMAV_CVC_ATTRIBUTE_3": "attribute value is not valid for its type",
    "SCHEMAV_CVC_TYPE_3_1_1": "element with simple content may not have attributes",
    "SCHEMAV_CVC_TYPE_3_1_2": "element with simple content may not have child elements",
    "SCHEMAV_CVC_ELT_5_2_2_1": "element with fixed value may not have child elements",
    "SCHEMAV_CVC_ELT_5_2_2_2_1": "value differs from the fixed value",
    "SCHEMAV_CVC_ELT_5_2_2_2_2": "value differs from the fixed value",
    "SCHEMAV_CVC_WILDCARD": "element or attribute not allowed by a wildcard",
}

# libxml2 messages start with "Element 'NAME'" and optionally ", attribute
# 'NAME'": XML names cannot hold an apostrophe, so these groups are names, never
# values. Any name is still kept only if the schema declares it.
_SUBJECT = re.compile(
    r"\AElement '(?:\{[^}']*\})?([^'{}]*)'(?:, attribute '(?:\{[^}']*\})?([^'{}]*)')?"
)
_MISSING_ATTRIBUTE = re.compile(r"The attribute '([^'{}]*)' is required but missing\.\Z")
_EXPECTED_NAME = re.compile(r"\{[^}\s]*\}([A-Za-z0-9_.-]+)")


def _name(word: str | None) -> str:
    """A schema-declared name as is; anything else (chosen by the document) as ``*``."""
    if word and word in _vocabulary():
        return word
    return "*"


def _element_path(root: etree._Element, position_path: str) -> str:
    """``/Request/PersonConcerned/DateOfBirth`` for libxml2's positional path ``/*/*[6]/*[3]``."""
    try:
        found = root.xpath(position_path) if position_path.startswith("/") else []
    except etree.XPathError:
        found = []
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return "*"
    names = []
    element: etree._Element | None = found[0]
    while element is not None:
        tag = element.tag
        names.append(_name(etree.QName(tag).localname) if isinstance(tag, str) else "*")
        element = element.getparent()
    return "/" + "/".join(reversed(names))


def describe_error(root: etree._Element, error: Any) -> str:
    """A schema error in words built only from its structure, never from libxml2's text.

    The result names the line, the element path, the attribute, the kind of
    error and (for misplaced elements) the expected element names: names the
    schema declares, never a value of the document. A name the schema does not
    declare is shown as ``*``.
    """
    message = str(error.message)
    subject = _SUBJECT.match(message)
    path = _element_path(root, str(error.path or ""))
    attribute = subject.group(2) if subject else None
    kind = _KINDS.get(str(error.type_name), f"schema rule {error.type_name} not met")
    text = f"line {error.line}: {path}"
    missing = _MISSING_ATTRIBUTE.search(message)
    if missing is not None:
        text += f": {kind}: {_name(missing.group(1))}"
        return text
    if attribute is not None:
        text += f"/@{_name(attribute)}"
    text += f": {kind}"
    if error.type_name == "SCHEMAV_ELEMENT_CONTENT" and "Expected is" in message:
        # Everything after libxml2's fixed "Expected is" comes from the schema.
        expected = _EXPECTED_NAME.findall(message.split("Expected is", 1)[1])
        names = sorted({n for n in expected if n in _vocabulary()})
        if names:
            text += f" (expected: {', '.join(names)})"
    return text


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
    raise SchemaInvalid(describe_error(root, errors[0]))
