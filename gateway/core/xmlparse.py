"""Hardened XML parsing: the only way untrusted bytes become an lxml tree.

What it refuses, each with a stable error code (see gateway.core.errors):

* bodies over ``ParseLimits.max_bytes`` (``DOCUMENT_TOO_LARGE``), checked
  before a single byte is parsed;
* any DOCTYPE, hence any DTD, entity declaration, external entity or billion
  laughs (``XML_FORBIDDEN_CONSTRUCT``); the parser also has entity
  resolution, DTD loading and network access switched off as a second wall;
* encodings other than UTF-8 (the protocol is UTF-8 only, and it keeps the
  byte scans below honest), with or without a byte-order mark, and XML
  versions other than 1.0 (``XML_MALFORMED``);
* XInclude elements, comments and processing instructions, unless the caller
  explicitly allows comments/PIs for trusted package data;
* nesting deeper than ``ParseLimits.max_depth`` (``XML_TOO_DEEP``), including
  nesting so deep that libxml2 itself gives up;
* malformed XML (``XML_MALFORMED``).

It keeps no state between calls except one parser per thread (lxml parsers
are not thread-safe) and compiled XPath expressions.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lxml import etree

from gateway.core.errors import (
    DocumentTooDeep,
    DocumentTooLarge,
    ForbiddenXMLConstruct,
    MalformedXML,
)

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
#: The namespace of the 2003 XInclude draft, which libxml2 also processes.
XINCLUDE_2003_NS = "http://www.w3.org/2003/XInclude"

_XML_DECL_ENCODING = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_FORBIDDEN_MARKUP = (b"<!DOCTYPE", b"<!ENTITY", b"<!ELEMENT", b"<!ATTLIST")

_XINCLUDE_TAGS = (f"{{{XINCLUDE_NS}}}*", f"{{{XINCLUDE_2003_NS}}}*")
_FORBIDDEN_TAGS: tuple[Any, ...] = (etree.Comment, etree.ProcessingInstruction, *_XINCLUDE_TAGS)


def _has_forbidden_nodes(root: etree._Element, allow_comments: bool) -> bool:
    # Tag-filtered iteration runs in C and is an order of magnitude faster than
    # an XPath with namespace-uri() predicates.
    if next(root.iter(*(_XINCLUDE_TAGS if allow_comments else _FORBIDDEN_TAGS)), None) is not None:
        return True
    if allow_comments:
        return False
    # Outside the root element a document can only hold comments and PIs.
    return (
        next(root.itersiblings(preceding=True), None) is not None
        or next(root.itersiblings(), None) is not None
    )


@dataclass(frozen=True)
class ParseLimits:
    """Caps applied to every parse.

    max_bytes: largest body accepted, in bytes (default 16 MiB; documents carry
        attachments inline, base64-encoded).
    max_depth: deepest element nesting accepted, the root being depth 1
        (default 32; the deepest protocol document needs about 10).
    allow_comments: accept comments and processing instructions. Only for
        trusted package data such as the catalogue; never for anything that
        arrives from outside or is signed.
    """

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 32
    allow_comments: bool = False


DEFAULT_LIMITS = ParseLimits()

_local = threading.local()


def hardened_parser() -> etree.XMLParser:
    """This thread's hardened parser, for libraries that insist on parsing themselves.

    Only hand it bytes that :func:`parse_xml` has already accepted (or bytes
    derived from such a tree, such as its canonical form): the parser alone does
    not apply the byte cap, the DOCTYPE refusal or the node checks.
    """
    return _parser()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=False,
            remove_comments=False,
            remove_pis=False,
            remove_blank_text=False,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


@lru_cache(maxsize=8)
def _too_deep(max_depth: int) -> etree.XPath:
    # True when an element exists at depth max_depth + 1: evaluated in C.
    return etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")


def _check_encoding(data: bytes) -> None:
    # UTF-16/32 with a byte-order mark, UTF-16/32 without one (a NUL byte next
    # to the first "<"), EBCDIC.
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"<\x00", b"\x4c\x6f\xa7\x94")):
        raise MalformedXML("documents must be encoded in UTF-8")
    match = _XML_DECL_ENCODING.match(data.lstrip(b"\xef\xbb\xbf"))
    if match and match.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise MalformedXML("documents must be encoded in UTF-8")


def parse_xml(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted ``data`` and return the root element, or raise.

    The returned tree is safe to inspect, but it is *not* verified: only
    ``gateway.core.signing`` turns it into something code may trust.
    """
    if not isinstance(data, bytes):
        raise TypeError("parse_xml takes bytes")
    if len(data) > limits.max_bytes:
        raise DocumentTooLarge(
            f"the body is {len(data)} bytes; the limit is {limits.max_bytes} bytes"
        )
    _check_encoding(data)
    for marker in _FORBIDDEN_MARKUP:
        if marker in data:
            raise ForbiddenXMLConstruct(f"{marker[2:].decode()} declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        if "Excessive depth" in (exc.msg or ""):
            raise DocumentTooDeep(f"elements are nested deeper than {limits.max_depth}") from None
        # libxml2's text can quote names and values of the document: report
        # only where and which rule (its error type), never that text.
        syntax: Any = exc  # lxml-stubs do not type XMLSyntaxError's code and position
        line, column = syntax.position
        raise MalformedXML(
            f"not well-formed XML at line {line}, column {column} "
            f"({etree.ErrorTypes._getName(syntax.code)})"
        ) from None
    tree = root.getroottree()
    docinfo: Any = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ForbiddenXMLConstruct("DOCTYPE declarations are not allowed")
    if docinfo.xml_version not in (None, "1.0"):
        raise MalformedXML("documents must be XML 1.0")
    if _has_forbidden_nodes(root, limits.allow_comments):
        raise ForbiddenXMLConstruct(
            "XInclude is not allowed"
            if limits.allow_comments
            else "comments, processing instructions and XInclude are not allowed"
        )
    if _too_deep(limits.max_depth)(tree):
        raise DocumentTooDeep(f"elements are nested deeper than {limits.max_depth}")
    return root
