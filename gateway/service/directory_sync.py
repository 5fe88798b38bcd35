"""Directory synchronisation: keep every peer's authority directory cached and current.

:class:`DirectorySyncService` is a Twisted service that, every ``interval``
seconds on the injected clock, asks each peer for the changes to its
authority directory since the version cached here, through an injected
``fetch(peer_id, since) -> Deferred[bytes | None]`` (the composition root
provides the HTTPS client for ``GET /peer/v1/directory?since=N``; ``since``
is None when nothing is cached). The answer is verified and applied by
:meth:`gateway.storage.directory_files.DirectoryStore.apply_peer_document` and cached
on disk, so it survives a restart. Reading the cache, verifying the signature
and writing (fsync) the cache are blocking: they run through the injected
``run_io`` (the node's thread pool; see :mod:`gateway.service.runtime`), never
on the reactor thread.

Contract of ``fetch``: fire with the signed document's bytes; with ``None``
or ``b""`` when the peer answered 304 Not Modified (nothing changed since
``since``); errback on a transport failure or any other HTTP status.

When an incremental update does not apply to the cached version
(DIRECTORY_BASE_MISMATCH, e.g. the cache was restored from a backup) the full
directory is fetched at once. Other failures are logged with their error code
and retried at the next tick; a peer whose previous synchronisation is still
running is skipped. Logs carry peer ids, versions and counts -- never names,
addresses or document bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway.core.clock import Clock
from gateway.core.directory import DirectoryBaseMismatch
from gateway.core.errors import GatewayError
from gateway.service.runtime import RunInThread, inline
from gateway.storage.directory_files import DirectoryStore, PeerUpdate

__all__ = ["DirectorySyncService", "FetchDirectory", "SyncOutcome"]

log = Logger()

#: ``fetch(peer_id, since)``: the peer's signed directory document, None when up to date.
FetchDirectory = Callable[[str, int | None], "Deferred[bytes | None]"]

Status = Literal["updated", "unchanged", "up-to-date", "failed", "skipped"]


@dataclass(frozen=True)
class SyncOutcome:
    """What one synchronisation with one peer did."""

    peer_id: str
    status: Status
    version: int | None = None
    update: PeerUpdate | None = None
    error_code: str | None = None


class DirectorySyncService(Service):
    """Fetches, verifies and caches the peers' authority directories periodically.

    ``peers``: the peer ids, or a callable returning them (read at each tick,
    so a peer added to the configuration is picked up). ``clock`` gives both
    the tick timer and the verification time. ``run_io`` runs the store's
    blocking work (default: inline, for tests on a deterministic clock).
    ``on_update`` is called with every applied change (e.g. to drop caches of
    pinned certificates).
    """

    name = "directory-sync"

    def __init__(
        self,
        store: DirectoryStore,
        peers: Iterable[str] | Callable[[], Iterable[str]],
        fetch: FetchDirectory,
        *,
        clock: Clock,
        interval: float = 300.0,
        run_io: RunInThread = inline,
        on_update: Callable[[PeerUpdate], object] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._store = store
        self._peers = peers if callable(peers) else tuple(peers)
        self._fetch = fetch
        self._clock = clock
        self._interval = interval
        self._run_io = run_io
        self._on_update = on_update
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._loop: LoopingCall | None = None

    @property
    def busy(self) -> bool:
        """Whether a synchronisation (fetch, verify, cache, ``on_update``) is running."""
        return bool(self._running)

    def _peer_ids(self) -> list[str]:
        peers = self._peers() if callable(self._peers) else self._peers
        return sorted(set(peers))

    # -- service -------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        loop = LoopingCall(self.sync_all)
        loop.clock = self._clock  # type: ignore[assignment]  # seconds() and callLater suffice
        self._loop = loop
        loop.start(self._interval, now=True)

    def stopService(self) -> Deferred[None] | None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        return None

    # -- synchronising ---------------------------------------------------------------------

    def sync_all(self) -> Deferred[list[SyncOutcome]]:
        """Synchronise every peer (concurrently); never fails."""
        peers = self._peer_ids()
        pending = [self.sync_peer(peer_id) for peer_id in peers]
        done: Deferred[list[tuple[bool, SyncOutcome]]] = DeferredList(pending, consumeErrors=True)

        def outcomes(results: list[tuple[bool, SyncOutcome]]) -> list[SyncOutcome]:
            return [r for ok, r in results if ok]

        return done.addCallback(outcomes)

    def sync_peer(self, peer_id: str) -> Deferred[SyncOutcome]:
        """Synchronise one peer; fires with its :class:`SyncOutcome`, never fails."""
        return Deferred.fromCoroutine(self._sync_once(peer_id))

    def sync_peer_soon(self, peer_id: str) -> None:
        """Synchronise one peer now, or right after its running sync (its URL changed)."""
        if peer_id in self._running:
            self._again.add(peer_id)
        else:
            self.sync_peer(peer_id)

    async def _sync_once(self, peer_id: str) -> SyncOutcome:
        """One sync of ``peer_id`` at a time; one asked for meanwhile runs right after."""
        if peer_id in self._running:
            log.debug("Directory sync with {peer} still running; skipped", peer=peer_id)
            return SyncOutcome(peer_id, "skipped")
        self._running.add(peer_id)
        try:
            return await self._sync(peer_id)
        finally:
            self._running.discard(peer_id)
            if peer_id in self._again:
                self._again.discard(peer_id)
                self.sync_peer(peer_id)

    def _since(self, peer_id: str) -> int | None:
        try:
            cached = self._store.cached(peer_id)
        except GatewayError as exc:
            log.warn(
                "Cached directory of {peer} unreadable ({code}); fetching it in full",
                peer=peer_id,
                code=exc.code,
            )
            return None
        return cached.version if cached is not None else None

    def _apply(self, peer_id: str, data: bytes) -> Deferred[PeerUpdate]:
        """Verify and cache ``data`` off the reactor thread, verified at the clock's now."""
        now = self._clock.now()
        d: Deferred[PeerUpdate] = self._run_io(
            self._store.apply_peer_document, peer_id, data, now=now
        )
        return d

    async def _sync(self, peer_id: str) -> SyncOutcome:
        since: int | None = None
        try:
            since = await self._run_io(self._since, peer_id)
            data = await self._fetch(peer_id, since)
            if not data:
                log.debug(
                    "Directory of {peer} is up to date (version {version})",
                    peer=peer_id,
                    version=since,
                )
                return SyncOutcome(peer_id, "up-to-date", since)
            try:
                update = await self._apply(peer_id, data)
            except DirectoryBaseMismatch:
                log.info(
                    "Directory update of {peer} does not apply to version {version}; "
                    "fetching the full directory",
                    peer=peer_id,
                    version=since,
                )
                data = await self._fetch(peer_id, None)
                if not data:
                    raise DirectoryBaseMismatch(
                        f"peer {peer_id} answered 'not modified' to a full directory request"
                    ) from None
                update = await self._apply(peer_id, data)
        except GatewayError as exc:
            log.warn(
                "Directory sync with {peer} refused: {code}: {reason}",
                peer=peer_id,
                code=exc.code,
                reason=str(exc),
            )
            return SyncOutcome(peer_id, "failed", since, error_code=exc.code)
        except Exception as exc:  # transport failures: retried at the next tick
            log.warn(
                "Directory sync with {peer} failed: {error}",
                peer=peer_id,
                error=type(exc).__name__,
            )
            return SyncOutcome(peer_id, "failed", since, error_code=type(exc).__name__)
        if update.unchanged:
            return SyncOutcome(peer_id, "unchanged", update.version, update)
        log.info(
            "Applied the {kind} directory of {peer}: version {version}, "
            "{changed} authorities added or changed, {removed} removed",
            kind="full" if update.full else "incremental",
            peer=peer_id,
            version=update.version,
            changed=len(update.changed),
            removed=len(update.removed),
        )
        if self._on_update is not None:
            try:
                self._on_update(update)
            except Exception:
                log.failure("on_update callback failed for {peer}", peer=peer_id)
        return SyncOutcome(peer_id, "updated", update.version, update)
