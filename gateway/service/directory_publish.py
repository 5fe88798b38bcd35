"""The signed directory documents this node serves its peers (no HTTP here).

The HTTP resource (:class:`gateway.transport.directory.DirectoryResource`)
asks :class:`DirectoryPublisher` for the document a peer holding a version
needs; the publisher refreshes the store now and then and keeps the signed
documents per version.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from lxml import etree

from gateway.core.directory import PublishedDirectory
from gateway.core.directory.document import build_directory
from gateway.storage.directory_files import DirectoryStore

__all__ = ["DirectoryPublisher"]


class DirectoryPublisher:
    """The signed directory documents this node serves to its peers.

    ``sign(root) -> bytes`` signs a tree with the node's signing key (the
    composition root injects ``Signer(...).sign``); ``now()`` is the clock.
    The store is refreshed (bound certificates re-read) at most every
    ``refresh_interval`` seconds, and signed documents are kept per
    (version, base version) so repeated requests cost no signature.
    """

    def __init__(
        self,
        store: DirectoryStore,
        sign: Callable[[etree._Element], bytes],
        *,
        now: Callable[[], datetime],
        refresh_interval: float = 60.0,
        cache_size: int = 32,
    ) -> None:
        self._store = store
        self._sign = sign
        self._now = now
        self._interval = refresh_interval
        self._cache_size = cache_size
        self._refreshed: datetime | None = None
        self._cache: OrderedDict[tuple[int, int | None, datetime], bytes] = OrderedDict()

    def current(self) -> PublishedDirectory:
        """The published directory, refreshed when the interval has passed."""
        moment = self._now()
        age = None if self._refreshed is None else (moment - self._refreshed).total_seconds()
        if age is None or age < 0 or age >= self._interval:
            published = self._store.refresh(now=moment)
            self._refreshed = moment
            return published
        return self._store.published()

    def document(self, since: int | None) -> bytes | None:
        """The signed document for a peer holding version ``since``; None when it is up to date."""
        directory = self.current().since(since)
        if directory is None:
            return None
        key = (directory.version, directory.base_version, directory.created)
        data = self._cache.get(key)
        if data is None:
            data = self._sign(build_directory(directory))
            self._cache[key] = data
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return data
