"""The translation service: never in the delivery's way, cached, timed out, quiet about text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from zope.interface import implementer

from gateway.adapters.translation import (
    CACHED,
    FAILED,
    NOT_NEEDED,
    TIMEOUT,
    TRANSLATED,
    UNAVAILABLE,
    FreeTextItem,
    ITranslator,
    MemoryTranslationCache,
    Translation,
    TranslationService,
    TranslationUnavailable,
    UnknownLanguage,
    build_translation_service,
    text_sha256,
)
from tests.waiting import until

from .fakes import (
    FakeETranslation,
    FakeLibreTranslate,
    Servers,
    digest_protected,
    fake_translation,
)

SECRET_TEXT = "Pasienten Kari Nordmann, fødd 01.02.1970, har diagnose X."


@implementer(ITranslator)
class ControlledTranslator:
    """An engine whose answers the test fires by hand."""

    engine = "controlled"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.waiting: list[Deferred[Translation | None]] = []
        self.cancelled = 0

    def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
        self.calls.append((text, source, target))

        def cancel(_: object) -> None:
            self.cancelled += 1

        d: Deferred[Translation | None] = Deferred(cancel)
        self.waiting.append(d)
        return d

    def answer(self, index: int = 0) -> None:
        text, source, target = self.calls[index]
        self.waiting[index].callback(
            Translation(source, target, self.engine, f"<{target}>", text_sha256(text))
        )

    def close(self) -> Deferred[None]:
        return succeed(None)


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def assert_text_not_logged(events: list[dict[str, Any]], text: str) -> None:
    for event in events:
        assert text not in (formatEvent(event) or "")
        assert all(text not in repr(value) for value in event.values())


def item(
    text: str = SECRET_TEXT, source: str = "nn", targets: tuple[str, ...] = ("de",)
) -> FreeTextItem:
    return FreeTextItem("free-text-1", text, source, targets)


def test_the_call_returns_at_once_while_the_engine_is_busy() -> None:
    engine = ControlledTranslator()
    service = TranslationService(engine, MemoryTranslationCache(), Clock(), timeout=30)

    job = service.translate([item(targets=("de", "en"))])

    assert job.pending == {("free-text-1", "de"), ("free-text-1", "en")}
    assert not job.is_done
    assert service.stats["in_flight"] == 2
    engine.answer(0)
    assert job.settled[("free-text-1", "de")].status == TRANSLATED
    assert job.pending == {("free-text-1", "en")}


def test_the_rendering_completes_when_translations_arrive_and_the_original_stays() -> None:
    engine = ControlledTranslator()
    service = TranslationService(engine, MemoryTranslationCache(), Clock(), timeout=30)
    seen: list[Any] = []
    original = item(targets=("de", "en"))

    job = service.translate([original], on_outcome=seen.append)
    done = job.when_done()
    one = job.when_settled("free-text-1", "en")
    engine.answer(1)
    engine.answer(0)

    outcomes = done.result
    assert [o.target_lang for o in outcomes] == ["de", "en"]  # request order
    assert one.result.status == TRANSLATED
    assert {o.target_lang for o in seen} == {"de", "en"}
    for outcome in outcomes:
        assert outcome.original_sha256 == text_sha256(SECRET_TEXT)
        assert outcome.translation is not None
        assert outcome.translation.text != SECRET_TEXT
        assert outcome.translation.engine == "controlled"
        assert outcome.translation.language_pair == f"nn-{outcome.target_lang}"
    assert original.text == SECRET_TEXT


def test_an_engine_that_never_answers_times_out_on_the_clock(
    log_events: list[dict[str, Any]],
) -> None:
    engine = ControlledTranslator()
    clock = Clock()
    service = TranslationService(engine, MemoryTranslationCache(), clock, timeout=30)

    job = service.translate([item()])
    clock.advance(29)
    assert not job.is_done
    clock.advance(1)

    [outcome] = job.when_done().result
    assert (outcome.status, outcome.error_code) == (TIMEOUT, "TRANSLATION_TIMEOUT")
    assert engine.cancelled == 1
    assert service.stats["timeouts"] == 1 and service.stats["in_flight"] == 0
    assert_text_not_logged(log_events, SECRET_TEXT)


def test_queued_requests_count_towards_the_timeout_and_concurrency_is_bounded() -> None:
    engine = ControlledTranslator()
    clock = Clock()
    service = TranslationService(
        engine, MemoryTranslationCache(), clock, timeout=10, max_concurrent=1
    )

    job = service.translate([item("a"), FreeTextItem("free-text-2", "b", "nn", ("de",))])
    assert len(engine.calls) == 1
    engine.answer(0)
    assert len(engine.calls) == 2  # the second starts when the first is done
    clock.advance(10)

    statuses = [o.status for o in job.when_done().result]
    assert statuses == [TRANSLATED, TIMEOUT]


def test_failures_are_counted_and_logged_without_the_text(log_events: list[dict[str, Any]]) -> None:
    @implementer(ITranslator)
    class Failing:
        engine = "failing"

        def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
            return fail(TranslationUnavailable("engine answered HTTP 500"))

        def close(self) -> Deferred[None]:
            return succeed(None)

    service = TranslationService(Failing(), MemoryTranslationCache(), Clock(), timeout=5)

    job = service.translate([item()])

    [outcome] = job.when_done().result
    assert (outcome.status, outcome.error_code) == (FAILED, "TRANSLATION_UNAVAILABLE")
    assert outcome.translation is None
    assert service.stats["failed"] == 1
    warnings = [formatEvent(e) for e in log_events if "failing" in (formatEvent(e) or "")]
    assert warnings and "TRANSLATION_UNAVAILABLE" in warnings[0]
    assert_text_not_logged(log_events, SECRET_TEXT)


def test_unexpected_exceptions_never_reach_the_caller(log_events: list[dict[str, Any]]) -> None:
    @implementer(ITranslator)
    class Broken:
        engine = "broken"

        def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
            raise RuntimeError(f"bug while handling {text}")

        def close(self) -> Deferred[None]:
            return succeed(None)

    seen: list[Any] = []

    def bad_callback(outcome: Any) -> None:
        seen.append(outcome)
        raise ValueError("the caller's own bug")

    service = TranslationService(Broken(), MemoryTranslationCache(), Clock(), timeout=5)
    job = service.translate([item()], on_outcome=bad_callback)

    [outcome] = job.when_done().result
    assert (outcome.status, outcome.error_code) == (FAILED, "INTERNAL_ERROR")
    assert len(seen) == 1
    assert_text_not_logged(log_events, SECRET_TEXT)


def test_identical_requests_in_flight_share_one_engine_call() -> None:
    engine = ControlledTranslator()
    service = TranslationService(engine, MemoryTranslationCache(), Clock(), timeout=30)

    first = service.translate([item()])
    second = service.translate([FreeTextItem("other-document-text", SECRET_TEXT, "nn", ("de",))])
    assert len(engine.calls) == 1
    engine.answer(0)

    assert first.when_done().result[0].status == TRANSLATED
    assert second.when_done().result[0].status == TRANSLATED


def test_blank_texts_and_same_language_need_no_engine() -> None:
    engine = ControlledTranslator()
    service = TranslationService(engine, MemoryTranslationCache(), Clock(), timeout=30)

    job = service.translate([item(targets=("nn",)), FreeTextItem("blank", "  \n", "nn", ("de",))])

    assert job.is_done
    assert [o.status for o in job.when_done().result] == [NOT_NEEDED, NOT_NEEDED]
    assert engine.calls == []


def test_items_refuse_unknown_language_codes() -> None:
    with pytest.raises(UnknownLanguage):
        FreeTextItem("x", "text", "nn", ("xx",))


def test_the_default_none_engine_settles_everything_at_once() -> None:
    service = build_translation_service("none", {}, reactor=reactor, clock=Clock())

    job = service.translate([item(targets=("de", "en"))])

    assert service.engine == "none"
    assert job.is_done
    assert [o.status for o in job.settled.values()] == [UNAVAILABLE, UNAVAILABLE]
    assert all(o.translation is None for o in job.settled.values())


@pytest_twisted.ensureDeferred
async def test_a_cache_hit_avoids_a_second_http_call(servers: Servers) -> None:
    fake = FakeLibreTranslate()
    service = build_translation_service(
        "libretranslate",
        {"url": servers.listen(fake)},
        reactor=reactor,
        clock=Clock(),
    )
    servers.on_close(service.close)

    first = await service.translate([item(source="de", targets=("nb",))]).when_done()
    second_job = service.translate([FreeTextItem("again", SECRET_TEXT, "de", ("nb",))])

    assert first[0].status == TRANSLATED
    assert second_job.is_done  # settled from the cache before translate() returned
    [second] = second_job.when_done().result
    assert second.status == CACHED
    assert second.translation == first[0].translation
    assert second.translation is not None
    assert second.translation.text == fake_translation(SECRET_TEXT, "nb")
    assert len(fake.translate_calls) == 1
    assert service.stats["cache_hits"] == 1


@pytest_twisted.ensureDeferred
async def test_a_server_error_settles_as_failed_without_blocking(
    servers: Servers, log_events: list[dict[str, Any]]
) -> None:
    fake = FakeLibreTranslate()
    fake.mode = "error500"
    service = build_translation_service(
        "libretranslate",
        {"url": servers.listen(fake)},
        reactor=reactor,
        clock=Clock(),
    )
    servers.on_close(service.close)

    job = service.translate([item(source="de", targets=("nb",))])
    assert not job.is_done  # the delivery goes on; the engine answers later
    [outcome] = await job.when_done()

    assert (outcome.status, outcome.error_code) == (FAILED, "TRANSLATION_UNAVAILABLE")
    assert len(fake.translate_calls) == 1
    assert_text_not_logged(log_events, SECRET_TEXT)


@pytest_twisted.ensureDeferred
async def test_a_hanging_server_times_out_through_the_service(servers: Servers) -> None:
    fake = FakeLibreTranslate()
    fake.mode = "hang"
    clock = Clock()
    service = build_translation_service(
        "libretranslate",
        {"url": servers.listen(fake), "timeout_seconds": 20},
        reactor=reactor,
        clock=clock,
    )
    servers.on_close(service.close)

    job = service.translate([item(source="de", targets=("nb",))])
    await until(lambda: fake.hung)
    clock.advance(20)

    [outcome] = await job.when_done()
    assert (outcome.status, outcome.error_code) == (TIMEOUT, "TRANSLATION_TIMEOUT")


@pytest_twisted.ensureDeferred
async def test_etranslation_through_the_service_completes_on_callback(servers: Servers) -> None:
    fake = FakeETranslation(servers.client)
    protected, _ = digest_protected(fake, {b"IMI-GW-NO": b"pw"})
    service_url = servers.listen(protected) + "/translate"
    node_root = Resource()  # the node's API root, where the callback resource is mounted
    callback_base = servers.listen(node_root) + "/cb"
    service = build_translation_service(
        "etranslation",
        {
            "url": service_url,
            "application": "IMI-GW-NO",
            "username": "gw",
            "password": "pw",
            "callback_base_url": callback_base,
        },
        reactor=reactor,
        clock=Clock(),
    )
    node_root.putChild(b"cb", service.translator.callback_resource)  # type: ignore[attr-defined]
    servers.on_close(service.close)

    job = service.translate([item(targets=("de", "nn"))])
    assert job.settled[("free-text-1", "nn")].status == NOT_NEEDED
    assert job.pending == {("free-text-1", "de")}
    [translated, _] = await job.when_done()

    assert translated.status == TRANSLATED
    assert translated.translation is not None
    assert translated.translation.engine == "etranslation"
    assert translated.translation.text == fake_translation(SECRET_TEXT, "de")
