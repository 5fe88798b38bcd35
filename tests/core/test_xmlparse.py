"""The hardened parser refuses every hostile construct, each with its stable code."""

from __future__ import annotations

import threading

import pytest
from lxml import etree

from gateway.core.errors import GatewayError
from gateway.core.xmlparse import DEFAULT_LIMITS, ParseLimits, hardened_parser, parse_xml
from tests.vectors.hostile import HOSTILE_DIR, STATIC_CASES


def code_of(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(GatewayError) as info:
        parse_xml(data, limits)
    return info.value.code


@pytest.mark.parametrize("name", sorted(STATIC_CASES))
def test_static_hostile_file_is_refused_with_its_code(name: str) -> None:
    assert code_of((HOSTILE_DIR / name).read_bytes()) == STATIC_CASES[name]


def test_accepts_plain_utf8_document_and_returns_its_root() -> None:
    root = parse_xml('<?xml version="1.0" encoding="UTF-8"?><a xmlns="urn:x">æ</a>'.encode())
    assert root.tag == "{urn:x}a"
    assert root.text == "æ"


def test_accepts_utf8_byte_order_mark() -> None:
    assert parse_xml(b"\xef\xbb\xbf<a/>").tag == "a"


@pytest.mark.parametrize(
    "data",
    [b"<!-- c --><a/>", b"<a/><!-- c -->", b"<a><!-- c --></a>", b"<a><b>x<!---->y</b></a>"],
    ids=["before-root", "after-root", "inside", "splitting-text"],
)
def test_refuses_comments_anywhere(data: bytes) -> None:
    assert code_of(data) == "XML_FORBIDDEN_CONSTRUCT"


@pytest.mark.parametrize(
    "data",
    [b"<?pi x?><a/>", b"<a/><?pi x?>", b"<a><?pi x?></a>"],
    ids=["before-root", "after-root", "inside"],
)
def test_refuses_processing_instructions_anywhere(data: bytes) -> None:
    assert code_of(data) == "XML_FORBIDDEN_CONSTRUCT"


def test_allow_comments_accepts_comments_but_still_refuses_xinclude() -> None:
    limits = ParseLimits(allow_comments=True)
    assert parse_xml(b"<!-- c --><a><!-- d --></a>", limits).tag == "a"
    xinclude = b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="x"/></a>'
    assert code_of(xinclude, limits) == "XML_FORBIDDEN_CONSTRUCT"


def test_refuses_doctype_even_without_entities() -> None:
    assert code_of(b"<!DOCTYPE a><a/>") == "XML_FORBIDDEN_CONSTRUCT"


def test_refuses_body_over_byte_cap_before_parsing() -> None:
    limits = ParseLimits(max_bytes=100)
    # Not even well-formed: the size check comes first.
    assert code_of(b"<" * 101, limits) == "DOCUMENT_TOO_LARGE"
    assert parse_xml(b"<a>" + b"x" * 93 + b"</a>", limits).tag == "a"


def test_depth_cap_counts_the_root_as_one() -> None:
    limits = ParseLimits(max_depth=3)
    assert parse_xml(b"<a><b><c/></b></a>", limits).tag == "a"
    assert code_of(b"<a><b><c><d/></c></b></a>", limits) == "XML_TOO_DEEP"


def test_nesting_past_libxml2_limit_is_too_deep_not_malformed() -> None:
    assert code_of(b"<a>" * 3000 + b"</a>" * 3000) == "XML_TOO_DEEP"


def test_refuses_xml_1_1() -> None:
    assert code_of(b'<?xml version="1.1"?><a/>') == "XML_MALFORMED"


def test_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        parse_xml("<a/>")  # type: ignore[arg-type]


def test_does_not_resolve_entities_or_reach_the_network() -> None:
    # Even with the pre-scan bypassed, the parser itself loads nothing.
    data = (HOSTILE_DIR / "xxe-external-entity.xml").read_bytes()
    root = etree.fromstring(data, hardened_parser())
    assert "root:" not in etree.tostring(root).decode()


def test_each_thread_gets_its_own_parser() -> None:
    parsers: list[etree.XMLParser] = []
    thread = threading.Thread(target=lambda: parsers.append(hardened_parser()))
    thread.start()
    thread.join()
    assert parsers[0] is not hardened_parser()
    assert hardened_parser() is hardened_parser()
