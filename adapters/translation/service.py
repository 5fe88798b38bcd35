"""The translation service the node calls while it renders a delivery.

``TranslationService.translate(items)`` returns a :class:`TranslationJob` at
once: it never blocks, never waits for an engine and never raises into the
caller. Outcomes that are known immediately (cache hits, texts already in the
target language, the ``none`` engine) are settled before ``translate``
returns; the others settle when the engine answers, fails or times out. The
node delivers the original right away and completes the rendering from
``job.when_settled(...)`` / ``job.when_done()`` (or an ``on_outcome`` callback).

Every engine call is bounded by ``timeout`` seconds on the injected clock and
by ``max_concurrent`` calls at once; identical requests in flight (same text
digest and language pair) share one engine call; successful translations go
into the cache. Failures are counted (:attr:`TranslationService.stats`) and
logged with the engine, language pair and error code only: free text is
personal data and is never logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import (
    Deferred,
    DeferredSemaphore,
    TimeoutError,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.core.errors import GatewayError

from .base import ITranslator, Translation, TranslationTimeout, check_language, text_sha256
from .cache import ITranslationCache

log = Logger(namespace="gateway.adapters.translation.service")

#: Outcome statuses.
TRANSLATED = "translated"  # the engine translated the text just now
CACHED = "cached"  # a cached translation was used
NOT_NEEDED = "not_needed"  # the text is already in the target language, or blank
UNAVAILABLE = "unavailable"  # the engine has no translation (None), e.g. the "none" engine
FAILED = "failed"  # the engine failed (error_code says how)
TIMEOUT = "timeout"  # the engine did not answer within the timeout

_STAT_NAMES = (
    "requested",
    "not_needed",
    "cache_hits",
    "translated",
    "unavailable",
    "failed",
    "timeouts",
    "cache_errors",
)


@dataclass(frozen=True)
class FreeTextItem:
    """One free text of a document and the languages it should be rendered in.

    ``item_id`` is the caller's name for the text (unique within one call),
    e.g. the position of the free-text element in the document.
    """

    item_id: str
    text: str = field(repr=False)
    source_lang: str
    target_langs: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_langs", tuple(self.target_langs))
        check_language(self.source_lang)
        for target in self.target_langs:
            check_language(target)


@dataclass(frozen=True)
class TranslationOutcome:
    """What became of one (item, target language): a translation or the reason there is none.

    The original text is never replaced: a rendering shows it always, and
    ``translation`` (labelled with engine and language pair) next to it.
    """

    item_id: str
    source_lang: str
    target_lang: str
    original_sha256: str
    status: str
    translation: Translation | None = None
    #: The stable error code when ``status`` is FAILED or TIMEOUT.
    error_code: str | None = None


JobKey = tuple[str, str]


class TranslationJob:
    """The outcomes of one ``translate`` call, settling as engines answer."""

    def __init__(self) -> None:
        self._order: list[JobKey] = []
        self._settled: dict[JobKey, TranslationOutcome] = {}
        self._waiters: dict[JobKey, list[Deferred[TranslationOutcome]]] = {}
        self._done_waiters: list[Deferred[list[TranslationOutcome]]] = []
        self._sealed = False
        self._on_outcome: Callable[[TranslationOutcome], object] | None = None

    @property
    def keys(self) -> Sequence[JobKey]:
        """Every (item_id, target_lang) of the job, in request order."""
        return tuple(self._order)

    @property
    def settled(self) -> dict[JobKey, TranslationOutcome]:
        """The outcomes known so far."""
        return dict(self._settled)

    @property
    def pending(self) -> frozenset[JobKey]:
        """The (item_id, target_lang) still waiting for an engine."""
        return frozenset(k for k in self._order if k not in self._settled)

    @property
    def is_done(self) -> bool:
        return self._sealed and len(self._settled) == len(self._order)

    def when_settled(self, item_id: str, target_lang: str) -> Deferred[TranslationOutcome]:
        """Fires with the outcome of (item_id, target_lang); never fails."""
        key = (item_id, target_lang)
        if key in self._settled:
            return succeed(self._settled[key])
        if key not in self._waiters:
            raise KeyError(f"no such item and target language in this job: {key!r}")
        d: Deferred[TranslationOutcome] = Deferred()
        self._waiters[key].append(d)
        return d

    def when_done(self) -> Deferred[list[TranslationOutcome]]:
        """Fires with every outcome (request order) once all are settled; never fails."""
        if self.is_done:
            return succeed([self._settled[k] for k in self._order])
        d: Deferred[list[TranslationOutcome]] = Deferred()
        self._done_waiters.append(d)
        return d

    # --- used by the service -----------------------------------------------------

    def _expect(self, key: JobKey) -> bool:
        if key in self._waiters or key in self._settled:
            return False
        self._order.append(key)
        self._waiters[key] = []
        return True

    def _settle(self, outcome: TranslationOutcome) -> None:
        key = (outcome.item_id, outcome.target_lang)
        if key in self._settled:
            return
        self._settled[key] = outcome
        waiters = self._waiters.pop(key, [])
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome)
            except Exception as exc:
                log.error(
                    "The translation outcome callback raised {error_type}",
                    error_type=type(exc).__name__,
                )
        for waiter in waiters:
            waiter.callback(outcome)
        self._check_done()

    def _seal(self) -> None:
        self._sealed = True
        self._check_done()

    def _check_done(self) -> None:
        if not self.is_done:
            return
        waiters, self._done_waiters = self._done_waiters, []
        outcomes = [self._settled[k] for k in self._order]
        for waiter in waiters:
            waiter.callback(list(outcomes))


@dataclass
class _Shared:
    """One engine call that several requests wait for."""

    observers: list[Deferred[tuple[str, Translation | None, str | None]]] = field(
        default_factory=list
    )

    def observe(self) -> Deferred[tuple[str, Translation | None, str | None]]:
        d: Deferred[tuple[str, Translation | None, str | None]] = Deferred()
        self.observers.append(d)
        return d


def _timed_out(result: object, timeout: float) -> object:
    """After our timeout cancelled an engine call, any failure means "timed out"
    (cancelled HTTP requests fail with various network errors)."""
    if isinstance(result, Failure):
        return Failure(TimeoutError(f"no answer within {timeout:g} s"))
    return result


class TranslationService:
    """Machine translation of free text for renderings, never in the delivery's way."""

    def __init__(
        self,
        translator: ITranslator,
        cache: ITranslationCache,
        clock: IReactorTime,
        timeout: float,
        *,
        max_concurrent: int = 4,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.translator = translator
        self.cache = cache
        self._clock = clock
        self._timeout = timeout
        self._semaphore = DeferredSemaphore(max_concurrent)
        self._in_flight: dict[tuple[str, str, str], _Shared] = {}
        self._stats = dict.fromkeys(_STAT_NAMES, 0)

    @property
    def engine(self) -> str:
        return str(self.translator.engine)

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start (requested, cache_hits, translated, failed, timeouts, ...)
        and the gauge ``in_flight`` (engine calls not yet answered)."""
        return {**self._stats, "in_flight": len(self._in_flight)}

    def translate(
        self,
        items: Iterable[FreeTextItem],
        *,
        on_outcome: Callable[[TranslationOutcome], object] | None = None,
    ) -> TranslationJob:
        """Start translating ``items`` into their target languages; return at once.

        ``on_outcome`` (optional) is called once per outcome as it settles;
        for outcomes known at once (cache hits, blank texts, the ``none``
        engine) that happens before ``translate`` returns. Its exceptions are
        logged and swallowed.
        """
        job = TranslationJob()
        job._on_outcome = on_outcome
        try:
            for item in items:
                digest = text_sha256(item.text)
                for target in item.target_langs:
                    if not job._expect((item.item_id, target)):
                        continue
                    self._stats["requested"] += 1
                    self._start(job, item, digest, target)
        except Exception as exc:  # a bug: keep it out of the delivery path
            log.error(
                "Starting machine translation raised {error_type}",
                error_type=type(exc).__name__,
            )
            for item_id, target in job.pending:
                job._settle(
                    TranslationOutcome(item_id, "", target, "", FAILED, error_code="INTERNAL_ERROR")
                )
        job._seal()
        return job

    def close(self) -> Deferred[None]:
        """Release the engine's connections (pending requests fail and settle)."""
        d: Deferred[None] = maybeDeferred(self.translator.close)
        return d

    # --- internals -------------------------------------------------------------------

    def _start(self, job: TranslationJob, item: FreeTextItem, digest: str, target: str) -> None:
        def outcome(
            status: str, translation: Translation | None = None, error_code: str | None = None
        ) -> TranslationOutcome:
            return TranslationOutcome(
                item.item_id, item.source_lang, target, digest, status, translation, error_code
            )

        if target == item.source_lang or not item.text.strip():
            self._stats["not_needed"] += 1
            job._settle(outcome(NOT_NEEDED))
            return

        def cache_failed(failure: Failure) -> None:
            self._stats["cache_errors"] += 1
            log.warn(
                "Translation cache lookup failed ({error_type})",
                error_type=type(failure.value).__name__,
            )
            return None

        def looked_up(
            cached: Translation | None,
        ) -> tuple[str, Translation | None, str | None] | Deferred[Any]:
            if cached is not None:
                self._stats["cache_hits"] += 1
                return (CACHED, cached, None)
            return self._engine(item.text, digest, item.source_lang, target)

        def settle(result: tuple[str, Translation | None, str | None] | Failure) -> None:
            if isinstance(result, Failure):
                log.error(
                    "Machine translation raised {error_type}",
                    error_type=type(result.value).__name__,
                )
                self._stats["failed"] += 1
                job._settle(outcome(FAILED, error_code="INTERNAL_ERROR"))
                return None
            job._settle(outcome(*result))
            return None

        d: Deferred[Any] = maybeDeferred(self.cache.get, digest, item.source_lang, target)
        d.addErrback(cache_failed)
        d.addCallback(looked_up)
        d.addBoth(settle)

    def _engine(
        self, text: str, digest: str, source: str, target: str
    ) -> Deferred[tuple[str, Translation | None, str | None]]:
        key = (digest, source, target)
        shared = self._in_flight.get(key)
        if shared is not None:
            return shared.observe()
        shared = _Shared()
        self._in_flight[key] = shared
        waiting = shared.observe()
        d: Deferred[Any] = self._semaphore.run(self.translator.translate, text, source, target)
        d.addTimeout(self._timeout, self._clock, onTimeoutCancel=_timed_out)
        d.addBoth(self._engine_done, key, shared)
        return waiting

    def _engine_done(
        self,
        result: Translation | Failure | None,
        key: tuple[str, str, str],
        shared: _Shared,
    ) -> None:
        if self._in_flight.get(key) is shared:
            del self._in_flight[key]
        digest, source, target = key
        settled: tuple[str, Translation | None, str | None]
        if isinstance(result, Failure):
            settled = self._classify_failure(result, source, target)
        elif result is None:
            self._stats["unavailable"] += 1
            settled = (UNAVAILABLE, None, None)
        elif not isinstance(result, Translation) or (
            result.original_sha256,
            result.source_lang,
            result.target_lang,
        ) != (digest, source, target):
            self._stats["failed"] += 1
            log.error(
                "The {engine} engine answered with a translation of another text or pair",
                engine=self.engine,
            )
            settled = (FAILED, None, "INTERNAL_ERROR")
        else:
            self._stats["translated"] += 1
            settled = (TRANSLATED, result, None)
            stored: Deferred[None] = maybeDeferred(self.cache.put, result)
            stored.addErrback(self._cache_put_failed)
        for observer in shared.observers:
            observer.callback(settled)
        return None

    def _cache_put_failed(self, failure: Failure) -> None:
        self._stats["cache_errors"] += 1
        log.warn(
            "Storing a translation in the cache failed ({error_type})",
            error_type=type(failure.value).__name__,
        )

    def _classify_failure(
        self, failure: Failure, source: str, target: str
    ) -> tuple[str, Translation | None, str | None]:
        if failure.check(TimeoutError, TranslationTimeout):
            self._stats["timeouts"] += 1
            log.warn(
                "Machine translation timed out after {timeout} s ({engine}, {source}->{target})",
                timeout=self._timeout,
                engine=self.engine,
                source=source,
                target=target,
            )
            return (TIMEOUT, None, TranslationTimeout.code)
        self._stats["failed"] += 1
        error = failure.value
        if isinstance(error, GatewayError):
            # Our own errors never carry the text; their messages are safe to log.
            log.warn(
                "Machine translation failed ({engine}, {source}->{target}): {code}: {message}",
                engine=self.engine,
                source=source,
                target=target,
                code=error.code,
                message=error.message,
            )
            return (FAILED, None, error.code)
        log.error(
            "Machine translation failed unexpectedly ({engine}, {source}->{target}): {error_type}",
            engine=self.engine,
            source=source,
            target=target,
            error_type=type(error).__name__,
        )
        return (FAILED, None, "INTERNAL_ERROR")


__all__ = [
    "CACHED",
    "FAILED",
    "NOT_NEEDED",
    "TIMEOUT",
    "TRANSLATED",
    "UNAVAILABLE",
    "FreeTextItem",
    "TranslationJob",
    "TranslationOutcome",
    "TranslationService",
]
