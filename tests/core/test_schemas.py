"""The protocol XSDs and gateway.core.schemas: one namespace, every root a document
type, bounded input, safe error messages, thread-safe validation."""

from __future__ import annotations

import re
import threading
from importlib.resources import files

import pytest
from lxml import etree

from gateway.core import ns, schemas
from gateway.core.errors import InvalidInput, SchemaInvalid, UnknownDocumentType
from gateway.core.schemas import (
    DOCUMENT_TYPES,
    EXCHANGE_DOCUMENT_TYPES,
    NODE_DOCUMENT_TYPES,
    SCHEMA_FILES,
    XS_NS,
    validate,
)
from gateway.core.xmlparse import parse_xml

XS = f"{{{XS_NS}}}"

REQUEST = """<?xml version="1.0" encoding="UTF-8"?>
<Request xmlns="urn:imi-gateway:protocol:1">
  <Header>
    <ExchangeId>EX-1</ExchangeId>
    <DocumentId>DOC-1</DocumentId>
    <SenderAuthority>NO-HELSEDIR</SenderAuthority>
    <ReceiverAuthority>PT-OMD</ReceiverAuthority>
    <Created>2026-03-02T09:15:00Z</Created>
    <CatalogueVersion>2026.1</CatalogueVersion>
  </Header>
  <LegislationArea>PQD</LegislationArea>
  <QuestionSet>PQD-DOCTOR</QuestionSet>
  <SenderLanguage>nn</SenderLanguage>
  <RequestedReplyDate>2026-03-16</RequestedReplyDate>
  <PersonConcerned>
    <GivenNames>Maria Helena</GivenNames>
    <FamilyName>Sousa Carvalho</FamilyName>
    <DateOfBirth>1988-05-04</DateOfBirth>
  </PersonConcerned>
  <Question code="PQD-DOCTOR-001"/>
  <Question code="PQD-DOCTOR-002"><FreeText xml:lang="nn">Er vitnemålet ekte?</FreeText></Question>
</Request>
"""


def request(old: str = "", new: str = "") -> etree._Element:
    text = REQUEST.replace(old, new, 1) if old else REQUEST
    assert not old or old in REQUEST
    return parse_xml(text.encode())


def xsd(name: str) -> etree._Element:
    return etree.fromstring(files("gateway.schemas").joinpath(name).read_bytes())


# --- the schema files -------------------------------------------------------------------


def test_every_top_level_xsd_is_compiled() -> None:
    on_disk = {p.name for p in files("gateway.schemas").iterdir() if p.name.endswith(".xsd")}
    assert on_disk == set(SCHEMA_FILES)


def test_document_types_are_exactly_the_global_elements_of_the_protocol_namespace() -> None:
    roots = set()
    for name in SCHEMA_FILES:
        schema = xsd(name)
        if schema.get("targetNamespace") == ns.DOC_NS:
            roots |= {e.get("name") for e in schema.findall(f"{XS}element")}
    assert roots == DOCUMENT_TYPES
    assert EXCHANGE_DOCUMENT_TYPES | NODE_DOCUMENT_TYPES == DOCUMENT_TYPES
    assert len(EXCHANGE_DOCUMENT_TYPES) == 18


def test_no_schema_imports_anything_outside_the_package() -> None:
    for name in SCHEMA_FILES:
        for ref in xsd(name).iter(f"{XS}import", f"{XS}include", f"{XS}redefine"):
            assert ref.get("schemaLocation") in SCHEMA_FILES, (name, ref.get("schemaLocation"))


def test_every_signable_root_ends_with_an_optional_ds_signature() -> None:
    for name in SCHEMA_FILES:
        schema = xsd(name)
        if schema.get("targetNamespace") != ns.DOC_NS:
            continue
        for element in schema.findall(f"{XS}element"):
            sequence = element.find(f"{XS}complexType/{XS}sequence")
            assert sequence is not None, element.get("name")
            last = sequence[-1]
            assert last.tag == f"{XS}element" and last.get("ref") == "ds:Signature"
            assert last.get("minOccurs") == "0" and last.get("maxOccurs") is None


@pytest.mark.parametrize(("name", "path"), [("xml.xsd", "attribute"), ("common.xsd", "simpleType")])
def test_language_lists_match_ns_languages(name: str, path: str) -> None:
    schema = xsd(name)
    holder = (
        schema.find(f"{XS}attribute[@name='lang']")
        if path == "attribute"
        else schema.find(f"{XS}simpleType[@name='LanguageCode']")
    )
    assert holder is not None
    values = [e.get("value") for e in holder.iter(f"{XS}enumeration")]
    assert values == list(ns.LANGUAGES)


def _pattern(type_name: str) -> re.Pattern[str]:
    node = xsd("common.xsd").find(f"{XS}simpleType[@name='{type_name}']")
    assert node is not None
    facet = node.find(f".//{XS}pattern")
    assert facet is not None
    return re.compile(r"\A(?:" + (facet.get("value") or "") + r")\Z")


@pytest.mark.parametrize(
    "value",
    [
        "NO-HELSEDIR",
        "PT-OMD",
        "EL-A",
        "LI-X1-Y2",
        "NO-" + "A" * 40,
        "NO-" + "A" * 41,
        "GR-X",
        "US-FDA",
        "NO-",
        "NO-A-",
        "NO--A",
        "no-helsedir",
        "NO-HELSE DIR",
        "NO",
    ],
)
def test_the_authority_id_pattern_agrees_with_ns(value: str) -> None:
    assert bool(_pattern("AuthorityId").match(value)) == ns.is_authority_id(value)


def test_the_node_ids_are_the_eea_countries() -> None:
    pattern = _pattern("NodeId")
    assert {c for c in ns.EEA_COUNTRIES if pattern.match(c)} == ns.EEA_COUNTRIES
    assert not pattern.match("GR") and not pattern.match("US")


# --- validate() --------------------------------------------------------------------------


def test_a_valid_document_answers_its_type() -> None:
    assert validate(request()) == "Request"


@pytest.mark.parametrize(
    "replacement",
    ['<Request xmlns="urn:imi-gateway:protocol:2">', "<Request>"],
    ids=["another-protocol-version", "no-namespace"],
)
def test_a_root_outside_the_protocol_namespace_is_an_unknown_document_type(
    replacement: str,
) -> None:
    root = request('<Request xmlns="urn:imi-gateway:protocol:1">', replacement)
    with pytest.raises(UnknownDocumentType) as caught:
        validate(root)
    assert caught.value.code == "DOCUMENT_TYPE_UNKNOWN"


@pytest.mark.parametrize(
    "xml",
    [
        b'<Header xmlns="urn:imi-gateway:protocol:1"/>',
        b'<Question xmlns="urn:imi-gateway:protocol:1" code="A"/>',
        b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>',
        b'<Request xmlns="urn:imi-gateway:catalogue:1"/>',
    ],
)
def test_an_unknown_root_is_refused_before_schema_validation(xml: bytes) -> None:
    with pytest.raises(UnknownDocumentType):
        validate(parse_xml(xml))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<ExchangeId>EX-1</ExchangeId>", ""),  # missing field
        ("<CatalogueVersion>2026.1</CatalogueVersion>", ""),  # codes without catalogue version
        ("<DocumentId>DOC-1</DocumentId>", "<DocumentId>DOC 1</DocumentId>"),
        ("<DocumentId>DOC-1</DocumentId>", "<DocumentId>" + "D" * 101 + "</DocumentId>"),
        ("<SenderAuthority>NO-HELSEDIR", "<SenderAuthority>US-FDA"),
        ("2026-03-02T09:15:00Z", "2026-03-02T09:15:00"),  # no time zone
        ("2026-03-02T09:15:00Z", "2026-03-02T24:00:00Z"),
        ("<CatalogueVersion>2026.1", "<CatalogueVersion>latest"),
        ("<SenderLanguage>nn", "<SenderLanguage>no"),
        ("<RequestedReplyDate>2026-03-16", "<RequestedReplyDate>2026-02-30"),
        ("<GivenNames>Maria Helena", "<GivenNames>" + "M" * 301),  # oversize
        ('code="PQD-DOCTOR-002"', 'code="PQD-DOCTOR-001"'),  # a question twice
        ('code="PQD-DOCTOR-002"', 'code="pqd-doctor-002"'),
        ('xml:lang="nn"', 'xml:lang="nb-NO"'),
        ('<FreeText xml:lang="nn">', "<FreeText>"),
        ("Er vitnemålet ekte?", "x" * 4001),
        ("<LegislationArea>PQD</LegislationArea>", ""),
        ("</Request>", "<Unexpected/></Request>"),
        ("</Request>", '<Question code="X" extra="1"/></Request>'),
    ],
)
def test_invalid_documents_are_refused_as_schema_invalid(old: str, new: str) -> None:
    with pytest.raises(SchemaInvalid) as caught:
        validate(request(old, new))
    assert caught.value.code == "SCHEMA_INVALID"
    assert isinstance(caught.value, InvalidInput)


def test_a_request_asks_at_most_200_questions() -> None:
    questions = "".join(f'<Question code="Q-{i}"/>' for i in range(200))
    replaced = '<Question code="PQD-DOCTOR-001"/>'
    with pytest.raises(SchemaInvalid):
        validate(request(replaced, questions))
    validate(request(replaced, "".join(f'<Question code="Q-{i}"/>' for i in range(199))))


def test_an_attachment_is_capped_at_5_mib() -> None:
    big = "QUFB" * (5 * 1024 * 1024 // 3 + 1)
    attachment = (
        "<Attachment><Name>a.pdf</Name><MediaType>application/pdf</MediaType>"
        f"<Size>1</Size><Sha256>{'0' * 64}</Sha256><Content>{big}</Content></Attachment>"
    )
    with pytest.raises(SchemaInvalid, match="Content"):
        validate(request("</Request>", attachment + "</Request>"))


def test_the_error_message_has_the_line_and_no_document_content() -> None:
    with pytest.raises(SchemaInvalid) as caught:
        validate(request("<DateOfBirth>1988-05-04", "<DateOfBirth>19880504"))
    message = str(caught.value)
    assert message.startswith("line 18: ")
    assert "DateOfBirth" in message and "19880504" not in message
    for secret in ("Maria", "Sousa", "1988"):
        assert secret not in message


def test_an_unexpected_element_name_is_not_echoed() -> None:
    with pytest.raises(SchemaInvalid) as caught:
        validate(request("</Request>", "<MariaSousa/></Request>"))
    assert "MariaSousa" not in str(caught.value)


def test_the_error_message_keeps_schema_words() -> None:
    with pytest.raises(SchemaInvalid) as caught:
        validate(request("<SenderLanguage>nn", "<SenderLanguage>xx"))
    message = str(caught.value)
    assert "/SenderLanguage: value is not one of the allowed codes" in message
    assert "xx" not in message
    assert "urn:imi-gateway" not in message


# --- the signature slot -------------------------------------------------------------------


DS = 'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'


def test_a_signature_may_stand_as_the_last_child() -> None:
    signature = f"<ds:Signature {DS}><ds:SignedInfo/><anything/></ds:Signature>"
    assert validate(request("</Request>", signature + "</Request>")) == "Request"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            '<Question code="PQD-DOCTOR-001"/>',
            f'<ds:Signature {DS}/><Question code="PQD-DOCTOR-001"/>',
        ),
        ("</Request>", f"<ds:Signature {DS}/><ds:Signature {DS}/></Request>"),
        ("</Request>", f"<ds:Object {DS}/></Request>"),
        ("<Header>", f"<Header><ds:Signature {DS}/>"),
    ],
    ids=["not-last", "two", "other-ds-element", "nested"],
)
def test_a_signature_anywhere_else_is_refused(old: str, new: str) -> None:
    with pytest.raises(SchemaInvalid):
        validate(request(old, new))


# --- threads ------------------------------------------------------------------------------


def test_threads_compiling_at_once_each_get_their_own_schema() -> None:
    seen: list[object] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker() -> None:
        start.wait()
        try:
            seen.append(schemas.compiled_schema())
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({id(s) for s in seen}) == 6
    assert schemas.compiled_schema() is schemas.compiled_schema()


def test_concurrent_validation_reports_each_documents_own_result() -> None:
    valid = etree.tostring(request())
    invalid = etree.tostring(request("<SenderLanguage>nn", "<SenderLanguage>xx"))
    failures: list[str] = []

    def worker(n: int) -> None:
        try:
            check(n)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(repr(exc))

    def check(n: int) -> None:
        for i in range(200):
            good = (i + n) % 2 == 0
            root = parse_xml(valid if good else invalid)
            try:
                validate(root)
                if not good:
                    failures.append("invalid accepted")
            except SchemaInvalid as exc:
                if good:
                    failures.append("valid refused")
                elif "SenderLanguage" not in str(exc):
                    failures.append(f"wrong message: {exc}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
