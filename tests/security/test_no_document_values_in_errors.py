"""Error texts never carry document values (issue 7, finding 7).

A schema error used to be libxml2's message with quoted values blanked by a
regex that stopped at an apostrophe: ``O'Sullivan-Carvalho Maria Helena`` came
back verbatim. These tests put names with apostrophes, quotes, markup
characters and non-Latin scripts into documents and look for any part of
them in the schema error, the national API's 400 answer, the CLI's output and
the Error a peer node gets back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from lxml import etree

from gateway.cli import main
from gateway.core import certs
from gateway.core.documents import to_xml
from gateway.core.envelopes import Payload
from gateway.core.errors import MalformedXML, SchemaInvalid
from gateway.core.ns import DOC_NS
from gateway.core.schemas import validate
from gateway.core.xmlparse import parse_xml
from gateway.testbed import doctor_request
from tests.transport.test_peer_security import PEER_PATH, refusal, running, url
from tests.vectors.hostile import document

NAMES = [
    "O'Sullivan-Carvalho Maria Helena",
    'Maria "Lena" Sousa',
    "<Maria> & Sousa",
    "Ελένη Παπαδοπούλου",
    "Иван Петров",
    "محمد عبدالله",
    "王小明",
]


def fragments(value: str) -> list[str]:
    """The value and every word of it (three characters or more) that must not be echoed."""
    words = [w for w in re.split(r"[\s'\"<>&-]+", value) if len(w) >= 3]
    return [value, *words]


def assert_clean(text: str, value: str) -> None:
    for fragment in fragments(value):
        assert fragment not in text, f"{fragment!r} echoed in {text!r}"


def with_nationality(value: str, exchange_id: str = "IMI-NO-PII-1") -> etree._Element:
    """A doctor Request whose PersonConcerned/Nationality holds ``value`` (schema-invalid)."""
    root = to_xml(doctor_request(exchange_id, "NO-HELSEDIR", "PT-OMD", datetime.now(UTC)))
    nationality = root.find(f".//{{{DOC_NS}}}Nationality")
    assert nationality is not None
    nationality.text = value
    return root


@pytest.mark.parametrize("value", NAMES)
@pytest.mark.parametrize("where", ["Nationality", "DateOfBirth", "LegislationArea"])
def test_schema_errors_do_not_echo_element_values(value: str, where: str) -> None:
    root = with_nationality("PT")
    element = root.find(f".//{{{DOC_NS}}}{where}")
    assert element is not None
    element.text = value
    with pytest.raises(SchemaInvalid) as caught:
        validate(etree.fromstring(etree.tostring(root)))
    message = str(caught.value)
    assert f"/{where}: " in message
    assert_clean(message, value)


@pytest.mark.parametrize("value", NAMES)
def test_schema_errors_do_not_echo_attribute_values(value: str) -> None:
    root = with_nationality("PT")
    question = root.find(f"{{{DOC_NS}}}Question")
    assert question is not None
    question.set("code", value)
    with pytest.raises(SchemaInvalid) as caught:
        validate(etree.fromstring(etree.tostring(root)))
    assert "/Question/@code: " in str(caught.value)
    assert_clean(str(caught.value), value)


def test_an_element_name_the_schema_does_not_declare_is_not_echoed() -> None:
    root = with_nationality("PT")
    person = root.find(f".//{{{DOC_NS}}}PersonConcerned")
    assert person is not None
    etree.SubElement(person, f"{{{DOC_NS}}}MariaHelenaSousa").text = "x"
    with pytest.raises(SchemaInvalid) as caught:
        validate(etree.fromstring(etree.tostring(root)))
    assert "MariaHelenaSousa" not in str(caught.value)
    assert "/PersonConcerned/*: element not expected here" in str(caught.value)


def test_malformed_xml_errors_do_not_echo_names_or_values() -> None:
    for body in (
        b"<Request><O_Sullivan_Carvalho>x</Maria></Request>",
        b"<Request a='1' Sousa_Carvalho='2' Sousa_Carvalho='3'/>",
        b"<Request>&Sousa_Carvalho;</Request>",
    ):
        with pytest.raises(MalformedXML) as caught:
            parse_xml(body)
        for secret in ("Sullivan", "Maria", "Sousa", "Carvalho"):
            assert secret not in str(caught.value)


# --- the real edges: national API, CLI, peer Error -------------------------------------------


@pytest_twisted.ensureDeferred
async def test_api_and_peer_answers_do_not_echo_document_values(tmp_path: Path) -> None:
    async with running(tmp_path) as bed:
        for i, value in enumerate(NAMES):
            signed = bed.helsedir.sign(with_nationality(value, f"IMI-NO-PII-{i}"))
            answer = await bed.helsedir.submit_raw(signed)
            assert answer.status == 400
            body = answer.body.decode()
            assert "SCHEMA_INVALID" in body
            assert_clean(body, value)

            envelope = bed.envelope([Payload(f"IMI-NO-PII-{i}-1", signed)])
            answer = await bed.peer_client("NO").post(url(bed.setups["PT"], PEER_PATH), envelope)
            # A refused payload answers with its cause's code, naming the message id.
            assert refusal(answer) == (400, "SCHEMA_INVALID", f"IMI-NO-PII-{i}-1")
            assert_clean(answer.body.decode(), value)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    from gateway.core import pki

    now = datetime.now(UTC)
    ca = pki.make_ca("NO", now=now)
    ns = pki.issue_national_system(ca, "NO-HELSEDIR", now=now)
    (tmp_path / "ca.pem").write_bytes(certs.dump_pem_certificate(ca.certificate))
    (tmp_path / "key.pem").write_bytes(certs.dump_pem_private_key(ns.key))
    (tmp_path / "key.pem").chmod(0o600)
    (tmp_path / "cert.pem").write_bytes(certs.dump_pem_certificate(ns.certificate))
    return tmp_path


@pytest.mark.parametrize("value", NAMES)
def test_cli_sign_and_verify_do_not_echo_document_values(
    keys: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = keys / "unsigned.xml"
    unsigned.write_bytes(etree.tostring(with_nationality(value), encoding="UTF-8"))
    signed = keys / "signed.xml"
    sign = ["sign", unsigned, "--key", keys / "key.pem", "--cert", keys / "cert.pem"]
    status = main([str(a) for a in [*sign, "-o", signed]])
    captured = capsys.readouterr()
    assert_clean(captured.out + captured.err, value)
    assert status == 0 or "SCHEMA_INVALID" in captured.err
    if status != 0:
        return
    for extra in ([], ["--json"]):
        assert main([str(a) for a in ["verify", signed, "--ca", keys / "ca.pem", *extra]]) == 1
        captured = capsys.readouterr()
        assert "SCHEMA_INVALID" in captured.out + captured.err
        assert_clean(captured.out + captured.err, value)


def test_the_hostile_corpus_schema_error_names_the_line_and_element() -> None:
    data = document("request.xml").replace(b"1984-05-17", b"O'Sullivan")
    with pytest.raises(SchemaInvalid) as caught:
        validate(parse_xml(data))
    assert str(caught.value) == (
        "line 18: /Request/PersonConcerned/DateOfBirth: value is not valid for its type"
    )
