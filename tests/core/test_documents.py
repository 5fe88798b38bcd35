"""Document builders and readers: every type builds, validates and round-trips;
inconsistent documents (digests, sizes, directories) are refused with stable codes."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.core import pki
from gateway.core.directory.document import (
    Address,
    AuthorityDirectory,
    AuthorityEntry,
    Competence,
    DirectoryInconsistent,
    read_directory,
)
from gateway.core.documents import (
    MAX_ATTACHMENT_BYTES,
    Acceptance,
    AdditionalInformation,
    Answer,
    Attachment,
    Closure,
    CoordinatorForward,
    CoordinatorReminder,
    Dispute,
    DisputeEnded,
    DisputeSettled,
    Document,
    Escalation,
    Forward,
    Header,
    InformationRequest,
    MediationNote,
    PersonConcerned,
    Question,
    RegistrationNumber,
    Rejection,
    Reminder,
    Reply,
    ReplyDateProposal,
    Request,
    Withdrawal,
    read_document,
    read_exchange_document,
    to_bytes,
    to_xml,
)
from gateway.core.docxml import (
    AttachmentMismatch,
    DigestMismatch,
    LocalizedText,
    UnexpectedDocumentType,
)
from gateway.core.envelopes import (
    MAX_PAYLOAD_BYTES,
    Delivery,
    Envelope,
    ErrorDocument,
    MachineTranslation,
    OptionText,
    Payload,
    QuestionText,
    Receipt,
    ReceiptItem,
    ReceiptStatus,
    Rendering,
    RenderingStatus,
    build_delivery,
    build_envelope,
    build_error,
    build_receipt,
    error_for,
    read_delivery,
    read_envelope,
    read_error,
    read_receipt,
)
from gateway.core.errors import InvalidInput, SchemaInvalid
from gateway.core.ns import DOC_NS, DS_NS
from gateway.core.schemas import DOCUMENT_TYPES, validate
from gateway.core.xmlparse import parse_xml

T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
NO, PT = "NO-HELSEDIR", "PT-OMD"


def header(n: int, *, reply: str | None = "DOC-0", cat: str | None = None) -> Header:
    return Header("EX-1", f"DOC-{n}", NO, PT, T0 + timedelta(minutes=n), cat, reply)


def note(text: str = "Takk.") -> LocalizedText:
    return LocalizedText(text, "nn")


PDF = b"%PDF-1.7\nnot really a pdf\n%%EOF\n"
PERSON = PersonConcerned(
    given_names="Maria Helena",
    family_name="Sousa Carvalho",
    birth_name="Sousa",
    date_of_birth=date(1988, 5, 4),
    place_of_birth="Coimbra",
    nationalities=("PT", "BR"),
    registration_numbers=(RegistrationNumber("PROFESSIONAL_REGISTER", "54321", "PT-OMD"),),
)


def a_request(**changes: object) -> Request:
    request = Request(
        header=header(0, reply=None, cat="2026.1"),
        legislation_area="PQD",
        question_set="PQD-DOCTOR",
        sender_language="nn",
        requested_reply_date=date(2026, 3, 16),
        questions=(
            Question("PQD-DOCTOR-001"),
            Question("PQD-DOCTOR-002", note("Er vitnemålet ekte?")),
        ),
        person=PERSON,
        attachments=(Attachment("vitnemaal.pdf", "application/pdf", PDF),),
    )
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


@functools.cache
def national_system_cert_der() -> bytes:
    ca = pki.make_ca("PT", now=T0)
    return pki.issue_national_system(ca, "PT-OMD", now=T0).certificate.public_bytes(Encoding.DER)


def a_directory(**changes: object) -> AuthorityDirectory:
    directory = AuthorityDirectory(
        node_id="PT",
        version=7,
        created=T0,
        authorities=(
            AuthorityEntry(
                authority_id="PT-OMD",
                names=(
                    LocalizedText("Ordem dos Médicos", "pt"),
                    LocalizedText("Portuguese Medical Association", "en"),
                ),
                address=Address(("Av. Almirante Gago Coutinho, 151",), "Lisboa", "PT", "1749-084"),
                region="PT17",
                competences=(Competence("PQD", ("PQD-DOCTOR",), ("doctor",)), Competence("SD")),
                working_languages=("pt", "en"),
                certificates=(national_system_cert_der(),),
            ),
        ),
    )
    return dataclasses.replace(directory, **changes)  # type: ignore[arg-type]


def every_document() -> list[Document]:
    request = a_request()
    request_bytes = to_bytes(request)
    return [
        request,
        a_request(person=None, attachments=()),
        Acceptance(header(1), date(2026, 3, 20), note()),
        ReplyDateProposal(header(2), date(2026, 3, 20), LocalizedText("Arquivo.", "pt")),
        InformationRequest(
            header(3, cat="2026.1"), LocalizedText("Cópia?", "pt"), (Question("PQD-DOCTOR-001"),)
        ),
        AdditionalInformation(
            header(4), note("Vedlagt."), (Attachment("b.pdf", "application/pdf", PDF),)
        ),
        AdditionalInformation(header(5), None, (Attachment("b.pdf", "application/pdf", PDF),)),
        AdditionalInformation(header(6), note("Berre tekst.")),
        Answer(
            header(7, cat="2026.1"),
            (
                Reply("PQD-DOCTOR-001", options=("YES",)),
                Reply("PQD-DOCTOR-002", options=("YES",), date=date(2012, 7, 20), free_text=note()),
                Reply("PQD-DOCTOR-003", date=date(2012, 7, 20)),
                Reply("PQD-DOCTOR-004", free_text=LocalizedText("Sim.", "pt")),
            ),
            (Attachment("registo.pdf", "application/pdf", PDF),),
            LocalizedText("Com os melhores cumprimentos.", "pt"),
        ),
        Closure(header(8), note()),
        Closure(header(9)),
        Rejection(header(10), "NOT_COMPETENT", LocalizedText("Veja ACSS.", "pt")),
        Forward(header(11), "PT-ACSS", LocalizedText("Competente: ACSS.", "pt")),
        Withdrawal(header(12, reply=None), "NO_LONGER_NEEDED", note()),
        Withdrawal(header(13, reply=None)),
        Reminder(header(14), note("Når kjem svaret?")),
        Escalation(header(15, reply=None), "ANSWER_OVERDUE", "NO-IMI-KOORDINATOR", note()),
        Escalation(header(16, reply=None), "DISAGREEMENT"),
        Dispute(header(17, reply=None), "QUESTION_NOT_JUSTIFIED", note()),
        CoordinatorReminder(header(18, reply=None), "NO-KOORD", note()),
        CoordinatorForward(header(19, reply=None), "NO-KOORD", "NO-LEGEFORENINGEN"),
        MediationNote(header(20, reply=None), "NO-KOORD", note("Vi meiner spørsmålet er rimeleg.")),
        DisputeSettled(header(21, reply=None), "NO-KOORD", "REQUEST_JUSTIFIED", note()),
        DisputeEnded(header(22, reply=None), "NO-KOORD", "REQUEST_NOT_JUSTIFIED"),
        Envelope("NO", "PT", "ENV-1", T0, (Payload("M-1", request_bytes), Payload("M-2", b"<x/>"))),
        Receipt(
            "R-1",
            "PT",
            "NO",
            T0,
            (
                ReceiptItem.for_bytes("M-1", request_bytes, ReceiptStatus.ACCEPTED),
                ReceiptItem.for_bytes("M-2", b"<x/>", ReceiptStatus.DUPLICATE),
            ),
            "ENV-1",
        ),
        Receipt("R-2", "NO", NO, T0, (ReceiptItem.for_bytes("S-1", b"x", ReceiptStatus.ACCEPTED),)),
        ErrorDocument("SIGNATURE_INVALID", "the signature could not be verified", "M-1", T0),
        ErrorDocument("SCHEMA_INVALID", "line 3: bad"),
        Delivery(
            "D-1",
            "PT",
            PT,
            T0,
            "EX-1",
            "Request",
            request_bytes,
            (
                Rendering(
                    "pt",
                    RenderingStatus.PARTIAL,
                    "2026.1",
                    (QuestionText("PQD-DOCTOR-001", "O diploma é autêntico?"),),
                    (OptionText("PQD-DOCTOR-001", "YES", "Sim"),),
                    (
                        MachineTranslation(
                            "Question/PQD-DOCTOR-002", "eTranslation", "nn", "pt", "É autêntico?"
                        ),
                    ),
                ),
                Rendering("en", RenderingStatus.PENDING),
            ),
        ),
        a_directory(),
        a_directory(version=8, base_version=7, removed=("PT-OLD",)),
    ]


DOCS = every_document()


def _id(doc: Document) -> str:
    return type(doc).__name__


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_every_document_builds_a_schema_valid_unsigned_tree(doc: Document) -> None:
    root = to_xml(doc)
    assert etree.QName(root).namespace == DOC_NS
    assert validate(root) in DOCUMENT_TYPES
    assert root.find(f"{{{DS_NS}}}Signature") is None


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_every_document_round_trips_through_bytes_and_the_hardened_parser(doc: Document) -> None:
    data = to_bytes(doc)
    assert read_document(parse_xml(data)) == doc


def test_the_test_set_covers_every_document_type() -> None:
    built = {validate(to_xml(doc)) for doc in DOCS}
    assert built == DOCUMENT_TYPES


def test_a_document_with_a_signature_as_last_child_is_read_ignoring_it() -> None:
    root = to_xml(a_request())
    etree.SubElement(root, f"{{{DS_NS}}}Signature")
    assert read_document(root) == a_request()


def test_a_real_enveloped_signature_placed_by_signxml_validates() -> None:
    from signxml import SignatureMethod, XMLSigner  # type: ignore[attr-defined]
    from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm

    ca = pki.make_ca("NO", now=T0)
    issued = pki.issue_national_system(ca, NO, now=datetime.now(UTC))
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        to_xml(a_request()),
        key=issued.key,
        cert=[issued.certificate],
    )
    assert etree.QName(signed[-1]).text == f"{{{DS_NS}}}Signature"
    data = etree.tostring(signed)
    assert validate(parse_xml(data)) == "Request"
    assert issued.certificate.fingerprint(hashes.SHA256())  # the cert is real


def test_datetimes_are_written_in_utc_and_read_back_aware() -> None:
    oslo = timezone(timedelta(hours=1))
    doc = Closure(dataclasses.replace(header(1), created=datetime(2026, 3, 2, 10, 15, tzinfo=oslo)))
    root = to_xml(doc)
    assert root.findtext(f"{{{DOC_NS}}}Header/{{{DOC_NS}}}Created") == "2026-03-02T09:15:00Z"
    back = read_document(root)
    assert isinstance(back, Closure)
    assert back.header.created == T0 and back.header.created.tzinfo is UTC


def test_an_offset_timestamp_from_a_peer_is_read_as_utc() -> None:
    data = to_bytes(Closure(header(1))).replace(b"09:16:00Z", b"10:16:00+01:00")
    back = read_document(parse_xml(data))
    assert isinstance(back, Closure)
    assert back.header.created == T0 + timedelta(minutes=1)


def test_a_naive_datetime_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_xml(Closure(dataclasses.replace(header(1), created=datetime(2026, 3, 2, 9, 15))))


@pytest.mark.parametrize(
    "doc",
    [
        a_request(questions=()),
        a_request(questions=(Question("pqd-doctor-001"),)),
        a_request(questions=(Question("PQD-DOCTOR-001"), Question("PQD-DOCTOR-001"))),
        a_request(header=dataclasses.replace(header(0, reply=None), catalogue_version=None)),
        a_request(header=dataclasses.replace(header(0, reply=None, cat="2026.1"), sender="NO")),
        a_request(header=dataclasses.replace(header(0, cat="2026.1"), in_reply_to="DOC-X")),
        a_request(sender_language="no"),
        a_request(attachments=(Attachment("../etc/passwd", "application/pdf", PDF),)),
        a_request(attachments=(Attachment("a.pdf", "Application/PDF; x=y", PDF),)),
        Acceptance(header(1, reply=None), date(2026, 3, 20)),
        Answer(header(2), (Reply("PQD-DOCTOR-001", options=("YES",)),)),
        Answer(header(2, cat="2026.1"), (Reply("PQD-DOCTOR-001"),)),
        Rejection(header(3), "BECAUSE"),
        AdditionalInformation(header(4)),
        Forward(header(5), "US-FDA"),
    ],
    ids=lambda d: type(d).__name__,
)
def test_invalid_values_are_refused_when_building(doc: Document) -> None:
    with pytest.raises(SchemaInvalid):
        to_xml(doc)


def test_personal_data_stays_out_of_repr() -> None:
    text = repr(a_request())
    for secret in ("Maria", "Sousa", "1988", "Coimbra", "54321", "vitnemaal", "ekte"):
        assert secret not in text
    assert "PQD-DOCTOR-001" in text


# --- attachments -------------------------------------------------------------------


def test_attachment_size_and_digest_are_derived_from_the_content() -> None:
    root = to_xml(a_request())
    attachment = root.find(f"{{{DOC_NS}}}Attachment")
    assert attachment is not None
    assert attachment.findtext(f"{{{DOC_NS}}}Size") == str(len(PDF))
    assert len(attachment.findtext(f"{{{DOC_NS}}}Sha256") or "") == 64


@pytest.mark.parametrize(
    ("element", "value"),
    [("Size", "31"), ("Sha256", "0" * 64)],
)
def test_an_attachment_that_does_not_match_its_content_is_refused(element: str, value: str) -> None:
    root = to_xml(a_request())
    target = root.find(f"{{{DOC_NS}}}Attachment/{{{DOC_NS}}}{element}")
    assert target is not None
    target.text = value
    with pytest.raises(AttachmentMismatch) as caught:
        read_document(root)
    assert caught.value.code == "ATTACHMENT_MISMATCH"


# --- envelopes -----------------------------------------------------------------------


def test_an_envelope_carries_payload_bytes_exactly() -> None:
    odd = b"<?xml version='1.0'?>\n<Request  xmlns='urn:x' >\r\n\t\xc3\xa6 </Request >"
    root = build_envelope("NO", "PT", "ENV-1", T0, [Payload("M-1", odd), Payload("M-2", b"\x00")])
    envelope = read_envelope(parse_xml(etree.tostring(root)))
    assert [p.data for p in envelope.payloads] == [odd, b"\x00"]
    assert [p.message_id for p in envelope.payloads] == ["M-1", "M-2"]
    assert (envelope.sender_node, envelope.receiver_node, envelope.message_id) == (
        "NO",
        "PT",
        "ENV-1",
    )


def test_an_envelope_payload_whose_digest_does_not_match_is_refused() -> None:
    root = build_envelope("NO", "PT", "ENV-1", T0, [Payload("M-1", b"<a/>")])
    payload = root.find(f"{{{DOC_NS}}}Payload")
    assert payload is not None
    payload.set("sha256", "f" * 64)
    with pytest.raises(DigestMismatch) as caught:
        read_envelope(root)
    assert caught.value.code == "PAYLOAD_DIGEST_MISMATCH"
    assert isinstance(caught.value, InvalidInput)


def test_an_envelope_payload_with_other_bytes_than_its_digest_is_refused() -> None:
    root = build_envelope("NO", "PT", "ENV-1", T0, [Payload("M-1", b"<a/>")])
    payload = root.find(f"{{{DOC_NS}}}Payload")
    assert payload is not None
    payload.text = "PGIvPg=="  # <b/>
    with pytest.raises(DigestMismatch):
        read_document(root)


def test_the_largest_payload_still_parses_with_the_hardened_parser() -> None:
    largest = b"\xab" * MAX_PAYLOAD_BYTES
    root = build_envelope("NO", "PT", "ENV-1", T0, [Payload("M-1", largest)])
    envelope = read_envelope(parse_xml(etree.tostring(root)))
    assert envelope.payloads[0].data == largest
    with pytest.raises(SchemaInvalid):
        validate(
            build_envelope("NO", "PT", "ENV-1", T0, [Payload("M-1", largest + b"x")])
        )  # builders leave validation to tests


def test_the_size_caps_in_code_match_the_schemas() -> None:
    assert read_document(to_xml(a_request())) == a_request()
    big = Attachment("a.pdf", "application/pdf", b"\0" * MAX_ATTACHMENT_BYTES)
    to_xml(a_request(attachments=(big,)))
    too_big = dataclasses.replace(big, content=big.content + b"\0")
    with pytest.raises(SchemaInvalid):
        to_xml(a_request(attachments=(too_big,)))


def test_an_envelope_with_a_message_id_twice_is_refused() -> None:
    with pytest.raises(SchemaInvalid, match="unique"):
        validate(
            build_envelope("NO", "PT", "ENV-1", T0, [Payload("M-1", b"a"), Payload("M-1", b"b")])
        )  # builders leave validation to tests


def test_an_envelope_batches_at_most_100_payloads() -> None:
    build_envelope("NO", "PT", "E", T0, [Payload(f"M-{i}", b"a") for i in range(100)])
    with pytest.raises(SchemaInvalid):
        validate(
            build_envelope("NO", "PT", "E", T0, [Payload(f"M-{i}", b"a") for i in range(101)])
        )  # builders leave validation to tests


@pytest.mark.parametrize(
    ("sender", "receiver", "message_id", "payloads"),
    [
        ("XX", "PT", "E", [Payload("M", b"a")]),
        ("NO", "PT-OMD", "E", [Payload("M", b"a")]),
        ("NO", "PT", "E 1", [Payload("M", b"a")]),
        ("NO", "PT", "E", []),
        ("NO", "PT", "E", [Payload("M", b"")]),
        ("NO", "PT", "E", [Payload("M/1", b"a")]),
    ],
)
def test_an_envelope_with_bad_header_or_payloads_is_refused(
    sender: str, receiver: str, message_id: str, payloads: list[Payload]
) -> None:
    with pytest.raises(SchemaInvalid):
        validate(
            build_envelope(sender, receiver, message_id, T0, payloads)
        )  # builders leave validation to tests


def test_readers_refuse_a_document_of_another_type() -> None:
    receipt = build_receipt(
        "R", "PT", "NO", T0, [ReceiptItem.for_bytes("M", b"a", ReceiptStatus.ACCEPTED)]
    )
    with pytest.raises(UnexpectedDocumentType) as caught:
        read_envelope(receipt)
    assert caught.value.code == "DOCUMENT_TYPE_UNEXPECTED"
    for reader in (read_error, read_delivery, read_directory, read_exchange_document):
        with pytest.raises(UnexpectedDocumentType):
            reader(receipt)


# --- receipts and errors ---------------------------------------------------------------


def test_a_receipt_acknowledges_a_batch_item_by_item() -> None:
    items = [
        ReceiptItem.for_bytes("M-1", b"first", ReceiptStatus.ACCEPTED),
        ReceiptItem.for_bytes("M-2", b"second", ReceiptStatus.DUPLICATE),
    ]
    root = build_receipt("R-1", "PT", "NO", T0, items, envelope_id="ENV-1")
    receipt = read_receipt(parse_xml(etree.tostring(root)))
    assert receipt.items == tuple(items)
    assert receipt.items[1].status is ReceiptStatus.DUPLICATE
    assert receipt.envelope_id == "ENV-1"
    assert receipt.items[0].sha256 == Payload("M-1", b"first").sha256


def test_a_receipt_item_status_is_accepted_or_duplicate_only() -> None:
    root = build_receipt(
        "R", "PT", "NO", T0, [ReceiptItem.for_bytes("M", b"a", ReceiptStatus.ACCEPTED)]
    )
    item = root.find(f"{{{DOC_NS}}}Item")
    assert item is not None
    item.set("status", "rejected")
    with pytest.raises(SchemaInvalid):
        read_receipt(root)


def test_an_error_document_reports_a_gateway_error() -> None:
    root = error_for(DigestMismatch("the SHA-256 of payload M-1 does not match"), message_id="M-1")
    error = read_error(root)
    assert (error.code, error.message_id, error.created) == ("PAYLOAD_DIGEST_MISMATCH", "M-1", None)


def test_an_overlong_error_message_is_cut_to_fit_the_schema() -> None:
    error = read_error(build_error("SCHEMA_INVALID", "x" * 5000))
    assert len(error.message) == 1000 and error.message.endswith("…")


def test_an_error_code_must_be_a_stable_code() -> None:
    with pytest.raises(SchemaInvalid):
        validate(build_error("not a code", "message"))  # builders leave validation to tests


# --- deliveries -----------------------------------------------------------------------


def test_a_delivery_carries_the_original_bytes_and_renderings() -> None:
    original = to_bytes(a_request())
    rendering = Rendering(
        "pt", RenderingStatus.COMPLETE, "2026.1", (QuestionText("PQD-DOCTOR-001", "?"),)
    )
    root = build_delivery("D-1", "PT", PT, T0, "EX-1", "Request", original, [rendering])
    delivery = read_delivery(parse_xml(etree.tostring(root)))
    assert delivery.document == original
    assert delivery.renderings == (rendering,)
    assert read_document(parse_xml(delivery.document)) == a_request()


def test_a_delivery_whose_document_digest_does_not_match_is_refused() -> None:
    root = build_delivery("D-1", "PT", PT, T0, "EX-1", "Request", b"<a/>")
    document = root.find(f"{{{DOC_NS}}}Document")
    assert document is not None
    document.set("sha256", "0" * 64)
    with pytest.raises(DigestMismatch):
        read_delivery(root)


def test_a_delivery_has_one_rendering_per_language() -> None:
    rendering = Rendering("pt", RenderingStatus.PENDING)
    with pytest.raises(SchemaInvalid):
        validate(
            build_delivery("D-1", "PT", PT, T0, "EX-1", "Request", b"<a/>", [rendering, rendering])
        )  # builders leave validation to tests


def test_a_delivery_names_an_exchange_document_type() -> None:
    with pytest.raises(SchemaInvalid):
        validate(
            build_delivery("D-1", "PT", PT, T0, "EX-1", "Envelope", b"<a/>")
        )  # builders leave validation to tests


# --- the authority directory ------------------------------------------------------------


def test_a_directory_entry_carries_names_competences_and_the_certificate() -> None:
    directory = read_directory(parse_xml(to_bytes(a_directory())))
    entry = directory.authorities[0]
    assert entry.name_in("en") == "Portuguese Medical Association"
    assert entry.name_in("fi") == "Ordem dos Médicos"
    assert entry.certificates == a_directory().authorities[0].certificates
    assert not directory.incremental


@pytest.mark.parametrize(
    "changes",
    [
        {"removed": ("PT-OLD",)},
        {"base_version": 7},
        {"base_version": 9, "removed": ("PT-OLD",)},
        {"node_id": "NO"},
    ],
)
def test_an_inconsistent_directory_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(DirectoryInconsistent) as caught:
        to_xml(a_directory(**changes))
    assert caught.value.code == "DIRECTORY_INCONSISTENT"


def test_a_directory_with_a_certificate_that_is_not_der_is_refused_when_read() -> None:
    root = to_xml(a_directory())
    cert = root.find(f"{{{DOC_NS}}}Authority/{{{DOC_NS}}}Certificate")
    assert cert is not None
    cert.text = "AAAA"
    with pytest.raises(DirectoryInconsistent):
        read_document(root)


def test_a_full_directory_read_from_a_peer_may_not_remove() -> None:
    root = to_xml(a_directory(version=8, base_version=7, removed=("PT-OLD",)))
    header_el = root.find(f"{{{DOC_NS}}}Header")
    assert header_el is not None
    base = header_el.find(f"{{{DOC_NS}}}BaseVersion")
    assert base is not None
    header_el.remove(base)
    with pytest.raises(DirectoryInconsistent):
        read_document(root)
