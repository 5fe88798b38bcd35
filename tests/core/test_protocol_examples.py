"""docs/examples/*.xml: one valid example per document type, each shown in docs/protocol.md."""

from __future__ import annotations

import pathlib
import re

import pytest

from gateway.core.documents import read_document, to_xml
from gateway.core.envelopes import read_delivery, read_envelope, read_receipt
from gateway.core.schemas import DOCUMENT_TYPES, validate
from gateway.core.xmlparse import parse_xml

DOCS = pathlib.Path(__file__).parents[2] / "docs"
EXAMPLES = DOCS / "examples"
PROTOCOL_MD = DOCS / "protocol.md"
FILES = sorted(EXAMPLES.glob("*.xml"))


def file_name(document_type: str) -> str:
    """AdditionalInformation -> additional-information.xml"""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", document_type).lower() + ".xml"


def test_every_document_type_has_an_example() -> None:
    assert {p.name for p in FILES} == {file_name(t) for t in DOCUMENT_TYPES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_validates_as_the_type_its_name_says(path: pathlib.Path) -> None:
    root = parse_xml(path.read_bytes())
    assert file_name(validate(root)) == path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_reads_and_rebuilds_to_the_same_document(path: pathlib.Path) -> None:
    document = read_document(parse_xml(path.read_bytes()))
    assert read_document(to_xml(document)) == document


def test_the_envelope_and_delivery_examples_carry_the_request_example_byte_for_byte() -> None:
    request = (EXAMPLES / "request.xml").read_bytes()
    envelope = read_envelope(parse_xml((EXAMPLES / "envelope.xml").read_bytes()))
    assert [p.data for p in envelope.payloads] == [request]
    delivery = read_delivery(parse_xml((EXAMPLES / "delivery.xml").read_bytes()))
    assert delivery.document == request
    receipt = read_receipt(parse_xml((EXAMPLES / "receipt.xml").read_bytes()))
    assert receipt.items[0].sha256 == envelope.payloads[0].sha256
    assert receipt.envelope_id == envelope.message_id


def test_protocol_md_references_every_example() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    for path in FILES:
        assert f"(examples/{path.name})" in text, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_protocol_md_shows_each_example_as_it_is_on_disk(path: pathlib.Path) -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    link = text.index(f"(examples/{path.name})")
    block = re.compile(r"```xml\n(.*?)```", re.S).search(text, link)
    assert block is not None, f"no xml block after the link to {path.name}"
    assert block.group(1) == path.read_text(encoding="utf-8")
