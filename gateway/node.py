"""The composition root: one node, built from its node directory, as a Twisted service tree.

Everything a node needs is created here, once, and handed to the parts that
use it (no part reaches for globals): configuration, keys (loaded once),
trust stores, the database and its thread pool, a CPU thread pool for
verification and signing, the pipeline, one sender per peer, deliveries,
tracking, metrics, and three listeners:

* the national-system API (HTTPS, client certificates issued by this node),
* the peer API (HTTPS, mutual TLS, pinned peer certificates),
* health and Prometheus metrics (plain HTTP; bind it to loopback).

The reactor is passed in; only ``gateway.commands.run`` (and the demo and
bench commands) import the global one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, inlineCallbacks, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource

from gateway.adapters.translation import build_translation_service
from gateway.config import NodeConfig, load_config
from gateway.core.catalogue import CatalogueRegistry, load_catalogues
from gateway.core.errors import ConfigurationError, NotFound, Unavailable
from gateway.core.retry import Backoff
from gateway.core.signing import Signer
from gateway.keystore import load_data_kek, load_node_keys
from gateway.node_ports import PortsFile
from gateway.service.deliveries import Deliveries, Pusher
from gateway.service.directory_search import LiveSearch
from gateway.service.directory_sync import DirectorySyncService
from gateway.service.localization import Localizer
from gateway.service.metrics import NodeMetrics
from gateway.service.outbound import PeerSender
from gateway.service.pipeline import Pipeline
from gateway.service.tracking import TrackingQueries
from gateway.service.trust import NodeTrustStores, TrustChanges
from gateway.service.waiters import Waiters
from gateway.storage.db import Database
from gateway.storage.directory_files import DirectoryStore
from gateway.transport.api import api_root, peer_root
from gateway.transport.client import HTTPSClient, netloc_of
from gateway.transport.directory import AuthoritySearchResource, DirectoryResource
from gateway.transport.health import health_root
from gateway.transport.http import LimitedSite
from gateway.transport.tls import (
    PinnedPeersPolicy,
    ReloadableServerOptions,
    authority_of_certificate,
    peer_of_certificate,
)

log = Logger()

#: Accepted connections the kernel queues until the node takes them (Twisted's default is 50:
#: a burst of connections would wait for SYN-ACK retransmissions, seconds each).
LISTEN_BACKLOG = 511


class Listener(Service):
    """Listens on one address and port while running; ``port`` is the bound port (useful with 0)."""

    def __init__(self, name: str, listen: Callable[[], IListeningPort], site: LimitedSite) -> None:
        self.name = name
        self._listen = listen
        self._site = site
        self._port: IListeningPort | None = None

    @property
    def site(self) -> LimitedSite:
        return self._site

    @property
    def port(self) -> int:
        assert self._port is not None, f"{self.name} is not listening"
        return int(self._port.getHost().port)

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for IPv6) that the listener is bound to."""
        assert self._port is not None, f"{self.name} is not listening"
        bound = self._port.getHost()
        host = str(bound.host)
        return f"[{host}]:{bound.port}" if ":" in host else f"{host}:{bound.port}"

    def startService(self) -> None:
        super().startService()
        self._port = self._listen()
        bound = self._port.getHost()
        log.info(
            "{name} listening on {address} (at most {limit} connections)",
            name=self.name,
            address=self.address,
            host=str(bound.host),
            port=int(bound.port),
            limit=self._site.max_connections,
        )

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        port, self._port = self._port, None
        self._site.close_connections()
        return maybeDeferred(port.stopListening) if port is not None else None


class OrderedMultiService(MultiService):
    """Stops its children one after another, last added first, each after the previous one.

    Twisted's MultiService stops all children at once; a node must close its
    listeners first, let senders finish the envelope in flight, and only then
    stop the thread pools and the database they use.
    """

    @inlineCallbacks
    def stopService(self) -> Any:
        Service.stopService(self)
        for service in reversed(list(self)):
            if service.running:
                yield maybeDeferred(service.stopService)


class CPUPool(Service):
    """The thread pool for verification and signing (off the reactor thread)."""

    name = "cpu-pool"

    def __init__(self, reactor: Any, threads: int) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="imi-gateway-cpu")

    def startService(self) -> None:
        super().startService()
        self._pool.start()
        # Never leave non-daemon threads behind, even if the service is not stopped.
        self._trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def stopService(self) -> None:
        super().stopService()
        self._reactor.removeSystemEventTrigger(self._trigger)
        self._pool.stop()

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._pool, func, *args, **kwargs)


@dataclass
class NodeParts:
    """Handles on a built node's parts (for the demo, the benchmark and tests)."""

    config: NodeConfig
    db: Database
    pipeline: Pipeline
    deliveries: Deliveries
    tracking: TrackingQueries
    metrics: NodeMetrics
    senders: dict[str, PeerSender]
    api: Listener
    peer: Listener
    health: Listener
    client: HTTPSClient
    trust: NodeTrustStores
    #: Re-read trust and apply it to the running node (SIGHUP, ``imi-gateway reload``).
    reload_trust: Callable[[], TrustChanges]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_node(
    node_dir: str | Path,
    reactor: Any,
    *,
    now: Callable[[], datetime] = _utcnow,
    catalogues: CatalogueRegistry | None = None,
    api_resources: dict[bytes, Resource] | None = None,
    peer_resources: dict[bytes, Resource] | None = None,
) -> tuple[MultiService, NodeParts]:
    """Build the service tree of the node in ``node_dir`` (not started)."""
    config = load_config(node_dir)
    keys = load_node_keys(node_dir)
    kek = load_data_kek(node_dir)
    directory = DirectoryStore(node_dir)
    trust = NodeTrustStores(Path(node_dir), directory.authority_certificates)
    node_id = config.node_id
    top = OrderedMultiService()

    db = Database(config.database.url, reactor=reactor, threads=config.database.pool_size)
    db.migrate()
    db.setServiceParent(top)
    cpu = CPUPool(reactor, threads=2)
    cpu.setServiceParent(top)

    signer = Signer(keys.signing.key, keys.signing.certificate)
    metrics = NodeMetrics()
    waiters = Waiters(reactor)
    peer_urls = {p.id: p.url for p in config.peers if p.id in trust.peer_ids}
    push_urls = {a.id: a.push_url for a in config.authorities if a.push_url}

    def pinned_servers() -> dict[tuple[str, int], tuple[Any, Any]]:
        """The outbound TLS pins from the current trust: peer nodes and push callbacks."""
        pins = {
            netloc_of(url): (trust.raw.peers[peer].ca, trust.raw.peers[peer].tls)
            for peer, url in peer_urls.items()
            if peer in trust.raw.peers
        }
        for authority, url in push_urls.items():
            # A push callback must present the authority's own registered certificate.
            registered = trust.national_certificates.get(authority)
            if registered:
                pins[netloc_of(url)] = (keys.ca.certificate, registered[-1])
        return pins

    policy = PinnedPeersPolicy(keys.tls.key, keys.tls.certificate, pinned_servers())
    client = HTTPSClient(reactor, policy, timeout_seconds=config.limits.request_deadline_seconds)
    backoff = Backoff(
        config.outbound.initial_backoff_seconds,
        config.outbound.max_backoff_seconds,
        config.outbound.jitter,
    )
    senders: dict[str, PeerSender] = {}
    for peer, url in sorted(peer_urls.items()):
        senders[peer] = PeerSender(
            peer,
            url,
            node_id=node_id,
            clock=reactor,
            now=now,
            db=db,
            cpu=cpu.run,
            client=client,
            signer=signer,
            receipt_trust=lambda peer=peer: trust.envelopes(peer),  # type: ignore[misc]
            kek=kek,
            backoff=backoff,
            batch_size=config.outbound.batch_size,
            dead_letter_after=timedelta(seconds=config.outbound.dead_letter_after_seconds),
            max_attempts=config.outbound.max_attempts,
            metrics=metrics,
        )
        senders[peer].setServiceParent(top)

    catalogues = catalogues or load_catalogues()
    translation = build_translation_service(
        config.translation.engine, config.translation.settings, reactor=reactor
    )
    localizer = Localizer(catalogues, config.node.languages, translation, reactor=reactor)
    deliveries = Deliveries(
        node_id=node_id,
        now=now,
        db=db,
        cpu=cpu.run,
        signer=signer,
        kek=kek,
        waiters=waiters,
        render=localizer.render,
        metrics=metrics,
    )
    pusher: Pusher | None = None
    if push_urls:
        pusher = Pusher(
            urls=push_urls,  # type: ignore[arg-type]
            deliveries=deliveries,
            clock=reactor,
            now=now,
            db=db,
            kek=kek,
            client=client,
            backoff=backoff,
            metrics=metrics,
            node_id=node_id,
        )
        pusher.setServiceParent(top)

    def queued(peer: str) -> None:
        sender = senders.get(peer)
        if sender is not None:
            sender.wake()

    def delivered(authority: str) -> None:
        waiters.notify(authority)
        if pusher is not None:
            pusher.wake(authority)

    pipeline = Pipeline(
        node_id=node_id,
        now=now,
        db=db,
        cpu=cpu.run,
        signer=signer,
        kek=kek,
        trust=trust,
        replay_window_seconds=config.limits.replay_window_seconds,
        catalogues=catalogues,
        metrics=metrics,
        push_authorities=frozenset(push_urls),
        on_queued=queued,
        on_delivery=delivered,
        on_received=localizer.start_translations,
        published=directory.published,
    )

    def peer_get(peer: str, path: str) -> Deferred[bytes | None]:
        """GET ``path`` of a peer's API: the body on 200, None on 304, else Unavailable.

        A redirect is never followed (PEER_REDIRECTED), nor an encoded answer read.
        """
        url = peer_urls.get(peer)
        if url is None:
            return fail(NotFound(f"no URL is configured for peer {peer}"))

        def body(answer: Any) -> bytes | None:
            if answer.status == 304:
                return None
            if answer.status != 200:
                raise Unavailable(f"peer {peer} answered HTTP {answer.status}")
            return bytes(answer.body)

        return client.get(url.rstrip("/") + path).addCallback(body)

    def fetch_peer_tracking(peer: str, exchange_id: str) -> Deferred[bytes | None]:
        def not_cached(body: bytes | None) -> bytes:
            if body is None:  # nothing was asked conditionally: a 304 is no answer
                raise Unavailable(f"peer {peer} answered HTTP 304 to a tracking query")
            return body

        path = f"/peer/v1/exchanges/{quote(exchange_id, safe='')}"
        return peer_get(peer, path).addCallback(not_cached)

    tracking = TrackingQueries(db, node_id, fetch_peer_tracking, kek=kek, render=localizer.render)

    def site(
        resource: Resource, name: str, max_connections: int, max_body_bytes: int
    ) -> LimitedSite:
        limits = config.limits
        return LimitedSite(
            resource,
            reactor=reactor,
            max_body_bytes=max_body_bytes,
            request_deadline_seconds=limits.request_deadline_seconds,
            handshake_timeout_seconds=limits.handshake_timeout_seconds,
            max_header_bytes=limits.max_header_bytes,
            max_connections=max_connections,
            name=name,
            on_connection_refused=metrics.connections_refused.labels(name).inc,
        )

    api_guard = api_root(
        pipeline=pipeline,
        deliveries=deliveries,
        tracking=tracking,
        identify=lambda cert: authority_of_certificate(
            cert, trust.national_certificates, trust.raw.revoked, now()
        ),
        max_wait=config.limits.long_poll_seconds,
        extra={b"authorities": AuthoritySearchResource(LiveSearch(directory))}
        | (api_resources or {}),
    )
    api_site = site(api_guard, "api", config.api.max_connections, config.limits.max_body_bytes)
    peer_guard = peer_root(
        pipeline=pipeline,
        tracking=tracking,
        identify=lambda cert: peer_of_certificate(cert, trust.peer_tls(), trust.raw.revoked, now()),
        extra={b"directory": DirectoryResource(directory, signer.sign, clock=reactor)}
        | (peer_resources or {}),
    )
    peer_site = site(peer_guard, "peer", config.peer.max_connections, config.limits.max_body_bytes)
    api_tls = ReloadableServerOptions(keys.tls.key, keys.tls.certificate, [keys.ca.certificate])

    def peer_cas() -> list[Any]:
        return list(trust.peer_cas().values()) or [keys.ca.certificate]

    peer_tls = ReloadableServerOptions(keys.tls.key, keys.tls.certificate, peer_cas())

    def health_check() -> Deferred[Any]:
        return db.run_txn(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())

    health = health_root(
        health_check,
        metrics.registry,
        getattr(translation.translator, "callback_resource", None),
    )

    def reload_peer_urls() -> list[str]:
        """Re-read the known peers' URLs (a peer moved, or was started on port 0); moved ones."""
        try:
            urls = {p.id: p.url for p in load_config(node_dir).peers if p.id in peer_urls}
        except ConfigurationError:
            log.failure("Peer URLs not reloaded; the node keeps its current ones")
            return []
        moved = [peer for peer, url in urls.items() if peer_urls[peer] != url]
        for peer in moved:
            peer_urls[peer] = urls[peer]
            senders[peer].set_url(urls[peer])
        return moved

    def reload_trust() -> TrustChanges:
        """The one trust reload: stores, listener contexts, outbound pins, open connections."""
        changes = trust.reload()
        moved = reload_peer_urls()
        peer_tls.set_client_cas(peer_cas())
        policy.set_peers(pinned_servers())
        for peer in moved:
            sync.sync_peer_soon(peer)
        closed = api_guard.close_untrusted(api_site.channels)
        closed += peer_guard.close_untrusted(peer_site.channels)
        log.info(
            "Trust reloaded: national systems {national} (+{national_added} "
            "-{national_removed}), peers {peers} (+{peers_added} -{peers_removed}), "
            "revoked {revoked} (+{revoked_added}); closed {closed} connection(s) "
            "no longer trusted",
            national=changes.national_total,
            national_added=changes.national_added,
            national_removed=changes.national_removed,
            peers=changes.peers_total,
            peers_added=changes.peers_added,
            peers_removed=changes.peers_removed,
            revoked=changes.revoked_total,
            revoked_added=changes.revoked_added,
            closed=closed,
        )
        return changes

    def fetch_directory(peer: str, since: int | None) -> Deferred[bytes | None]:
        return peer_get(peer, "/peer/v1/directory" + ("" if since is None else f"?since={since}"))

    sync = DirectorySyncService(
        directory,
        lambda: sorted(peer_urls),
        fetch_directory,
        clock=reactor,
        on_update=lambda update: reload_trust(),
    )
    sync.setServiceParent(top)

    health_site = site(health, "health", config.metrics.max_connections, 4096)
    # Listeners last: they stop first at shutdown, before the pools they feed.
    api = Listener(
        "national-system API",
        lambda: reactor.listenTCP(
            config.api.port,
            api_site.listening_factory(api_tls),
            backlog=LISTEN_BACKLOG,
            interface=config.api.host,
        ),
        api_site,
    )
    peer_listener = Listener(
        "peer API",
        lambda: reactor.listenTCP(
            config.peer.port,
            peer_site.listening_factory(peer_tls),
            backlog=LISTEN_BACKLOG,
            interface=config.peer.host,
        ),
        peer_site,
    )
    health_listener = Listener(
        "health and metrics",
        lambda: reactor.listenTCP(
            config.metrics.port, health_site.listening_factory(), interface=config.metrics.host
        ),
        health_site,
    )
    for listener in (api, peer_listener, health_listener):
        listener.setServiceParent(top)
    PortsFile(node_dir, api, peer_listener, health_listener).setServiceParent(top)

    class _Closer(Service):
        name = "https-client"

        def stopService(self) -> Deferred[Any]:
            super().stopService()
            waiters.cancel_all()
            d = client.close()
            d.addBoth(lambda _: translation.close())
            return d

    _Closer().setServiceParent(top)

    parts = NodeParts(
        config=config,
        db=db,
        pipeline=pipeline,
        deliveries=deliveries,
        tracking=tracking,
        metrics=metrics,
        senders=senders,
        api=api,
        peer=peer_listener,
        health=health_listener,
        client=client,
        trust=trust,
        reload_trust=reload_trust,
    )
    return top, parts


__all__ = ["Listener", "NodeParts", "build_node"]
