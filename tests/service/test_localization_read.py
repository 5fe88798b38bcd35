"""Rendering a received document from what admission read (service/localization.py)."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred

from gateway.core.localize import parse_document
from gateway.service import localization
from gateway.service.localization import Localizer
from tests.service.test_localization import REGISTRY, answer_body, request_body


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the localizer parses itself."""
    seen: list[bytes] = []

    def counting(body: bytes):  # type: ignore[no-untyped-def]
        seen.append(body)
        return parse_document(body)

    monkeypatch.setattr(localization, "parse_document", counting)
    return seen


def test_a_received_document_is_rendered_without_parsing_its_bytes_again(parses) -> None:
    localizer = Localizer(REGISTRY, ("nn", "pt"))
    body = request_body()
    localizer.received(body, parse_document(body))
    kept = localizer.render(body)
    assert parses == []
    # The same renderings as from the bytes; the kept document is used once.
    assert localizer.render(body) == kept
    assert parses == [body]


def test_only_the_exact_bytes_admission_read_use_the_kept_document(parses) -> None:
    localizer = Localizer(REGISTRY, ("nn",))
    body = request_body()
    localizer.received(body, parse_document(body))
    other = answer_body()
    localizer.render(other)
    assert parses == [other]


def test_kept_documents_are_bounded_by_count_and_by_bytes(parses) -> None:
    bodies = [request_body(f"text {i}") for i in range(3)]
    by_count = Localizer(REGISTRY, ("nn",), max_read=2)
    for body in bodies:
        by_count.received(body, parse_document(body))
    for body in bodies:
        by_count.render(body)
    assert parses == [bodies[0]]  # the oldest was pushed out
    parses.clear()
    by_bytes = Localizer(REGISTRY, ("nn",), max_read_bytes=len(bodies[0]) + 10)
    for body in bodies[:2]:
        by_bytes.received(body, parse_document(body))
    for body in bodies[:2]:
        by_bytes.render(body)
    assert parses == [bodies[0]]


def test_forgetting_or_clearing_drops_the_kept_document(parses) -> None:
    localizer = Localizer(REGISTRY, ("nn",))
    body = request_body()
    localizer.received(body, parse_document(body))
    Deferred.fromCoroutine(localizer.forget(body))
    parses.clear()  # forget reads the bytes to find the free texts
    localizer.render(body)
    assert parses == [body]
    parses.clear()
    localizer.received(body, parse_document(body))
    localizer.clear()
    localizer.render(body)
    assert parses == [body]
