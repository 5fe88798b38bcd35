"""The node's services: thread pools, the service tree's order, peer senders, peer queries.

Everything here is built by :func:`gateway.node.build_node` from the node's
configuration and one :class:`~gateway.service.runtime.Runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from gateway.config import NodeConfig
from gateway.core.envelopes import read_error
from gateway.core.errors import NotFound, Unavailable
from gateway.core.retry import Backoff
from gateway.core.xmlparse import parse_xml
from gateway.keystore import NodeKeys
from gateway.service.metrics import WatchedCertificate
from gateway.service.outbound import PeerSender
from gateway.service.runtime import Runtime
from gateway.service.trust import NodeTrustStores
from gateway.transport.client import HTTPSClient


class OrderedMultiService(MultiService):
    """Stops its children one after another, last added first, each after the previous one.

    Twisted's MultiService stops all children at once; a node must close its
    listeners first, let senders finish the envelope in flight, and only then
    stop the thread pools and the database they use.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # MultiService.__init__ is untyped

    def add(self, *services: Service) -> None:
        """Add ``services`` in order (they start in this order and stop in reverse)."""
        for service in services:
            service.setServiceParent(self)  # type: ignore[no-untyped-call]  # Service.setServiceParent is untyped

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        return ensureDeferred(self._stop_children())

    async def _stop_children(self) -> None:
        for service in reversed(list(self)):
            if service.running:
                await maybeDeferred(service.stopService)


class CPUPool(Service):
    """The thread pool for verification, signing and blocking file I/O (off the reactor thread)."""

    name = "cpu-pool"

    def __init__(self, reactor: Any, threads: int) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="imi-gateway-cpu")

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        self._pool.start()
        # Never leave non-daemon threads behind, even if the service is not stopped.
        self._trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        self._reactor.removeSystemEventTrigger(self._trigger)
        self._pool.stop()

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._pool, func, *args, **kwargs)


class Closer(Service):
    """Last to start, first to stop: cancels long polls and closes outbound connections."""

    name = "https-client"

    def __init__(self, *close: Callable[[], Any]) -> None:
        self._close = close

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        return ensureDeferred(self._close_all())

    async def _close_all(self) -> None:
        for close in self._close:
            try:
                await maybeDeferred(close)
            except Exception:  # noqa: S112 (closing the rest matters more)
                continue


class PeerAPI:
    """GETs on the peers' APIs (the directory, tracking), over the node's HTTPS client."""

    def __init__(self, client: HTTPSClient, urls: dict[str, str]) -> None:
        self._client = client
        self._urls = urls

    def get(self, peer: str, path: str) -> Deferred[bytes | None]:
        """GET ``path`` of a peer's API: the body on 200, None on 304, else Unavailable.

        A redirect is never followed (PEER_REDIRECTED), nor an encoded answer read.
        """
        url = self._urls.get(peer)
        if url is None:
            return fail(NotFound(f"no URL is configured for peer {peer}"))

        def body(answer: Any) -> bytes | None:
            if answer.status == 304:
                return None
            if answer.status != 200:
                raise Unavailable(f"peer {peer} answered HTTP {answer.status}")
            return bytes(answer.body)

        return self._client.get(url.rstrip("/") + path).addCallback(body)

    def tracking(self, peer: str, exchange_id: str) -> Deferred[bytes]:
        def not_cached(body: bytes | None) -> bytes:
            if body is None:  # nothing was asked conditionally: a 304 is no answer
                raise Unavailable(f"peer {peer} answered HTTP 304 to a tracking query")
            return body

        path = f"/peer/v1/exchanges/{quote(exchange_id, safe='')}"
        return self.get(peer, path).addCallback(not_cached)

    def directory(self, peer: str, since: int | None) -> Deferred[bytes | None]:
        return self.get(peer, "/peer/v1/directory" + ("" if since is None else f"?since={since}"))

    def post(self, peer: str, path: str, body: bytes) -> Deferred[bytes]:
        """POST ``body`` to ``path`` of a peer's API: the answer's body on 200, else an error.

        An Error document's code is kept (``Unavailable`` naming it); redirects
        and encoded answers are refused as for :meth:`get`.
        """
        url = self._urls.get(peer)
        if url is None:
            return fail(NotFound(f"no URL is configured for peer {peer}"))

        def body_of(answer: Any) -> bytes:
            if answer.status != 200:
                raise Unavailable(f"peer {peer} answered HTTP {answer.status}{_code_of(answer)}")
            return bytes(answer.body)

        return self._client.post(url.rstrip("/") + path, body).addCallback(body_of)


class PeerCheckpoints:
    """The peers' ``/peer/v1/audit/checkpoints`` (for ``service.audit_checkpoints``)."""

    PATH = "/peer/v1/audit/checkpoints"

    def __init__(self, api: PeerAPI) -> None:
        self._api = api

    def held(self, peer: str) -> Deferred[bytes]:
        def present(body: bytes | None) -> bytes:
            if body is None:
                raise Unavailable(f"peer {peer} answered HTTP 304 to a checkpoint query")
            return body

        return self._api.get(peer, self.PATH).addCallback(present)

    def offer(self, peer: str, body: bytes) -> Deferred[bytes]:
        return self._api.post(peer, self.PATH, body)


def _code_of(answer: Any) -> str:
    """`` (CODE)`` of an Error document answer, or nothing."""
    try:
        return f" ({read_error(parse_xml(answer.body)).code})"
    except Exception:  # any other answer has no code to show
        return ""


def backoff_of(config: NodeConfig) -> Backoff:
    outbound = config.outbound
    return Backoff(outbound.initial_backoff_seconds, outbound.max_backoff_seconds, outbound.jitter)


def build_senders(
    runtime: Runtime,
    config: NodeConfig,
    trust: NodeTrustStores,
    client: HTTPSClient,
    peer_urls: dict[str, str],
) -> dict[str, PeerSender]:
    """One outbound queue per trusted peer with a URL."""
    outbound = config.outbound

    def receipt_trust(peer: str) -> Callable[[], Any]:
        return lambda: trust.envelopes(peer)

    return {
        peer: PeerSender(
            peer,
            url,
            runtime=runtime,
            client=client,
            receipt_trust=receipt_trust(peer),
            backoff=backoff_of(config),
            batch_size=outbound.batch_size,
            dead_letter_after=timedelta(seconds=outbound.dead_letter_after_seconds),
            max_attempts=outbound.max_attempts,
            lease=timedelta(seconds=outbound.lease_seconds),
            linger=outbound.linger_ms / 1000,
        )
        for peer, url in sorted(peer_urls.items())
    }


def watched_certificates(keys: NodeKeys, trust: NodeTrustStores) -> list[WatchedCertificate]:
    """The certificates whose expiry the node exports: its own, its peers', its national systems'."""
    watched = [
        WatchedCertificate("node", keys.node_id, role, pair.certificate)
        for role, pair in (("ca", keys.ca), ("signing", keys.signing), ("tls", keys.tls))
    ]
    for peer_id, peer in sorted(trust.raw.peers.items()):
        watched.append(WatchedCertificate("peer", peer_id, "ca", peer.ca))
        watched += [WatchedCertificate("peer", peer_id, "signing", c) for c in peer.signing_set]
        watched += [WatchedCertificate("peer", peer_id, "tls", c) for c in peer.tls_set]
    for authority, certs in sorted(trust.national_certificates.items()):
        watched += [WatchedCertificate("national", authority, "client", c) for c in certs]
    return watched


__all__ = [
    "CPUPool",
    "Closer",
    "OrderedMultiService",
    "PeerAPI",
    "PeerCheckpoints",
    "backoff_of",
    "build_senders",
    "watched_certificates",
]
