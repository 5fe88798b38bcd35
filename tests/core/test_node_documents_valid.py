"""The node's own documents are schema-valid for every value the node gives their builders.

``gateway.core.envelopes`` builds Envelope, Receipt, Error and Delivery trees
without validating them on every call (the node's hot path); these tests
validate them instead, at the edges of what the node passes: the most items,
the largest payload, every error code, every catalogue text and machine
translation in every language.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from gateway.commands.errors import all_error_classes
from gateway.core.documents import ExchangeDocument, LocalizedText, Question, Reply
from gateway.core.envelopes import (
    MAX_ENVELOPE_PAYLOADS,
    MAX_ERROR_MESSAGE,
    MAX_PAYLOAD_BYTES,
    Payload,
    ReceiptItem,
    ReceiptStatus,
    build_delivery,
    build_envelope,
    build_error,
    build_receipt,
    error_for,
)
from gateway.core.errors import SchemaInvalid
from gateway.core.localize import free_texts, renderings_for
from gateway.core.ns import LANGUAGES
from gateway.core.schemas import DocumentType, validate
from tests.core.test_localize import CATALOGUE, MT, REGISTRY, answer, request

T0 = datetime(2026, 3, 2, 9, 15, 0, 123456, tzinfo=UTC)
SHA = "ab" * 32


def ids(n: int) -> list[str]:
    return [f"NO-HELSEDIR:{uuid.uuid4()}" for _ in range(n)]


@pytest.mark.parametrize("count", [1, MAX_ENVELOPE_PAYLOADS])
def test_receipts_of_one_to_the_most_items_are_valid(count: int) -> None:
    statuses = (ReceiptStatus.ACCEPTED, ReceiptStatus.DUPLICATE)
    items = [ReceiptItem(m, SHA, statuses[i % 2]) for i, m in enumerate(ids(count))]
    for envelope_id in (None, f"env-{uuid.uuid4()}"):
        root = build_receipt(f"rcpt-{uuid.uuid4()}", "PT", "NO", T0, items, envelope_id)
        assert validate(root) == DocumentType.RECEIPT


def test_envelopes_up_to_the_caps_are_valid_and_beyond_them_are_refused_by_the_builder() -> None:
    largest = Payload(ids(1)[0], b"\xab" * MAX_PAYLOAD_BYTES)
    assert validate(build_envelope("NO", "PT", "env-1", T0, [largest])) == DocumentType.ENVELOPE
    many = [Payload(m, b"<a/>") for m in ids(MAX_ENVELOPE_PAYLOADS)]
    assert validate(build_envelope("NO", "PT", "env-2", T0, many)) == DocumentType.ENVELOPE
    with pytest.raises(SchemaInvalid):
        build_envelope("NO", "PT", "env-3", T0, [*many, Payload("NO-HELSEDIR:x", b"a")])
    with pytest.raises(SchemaInvalid):
        build_envelope("NO", "PT", "env-4", T0, [Payload("NO-HELSEDIR:y", largest.data + b"x")])
    with pytest.raises(SchemaInvalid):
        build_envelope("NO", "PT", "env-5", T0, [])


@pytest.mark.parametrize("error", all_error_classes(), ids=lambda cls: cls.code)
def test_an_error_document_for_every_error_code_is_valid(error: type) -> None:
    root = build_error(error.code, "x" * (MAX_ERROR_MESSAGE + 50), message_id=ids(1)[0], created=T0)
    assert validate(root) == DocumentType.ERROR
    assert validate(build_error(error.code, "")) == DocumentType.ERROR


def test_error_for_an_error_instance_is_valid() -> None:
    assert validate(error_for(SchemaInvalid("line 3: bad"))) == DocumentType.ERROR


def _documents() -> list[ExchangeDocument]:
    codes: list[str] = []
    for qset in sorted(CATALOGUE.question_sets):
        codes.extend(CATALOGUE.question_set(qset).question_codes)
    note = LocalizedText("Bitte prüfen Sie die Unterlagen", "de")
    return [
        request(*(Question(code, free_text=note) for code in dict.fromkeys(codes))),
        answer(
            Reply("PQD-GENERAL-001", options=("YES",)),
            Reply("PQD-GENERAL-010", options=("FINE",)),
            note=note,
        ),
    ]


@pytest.mark.parametrize("document", _documents(), ids=["Request", "Answer"])
def test_deliveries_with_renderings_in_every_language_are_valid(
    document: ExchangeDocument,
) -> None:
    languages = sorted(LANGUAGES)
    translations = {
        (free.sha256, lang): MT(free.lang or "en", lang, f"translated {free.field} ({lang})")
        for free in free_texts(document)
        for lang in languages
    }
    renderings = renderings_for(REGISTRY, document, languages, translations)
    root = build_delivery(
        f"dlv-{uuid.uuid4()}",
        "PT",
        "PT-OMD",
        T0,
        document.header.exchange_id,
        document.document_type,
        b"<signed/>" * 100,
        renderings,
    )
    assert validate(root) == DocumentType.DELIVERY
    bare = build_delivery("dlv-1", "PT", "PT-OMD", T0, "NO-HELSEDIR:EX-1", "Answer", b"<a/>")
    assert validate(bare) == DocumentType.DELIVERY
