"""The translation cache: machine translations keyed by (SHA-256 of the original
text, source language, target language).

The interface returns Deferreds so that a database-backed cache can replace
the in-memory one without changing its callers. The in-memory
:class:`MemoryTranslationCache` is bounded in entries (least recently used
entries go first) and, optionally, in age (measured on an injected clock).

Cached translations are personal data: :meth:`ITranslationCache.forget`
removes every translation of one original, which the node calls when it
erases the exchange that carried the text (see docs/translation.md for how
a persistent cache must be keyed and erased).
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import Interface, implementer

from .base import Translation

CacheKey = tuple[str, str, str]


class ITranslationCache(Interface):
    """Where translations are remembered between requests."""

    def get(original_sha256: str, source: str, target: str) -> Deferred[Translation | None]:
        """The cached translation of that original into ``target``, or None."""

    def put(translation: Translation) -> Deferred[None]:
        """Remember ``translation`` under (original_sha256, source_lang, target_lang)."""

    def forget(original_sha256: str) -> Deferred[int]:
        """Remove every translation of that original; fires with how many were removed."""


@implementer(ITranslationCache)
class MemoryTranslationCache:
    """A bounded least-recently-used cache in memory.

    ``max_entries`` bounds the number of translations; ``max_age`` (seconds,
    on ``clock``) bounds how long one is served, so translated personal data
    does not linger in memory indefinitely.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        max_age: float | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_age is not None and clock is None:
            raise ValueError("max_age needs a clock")
        self._max_entries = max_entries
        self._max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[CacheKey, tuple[Translation, float]] = OrderedDict()
        self._by_original: dict[str, set[CacheKey]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else 0.0

    def _remove(self, key: CacheKey) -> None:
        del self._entries[key]
        keys = self._by_original.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_original[key[0]]

    def get(self, original_sha256: str, source: str, target: str) -> Deferred[Translation | None]:
        key = (original_sha256, source, target)
        entry = self._entries.get(key)
        if entry is None:
            return succeed(None)
        translation, stored = entry
        if self._max_age is not None and self._now() - stored >= self._max_age:
            self._remove(key)
            return succeed(None)
        self._entries.move_to_end(key)
        return succeed(translation)

    def put(self, translation: Translation) -> Deferred[None]:
        key = (translation.original_sha256, translation.source_lang, translation.target_lang)
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (translation, self._now())
        self._by_original.setdefault(key[0], set()).add(key)
        while len(self._entries) > self._max_entries:
            oldest = next(iter(self._entries))
            self._remove(oldest)
        return succeed(None)

    def forget(self, original_sha256: str) -> Deferred[int]:
        keys = list(self._by_original.get(original_sha256, ()))
        for key in keys:
            self._remove(key)
        return succeed(len(keys))

    def clear(self) -> None:
        """Drop everything (for example when the node stops)."""
        self._entries.clear()
        self._by_original.clear()
