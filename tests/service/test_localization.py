"""The Localizer: renderings with machine translations that arrive later, never
waiting for an engine, safe on worker threads, erasable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gateway.adapters.translation import (
    ITranslator,
    MemoryTranslationCache,
    Translation,
    TranslationService,
    TranslationUnavailable,
    build_translation_service,
    text_sha256,
)
from gateway.core.catalogue import CatalogueLanguageUnknown, load_catalogues
from gateway.core.documents import (
    Answer,
    Closure,
    Header,
    LocalizedText,
    Question,
    Reply,
    Request,
    to_bytes,
)
from gateway.core.envelopes import (
    MachineTranslation,
    Rendering,
    RenderingStatus,
    build_delivery,
    read_delivery,
)
from gateway.core.localize import parse_document
from gateway.service.localization import Localizer
from tests.waiting import until

T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
NO, PT = "NO-HELSEDIR", "PT-OMD"
COMPLETE, PARTIAL, PENDING = (
    RenderingStatus.COMPLETE,
    RenderingStatus.PARTIAL,
    RenderingStatus.PENDING,
)
REGISTRY = load_catalogues()
ORIGINAL = "O diploma foi emitido em 2010 pela Universidade de Coimbra."
NOTE = "Obrigado."


def request_body(free_text: str = ORIGINAL, lang: str = "pt") -> bytes:
    return to_bytes(
        Request(
            header=Header("EX-1", "DOC-0", PT, NO, T0, "2026.1"),
            legislation_area="PQD",
            question_set="PQD-GENERAL",
            sender_language="pt",
            requested_reply_date=date(2026, 3, 16),
            questions=(
                Question("PQD-GENERAL-001", LocalizedText(free_text, lang)),
                Question("PQD-GENERAL-007"),
            ),
        )
    )


def answer_body() -> bytes:
    return to_bytes(
        Answer(
            header=Header("EX-2", "DOC-1", PT, NO, T0, "2026.1", "DOC-0"),
            replies=(Reply("PQD-GENERAL-001", options=("YES",)),),
        )
    )


def closure_body(note: str = NOTE) -> bytes:
    return to_bytes(
        Closure(
            header=Header("EX-3", "DOC-2", PT, NO, T0, None, "DOC-1"),
            note=LocalizedText(note, "pt"),
        )
    )


@implementer(ITranslator)
class ManualTranslator:
    """An engine whose answers the test gives by hand."""

    engine = "fake-mt"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Deferred[Translation | None]]] = []

    def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
        d: Deferred[Translation | None] = Deferred()
        self.calls.append((text, source, target, d))
        return d

    def close(self) -> Deferred[None]:
        return succeed(None)

    def answer(self, index: int, translated: str) -> None:
        text, source, target, d = self.calls[index]
        d.callback(Translation(source, target, self.engine, translated, text_sha256(text)))

    def targets(self) -> list[str]:
        return [target for _, _, target, _ in self.calls]


@implementer(ITranslator)
class FailingTranslator:
    engine = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
        self.calls += 1
        return fail(TranslationUnavailable("engine down"))

    def close(self) -> Deferred[None]:
        return succeed(None)


class QueuedReactor:
    """Records callFromThread calls (from any thread); the test runs them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queued: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.queued.append((f, args))

    def run_queued(self) -> int:
        with self._lock:
            queued, self.queued = self.queued, []
        for f, args in queued:
            f(*args)
        return len(queued)


def service(translator: Any, clock: Clock, *, timeout: float = 30) -> TranslationService:
    return TranslationService(translator, MemoryTranslationCache(100), clock, timeout)


def by_lang(renderings: tuple[Rendering, ...]) -> dict[str, Rendering]:
    return {r.lang: r for r in renderings}


def test_fakes_implement_the_translator_interface() -> None:
    assert verifyObject(ITranslator, ManualTranslator())
    assert verifyObject(ITranslator, FailingTranslator())


# --- translations arriving later --------------------------------------------------------


def test_free_text_is_pending_until_the_translation_arrives_then_labelled() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn", "nb"), service(engine, clock))
    body = request_body()
    localizer.start_translations(body)
    assert sorted(engine.targets()) == ["nb", "nn"]

    nn, nb = localizer.render(body)
    assert nn.status is PENDING and nb.status is PENDING
    assert nn.question_texts[0].text == "Er det vedlagde vitnemålet ekte?"
    assert nn.translations == ()

    engine.answer(engine.targets().index("nn"), "Vitnemålet vart utferda i 2010.")
    renderings = by_lang(localizer.render(body))
    assert renderings["nn"].status is COMPLETE
    assert renderings["nn"].translations == (
        MachineTranslation(
            "Question/PQD-GENERAL-001", "fake-mt", "pt", "nn", "Vitnemålet vart utferda i 2010."
        ),
    )
    assert renderings["nb"].status is PENDING

    # The delivery carries the original bytes untouched, the translation beside them.
    delivery = read_delivery(
        build_delivery("dlv-1", "NO", NO, T0, "EX-1", "Request", body, tuple(renderings.values()))
    )
    assert delivery.document == body
    assert ORIGINAL.encode() in delivery.document
    assert delivery.renderings[0].translations[0].text == "Vitnemålet vart utferda i 2010."


def test_texts_in_a_node_language_are_not_sent_for_translation_into_it() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn", "nb"), service(engine, clock))
    body = request_body("Vitnemålet er ekte.", "nn")
    localizer.start_translations(body)
    assert engine.targets() == ["nb"]
    nn, nb = localizer.render(body)
    assert nn.status is COMPLETE and nb.status is PENDING


def test_documents_without_free_text_render_complete_without_asking_the_engine() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("pt",), service(engine, clock))
    localizer.start_translations(answer_body())
    (pt,) = localizer.render(answer_body())
    assert engine.calls == []
    assert pt.status is COMPLETE
    assert pt.option_texts[0].text == "Sim"


def test_receiving_the_same_text_again_does_not_ask_the_engine_again() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock))
    localizer.start_translations(request_body())
    localizer.start_translations(request_body())
    assert len(engine.calls) == 1
    engine.answer(0, "Omsett.")
    localizer.start_translations(request_body())
    assert len(engine.calls) == 1
    assert localizer.stats == {"held": 1, "awaited": 0, "given_up": 0}


# --- engines that fail, hang or do nothing ------------------------------------------------


def test_none_engine_never_blocks_and_leaves_the_free_text_untranslated() -> None:
    clock = Clock()
    none = build_translation_service("none", {}, reactor=clock)
    localizer = Localizer(REGISTRY, ("nn", "pt"), none, reactor=QueuedReactor())
    body = request_body()
    localizer.start_translations(body)
    renderings = by_lang(localizer.render(body))
    assert renderings["nn"].status is PARTIAL  # no translation will come
    assert renderings["nn"].translations == ()
    assert renderings["pt"].status is COMPLETE
    assert localizer.stats["given_up"] == 1


def test_failing_translator_never_blocks_render() -> None:
    clock, engine = Clock(), FailingTranslator()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock))
    body = request_body()
    localizer.start_translations(body)
    (nn,) = localizer.render(body)
    assert engine.calls == 1
    assert nn.status is PARTIAL
    assert len(nn.question_texts) == 2


def test_hanging_translator_leaves_render_pending_until_the_timeout_settles_it() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock, timeout=20))
    body = request_body()
    localizer.start_translations(body)
    (nn,) = localizer.render(body)  # returns at once; the engine never answers
    assert nn.status is PENDING
    clock.advance(20)
    (nn,) = localizer.render(body)
    assert nn.status is PARTIAL
    assert localizer.stats == {"held": 0, "awaited": 0, "given_up": 1}


def test_without_a_translation_service_free_text_is_partial() -> None:
    localizer = Localizer(REGISTRY, ("nn", "pt"))
    localizer.start_translations(request_body())
    renderings = by_lang(localizer.render(request_body()))
    assert renderings["nn"].status is PARTIAL
    assert renderings["pt"].status is COMPLETE


def test_unreadable_bytes_give_no_renderings_and_no_exception() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock))
    for junk in (b"", b"<not-xml", b'<?xml version="1.0"?><Foo xmlns="urn:x"/>'):
        localizer.start_translations(junk)
        assert localizer.render(junk) == ()
        assert Deferred.fromCoroutine(localizer.forget(junk)).result is None  # type: ignore[attr-defined]
    assert engine.calls == []


# --- worker threads ----------------------------------------------------------------------


def test_render_on_worker_threads_starts_a_missing_translation_once_via_the_reactor() -> None:
    clock, engine, reactor = Clock(), ManualTranslator(), QueuedReactor()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock), reactor=reactor)
    body = request_body()  # never announced with start_translations (e.g. after a restart)
    results: list[tuple[Rendering, ...]] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(localizer.render(body))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r[0].status for r in results] == [PENDING] * 8
    assert engine.calls == []  # nothing Twisted ran on the worker threads
    assert reactor.run_queued() == 1  # one hand-over, whichever thread came first
    assert engine.targets() == ["nn"]
    engine.answer(0, "Vitnemålet vart utferda i 2010.")

    done: list[tuple[Rendering, ...]] = []
    thread = threading.Thread(target=lambda: done.append(localizer.render(body)))
    thread.start()
    thread.join()
    assert done[0][0].status is COMPLETE
    assert reactor.queued == []


@pytest_twisted.inlineCallbacks
def test_render_from_a_real_reactor_thread_pool() -> Any:
    engine = ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, Clock()), reactor=global_reactor)
    body = request_body()
    (first,) = yield deferToThread(localizer.render, body)
    assert first.status is PENDING
    # The hand-over reaches the reactor: wait for it.
    yield Deferred.fromCoroutine(until(lambda: engine.calls))
    assert engine.targets() == ["nn"]
    engine.answer(0, "Vitnemålet vart utferda i 2010.")
    (second,) = yield deferToThread(localizer.render, body)
    assert second.status is COMPLETE
    assert second.translations[0].engine == "fake-mt"


# --- memory bounds and erasure -------------------------------------------------------------


def test_translations_kept_in_memory_are_bounded_and_refetched_from_the_cache() -> None:
    clock, engine, reactor = Clock(), ManualTranslator(), QueuedReactor()
    translations = service(engine, clock)
    localizer = Localizer(REGISTRY, ("nn",), translations, reactor=reactor, max_entries=2)
    bodies = [closure_body(f"Nota {n}.") for n in range(3)]
    for n, body in enumerate(bodies):
        localizer.start_translations(body)
        engine.answer(n, f"Merknad {n}.")
    assert localizer.stats["held"] == 2
    (oldest,) = localizer.render(bodies[0])  # evicted from memory: asked again
    assert oldest.status is PENDING
    reactor.run_queued()
    assert len(engine.calls) == 3  # answered from the service's cache, not the engine
    (oldest,) = localizer.render(bodies[0])
    assert oldest.status is COMPLETE
    assert oldest.translations[0].text == "Merknad 0."


def test_forget_erases_translations_from_memory_and_the_service_cache() -> None:
    clock, engine = Clock(), ManualTranslator()
    translations = service(engine, clock)
    localizer = Localizer(REGISTRY, ("nn",), translations)
    body = closure_body()
    localizer.start_translations(body)
    engine.answer(0, "Takk.")
    assert len(translations.cache) == 1
    done: list[object] = []
    Deferred.fromCoroutine(localizer.forget(body)).addCallback(done.append)
    assert done == [None]
    assert len(translations.cache) == 0
    (nn,) = localizer.render(body)
    assert nn.translations == ()
    assert localizer.stats == {"held": 0, "awaited": 0, "given_up": 0}


def test_translation_arriving_after_erasure_is_dropped() -> None:
    clock, engine = Clock(), ManualTranslator()
    translations = service(engine, clock)
    localizer = Localizer(REGISTRY, ("nn",), translations)
    body = closure_body()
    localizer.start_translations(body)
    Deferred.fromCoroutine(localizer.forget(body))
    engine.answer(0, "Takk.")  # late: the exchange was erased meanwhile
    assert localizer.stats == {"held": 0, "awaited": 0, "given_up": 0}
    assert len(translations.cache) == 0
    (nn,) = localizer.render(body)
    assert nn.translations == () and nn.status is PARTIAL


def test_forget_reports_a_failing_cache() -> None:
    clock, engine = Clock(), ManualTranslator()
    translations = service(engine, clock)

    class BrokenCache(MemoryTranslationCache):
        def forget(self, original_sha256: str) -> Deferred[int]:
            return fail(OSError("disk gone"))

    translations.cache = BrokenCache(10)
    localizer = Localizer(REGISTRY, ("nn",), translations)
    errors: list[Any] = []
    Deferred.fromCoroutine(localizer.forget(closure_body())).addErrback(errors.append)
    assert len(errors) == 1 and errors[0].check(OSError)


def test_localizer_refuses_unknown_languages() -> None:
    with pytest.raises(CatalogueLanguageUnknown):
        Localizer(REGISTRY, ("nn", "no"))


def test_start_translations_takes_the_document_admission_already_read() -> None:
    clock, engine = Clock(), ManualTranslator()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock))
    body = request_body()
    localizer.start_translations(parse_document(body))
    engine.answer(0, "Omsett.")
    (nn,) = localizer.render(body)
    assert nn.status is COMPLETE
    Deferred.fromCoroutine(localizer.forget(parse_document(body)))
    assert localizer.stats["held"] == 0


def test_forget_before_the_reactor_runs_a_hand_over_cancels_it() -> None:
    clock, engine, reactor = Clock(), ManualTranslator(), QueuedReactor()
    localizer = Localizer(REGISTRY, ("nn",), service(engine, clock), reactor=reactor)
    body = closure_body()
    (nn,) = localizer.render(body)
    assert nn.status is PENDING
    Deferred.fromCoroutine(localizer.forget(body))
    reactor.run_queued()
    assert engine.calls == []
