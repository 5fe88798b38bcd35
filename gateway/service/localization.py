"""Local rendering of received documents, with machine translation of their free text.

:class:`Localizer` is what the node hands ``Deliveries`` as its ``render``
callable, and what it tells when a document arrives or is erased:

* ``start_translations(body)`` (reactor thread, when a document is
  received; pass the document admission already read rather than the bytes
  when there is one: re-reading 7 MB of attachments costs ~50 ms): asks the :class:`~gateway.adapters.translation.TranslationService`
  to translate the document's free texts into the node's languages. It
  returns at once; translations land in the service's cache and in this
  object's bounded in-memory map, keyed by (SHA-256 of the text, target
  language).
* ``received(body, document)`` (reactor thread, from the pipeline): the
  same, and the document admission read is kept until its delivery is first
  rendered (a bounded map keyed by the SHA-256 of its signed bytes: at most
  ``max_read`` documents read from ``max_read_bytes``), so that rendering
  does not parse and validate the bytes again;
* ``render(body)`` (any thread; ``Deliveries`` calls it on a CPU worker):
  the ``envelopes.Rendering`` of every node language
  (``gateway.core.localize.renderings_for``), with the translations that
  have arrived and ``PENDING`` for those still awaited. It never waits and
  never raises: a document that cannot be rendered is delivered with its
  original only. A free text nobody has asked to translate yet (the node
  restarted, or the map forgot it) is handed to the reactor with
  ``callFromThread`` and shows as pending.
* ``forget(body)`` (reactor thread, at erasure): drops the translations of
  the document's texts from the map and from the service's cache; a
  translation of such a text that arrives later is dropped too.

A failing or slow engine never delays a delivery: the service settles every
request (translation, failure or timeout on its clock) and a settled request
without a translation stops being pending (the rendering is then
``PARTIAL``). Shared state is guarded by one lock; Twisted APIs are only
called on the reactor thread. Free text and translations are personal data:
nothing here logs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, FirstError, gatherResults, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.adapters.translation import (
    CACHED,
    TRANSLATED,
    FreeTextItem,
    Translation,
    TranslationOutcome,
    TranslationService,
)
from gateway.core.catalogue import CatalogueRegistry, check_language
from gateway.core.documents import ExchangeDocument
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import Rendering
from gateway.core.localize import (
    FreeText,
    TranslationKey,
    free_texts,
    parse_document,
    renderings_for,
)

__all__ = ["Localizer"]

log = Logger(namespace="gateway.service.localization")


class CallFromThread(Protocol):
    """The part of the reactor a worker thread may use (``IReactorFromThreads``)."""

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True)
class _Reservation:
    """One (free text, target language) this object has asked, or is about to ask, for."""

    free: FreeText
    target: str
    token: object

    @property
    def key(self) -> TranslationKey:
        return (self.free.sha256, self.target)


class Localizer:
    """Renders received documents in the node's languages (see the module docstring).

    ``catalogues``: the installed catalogue versions. ``languages``: the
    node's rendering languages (``config.node.languages``), in order.
    ``translation``: the machine-translation service, or None for no
    translation at all. ``reactor``: lets ``render`` (on a worker thread)
    start translations nobody asked for yet; without it such texts are
    left untranslated. ``max_entries`` bounds the translations kept in
    memory (least recently used go first) and, separately, the remembered
    failures.
    """

    def __init__(
        self,
        catalogues: CatalogueRegistry,
        languages: Sequence[str],
        translation: TranslationService | None = None,
        *,
        reactor: CallFromThread | None = None,
        max_entries: int = 10_000,
        max_read: int = 1_000,
        max_read_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._catalogues = catalogues
        self._languages = tuple(dict.fromkeys(check_language(lang) for lang in languages))
        self._service = translation
        self._reactor = reactor
        self._max_entries = max_entries
        self._lock = threading.Lock()
        # Guarded by _lock:
        self._translations: OrderedDict[TranslationKey, Translation] = OrderedDict()
        self._given_up: OrderedDict[TranslationKey, None] = OrderedDict()
        self._in_flight: dict[TranslationKey, object] = {}
        # Documents admission read, by SHA-256 of their signed bytes (least recently
        # used go first; bounded by entries and by the bytes they were read from).
        self._read: OrderedDict[str, tuple[ExchangeDocument, int]] = OrderedDict()
        self._read_bytes = 0
        self._max_read = max_read
        self._max_read_bytes = max_read_bytes

    @property
    def languages(self) -> tuple[str, ...]:
        return self._languages

    @property
    def stats(self) -> dict[str, int]:
        """Gauges for the node's metrics: translations held, awaited, given up."""
        with self._lock:
            return {
                "held": len(self._translations),
                "awaited": len(self._in_flight),
                "given_up": len(self._given_up),
            }

    # --- reactor thread ------------------------------------------------------------

    def start_translations(self, body: bytes | ExchangeDocument) -> None:
        """Start translating the free texts of ``body`` into the node's languages.

        Call on the reactor thread when a document is received, with its
        signed bytes or, to spare a second parse, the document admission
        read from them. Returns at once and never raises; texts already
        translated, awaited or given up are not asked for again.
        """
        if self._service is None:
            return
        try:
            wanted = self._wanted(free_texts(_document(body)))
            with self._lock:
                reservations = [r for r in map(self._reserve, wanted) if r is not None]
        except Exception as exc:
            log.error(
                "Cannot read a received document to translate its free text ({error_type})",
                error_type=type(exc).__name__,
            )
            return
        self._dispatch(reservations)

    def received(self, body: bytes, document: ExchangeDocument) -> None:
        """A document was received: keep what admission read from ``body``, start translating.

        Reactor thread. ``document`` must be what admission read from exactly
        these bytes (verified, validated): :meth:`render` then uses it
        instead of parsing and validating the bytes again.
        """
        size = len(body)
        if size <= self._max_read_bytes:
            key = sha256_hex(body)
            with self._lock:
                old = self._read.pop(key, None)
                if old is not None:
                    self._read_bytes -= old[1]
                self._read[key] = (document, size)
                self._read_bytes += size
                while self._read and (
                    len(self._read) > self._max_read or self._read_bytes > self._max_read_bytes
                ):
                    _, (_, dropped) = self._read.popitem(last=False)
                    self._read_bytes -= dropped
        self.start_translations(document)

    def _read_document(self, body: bytes) -> ExchangeDocument:
        """The document in ``body``: the one admission read if it is kept, else parsed now.

        A kept document is used once and dropped (it holds personal data: it
        stays in memory only until its delivery is first rendered, or until
        newer documents push it out).
        """
        with self._lock:
            kept = self._read.pop(sha256_hex(body), None)
            if kept is not None:
                self._read_bytes -= kept[1]
                return kept[0]
        return parse_document(body)

    async def forget(self, body: bytes | ExchangeDocument) -> None:
        """Erase the translations of the free texts of ``body`` (reactor thread).

        ``body``: the document's signed bytes, or the document read from them.
        Drops them from memory and from the service's cache; a translation of
        one of these texts still on its way is dropped when it arrives. Returns
        when the cache has forgotten them; raises the cache's error if it fails.
        """
        if isinstance(body, bytes):
            with self._lock:
                kept = self._read.pop(sha256_hex(body), None)
                if kept is not None:
                    self._read_bytes -= kept[1]
        try:
            digests = sorted({free.sha256 for free in free_texts(_document(body))})
        except Exception as exc:
            log.error(
                "Cannot read a document to erase its translations ({error_type})",
                error_type=type(exc).__name__,
            )
            return
        with self._lock:
            for digest in digests:
                for lang in self._languages:
                    key = (digest, lang)
                    self._translations.pop(key, None)
                    self._given_up.pop(key, None)
                    self._in_flight.pop(key, None)
        if self._service is None or not digests:
            return
        cache = self._service.cache
        try:
            await gatherResults(
                [maybeDeferred(cache.forget, digest) for digest in digests], consumeErrors=True
            )
        except FirstError as error:  # gatherResults wraps the first failure: raise the original
            error.subFailure.raiseException()

    def clear(self) -> None:
        """Drop every translation held in memory (for example when the node stops)."""
        with self._lock:
            self._translations.clear()
            self._given_up.clear()
            self._in_flight.clear()
            self._read.clear()
            self._read_bytes = 0

    # --- any thread ----------------------------------------------------------------

    def render(self, body: bytes) -> tuple[Rendering, ...]:
        """The renderings of ``body`` in the node's languages; never waits, never raises.

        Thread-safe. Uses the translations that have arrived; those still
        awaited make the rendering ``PENDING``. A document that cannot be
        rendered gives no renderings (the delivery carries the original only).
        """
        try:
            document = self._read_document(body)
            wanted = self._wanted(free_texts(document))
            available: dict[TranslationKey, Translation] = {}
            pending: set[TranslationKey] = set()
            reservations: list[_Reservation] = []
            can_start = self._service is not None and self._reactor is not None
            with self._lock:
                for free, target in wanted:
                    key = (free.sha256, target)
                    found = self._translations.get(key)
                    if found is not None:
                        self._translations.move_to_end(key)
                        available[key] = found
                    elif key in self._in_flight:
                        pending.add(key)
                    elif can_start and key not in self._given_up:
                        reservation = self._reserve((free, target))
                        if reservation is not None:
                            reservations.append(reservation)
                            pending.add(key)
            if reservations:
                self._hand_to_reactor(reservations)
            return renderings_for(
                self._catalogues, document, self._languages, available, pending=pending
            )
        except Exception as exc:
            log.error(
                "Rendering a document failed ({error_type}); it is delivered without renderings",
                error_type=type(exc).__name__,
            )
            return ()

    # --- internals -----------------------------------------------------------------

    def _wanted(self, texts: Iterable[FreeText]) -> list[tuple[FreeText, str]]:
        """(free text, target) for every node language the text is not written in."""
        return [(free, lang) for free in texts for lang in self._languages if lang != free.lang]

    def _reserve(self, wanted: tuple[FreeText, str]) -> _Reservation | None:
        """Mark (text, target) as awaited unless it is known; call with the lock held."""
        free, target = wanted
        key = (free.sha256, target)
        if key in self._translations or key in self._in_flight or key in self._given_up:
            return None
        reservation = _Reservation(free, target, object())
        self._in_flight[key] = reservation.token
        return reservation

    def _hand_to_reactor(self, reservations: list[_Reservation]) -> None:
        assert self._reactor is not None
        try:
            self._reactor.callFromThread(self._dispatch, reservations)
        except Exception as exc:
            log.error(
                "Cannot hand translations to the reactor ({error_type})",
                error_type=type(exc).__name__,
            )
            self._give_up(reservations)

    def _dispatch(self, reservations: list[_Reservation]) -> None:
        """Ask the service for the reserved translations (reactor thread)."""
        with self._lock:  # forget() may have run since they were reserved
            reservations = [r for r in reservations if self._in_flight.get(r.key) is r.token]
        if not reservations or self._service is None:
            self._give_up(reservations)
            return
        # One item per (text, language), with every target reserved for it.
        groups: dict[tuple[str, str], list[_Reservation]] = {}
        for reservation in reservations:
            groups.setdefault((reservation.free.sha256, reservation.free.lang), []).append(
                reservation
            )
        items = []
        by_item: dict[str, dict[str, _Reservation]] = {}
        for number, group in enumerate(groups.values()):
            item_id = f"text-{number}"
            free = group[0].free
            items.append(
                FreeTextItem(item_id, free.text, free.lang, tuple(r.target for r in group))
            )
            by_item[item_id] = {r.target: r for r in group}

        def on_outcome(outcome: TranslationOutcome) -> None:
            reservation = by_item.get(outcome.item_id, {}).get(outcome.target_lang)
            if reservation is not None:
                self._settled(reservation, outcome)

        try:
            self._service.translate(items, on_outcome=on_outcome)
        except Exception as exc:  # the service promises never to raise
            log.error(
                "Starting machine translation failed ({error_type})",
                error_type=type(exc).__name__,
            )
            self._give_up(reservations)

    def _settled(self, reservation: _Reservation, outcome: TranslationOutcome) -> None:
        """Keep the outcome of a reserved translation (reactor thread)."""
        key = reservation.key
        translation = outcome.translation
        usable = (
            outcome.status in (TRANSLATED, CACHED)
            and translation is not None
            and translation.source_lang == reservation.free.lang
            and translation.target_lang == reservation.target
        )
        with self._lock:
            live = self._in_flight.get(key) is reservation.token
            if live:
                del self._in_flight[key]
                if usable and translation is not None:
                    self._keep(self._translations, key, translation)
                else:
                    self._keep(self._given_up, key, None)
                return
            # Erased (forget) while on its way: drop it, and the copy the service
            # cached, unless the same text is wanted again by a live document.
            still_wanted = any(
                (key[0], lang) in self._in_flight or (key[0], lang) in self._translations
                for lang in self._languages
            )
        if translation is not None and not still_wanted and self._service is not None:
            d: Deferred[Any] = maybeDeferred(self._service.cache.forget, key[0])
            d.addErrback(_log_cache_failure)

    def _give_up(self, reservations: Iterable[_Reservation]) -> None:
        with self._lock:
            for reservation in reservations:
                key = reservation.key
                if self._in_flight.get(key) is reservation.token:
                    del self._in_flight[key]
                    self._keep(self._given_up, key, None)

    def _keep(
        self, table: OrderedDict[TranslationKey, Any], key: TranslationKey, value: Any
    ) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._max_entries:
            table.popitem(last=False)


def _document(body: bytes | ExchangeDocument) -> ExchangeDocument:
    return parse_document(body) if isinstance(body, bytes) else body


def _log_cache_failure(failure: Failure) -> None:
    log.warn(
        "Erasing a late translation from the cache failed ({error_type})",
        error_type=type(failure.value).__name__,
    )
