"""The composition root: one node, built from its node directory, as a Twisted service tree.

Everything a node needs is created here, once, and handed to the parts that
use it (no part reaches for globals): configuration, keys (loaded once),
trust stores, the database and its thread pool, a CPU thread pool for
verification, signing and blocking file I/O, the pipeline, one sender per
peer, deliveries, tracking, metrics, on PostgreSQL the listener of other
processes' database notifications, and three listeners:

* the national-system API (HTTPS, client certificates issued by this node),
* the peer API (HTTPS, mutual TLS, pinned peer certificates),
* health and Prometheus metrics (plain HTTP; bind it to loopback).

What every service shares travels in one :class:`~gateway.service.runtime.Runtime`
(node id, clock, database, CPU pool, signer, sealer, metrics). The parts are
built in :mod:`gateway.node.services` (pools, senders, peer queries),
:mod:`gateway.node.listeners` (sites and listeners) and
:mod:`gateway.node.trust_reload` (the one trust reload).

The reactor is passed in; only ``gateway.commands.run`` (and the demo and
bench commands) import the global one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource

from gateway.adapters.timestamping import TSAClient
from gateway.adapters.translation import build_translation_service
from gateway.config import NodeConfig, load_config
from gateway.config.secrets import database_url
from gateway.core.access import Directory
from gateway.core.audit import Event, node_actor
from gateway.core.catalogue import CatalogueRegistry, load_catalogues
from gateway.core.clock import Clock
from gateway.core.coordinators import coordinator_copies, responsible_coordinator
from gateway.core.dataprotect import Sealer
from gateway.core.errors import ConfigurationError, GatewayError
from gateway.core.signing import Signer
from gateway.keystore import (
    audit_key_path,
    ensure_audit_key,
    load_data_kek,
    load_node_keys,
    node_paths,
    trust_listing,
)
from gateway.node.listeners import (
    LISTEN_BACKLOG,
    Listener,
    SiteFactory,
    build_console_listener,
    build_listeners,
)
from gateway.node.readiness import Readiness
from gateway.node.services import (
    Closer,
    CPUPool,
    OrderedMultiService,
    PeerAPI,
    PeerCheckpoints,
    backoff_of,
    build_senders,
    watched_certificates,
)
from gateway.node.trust_reload import (
    NodeIdentity,
    RotatingSigner,
    TrustPins,
    TrustReloader,
    record_trust_change,
)
from gateway.node_ports import PortsFile
from gateway.service.audit_checkpoints import AuditCheckpointService
from gateway.service.coordinators import CoordinatorDesk
from gateway.service.deadlines import DeadlineService
from gateway.service.deliveries import Deliveries, Pusher
from gateway.service.directory_search import LiveSearch
from gateway.service.directory_sync import DirectorySyncService
from gateway.service.kpi import KpiGauges, KpiQueries
from gateway.service.localization import Localizer
from gateway.service.metrics import MetricsRefresher, NodeMetrics
from gateway.service.outbound import PeerSender
from gateway.service.pipeline import Pipeline
from gateway.service.retention import RetentionService
from gateway.service.runtime import ReactorClock, Runtime
from gateway.service.tracking import TrackingQueries
from gateway.service.trust import NodeTrustStores, TrustChanges
from gateway.service.waiters import Waiters
from gateway.storage.audit import record_if_changed_txn
from gateway.storage.coordinators import CoordinatorRegistry
from gateway.storage.db import Database
from gateway.storage.directory_files import DirectoryStore
from gateway.storage.notify import DELIVERIES_CHANNEL, OUTBOX_CHANNEL, NotificationListener
from gateway.transport.api import api_root, peer_root
from gateway.transport.audit_checkpoints import audit_tree
from gateway.transport.client import HTTPSClient
from gateway.transport.coordination import coordination_tree
from gateway.transport.directory import AuthoritySearchResource, DirectoryResource
from gateway.transport.health import health_root
from gateway.transport.kpi import KpiResource
from gateway.transport.tls import (
    PinnedPeersPolicy,
    ReloadableServerOptions,
    authority_of_certificate,
    peer_of_certificate,
)

log = Logger()


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
    #: What ``GET /ready`` answers (gateway.node.readiness).
    readiness: Readiness
    #: The coordinators' desk (listings and actions) and the deadline service.
    coordinators: CoordinatorDesk | None = None
    deadlines: DeadlineService | None = None
    #: The admin console's listener (``[console] enabled``), else None.
    console: Listener | None = None
    #: The performance figures (docs/kpi.md): what the console and the API read.
    kpi: KpiQueries | None = None
    kpi_gauges: KpiGauges | None = None


def build_node(
    node_dir: str | Path,
    reactor: Any,
    *,
    clock: Clock | None = None,
    catalogues: CatalogueRegistry | None = None,
    api_resources: dict[bytes, Resource] | None = None,
    peer_resources: dict[bytes, Resource] | None = None,
    adopted: Mapping[str, int] | None = None,
) -> tuple[MultiService, NodeParts]:
    """Build the service tree of the node in ``node_dir`` (not started).

    ``clock`` is the one clock of every service (default: the reactor's time
    and the wall clock from it). ``adopted``: this is one worker process of a
    multi-process node (:mod:`gateway.node.workers`); it adopts the listening
    sockets its supervisor bound (file descriptors by ``api``, ``peer``,
    ``metrics``), and the supervisor, not the worker, writes ``ports.json``.
    """
    config = load_config(node_dir)
    keys = load_node_keys(node_dir)
    audit_key, audit_key_created = ensure_audit_key(node_dir)
    if audit_key_created:
        log.info(
            "Created the audit key {path}: this node directory had none",
            path=str(audit_key_path(node_dir)),
        )
    directory = DirectoryStore(node_dir)
    trust = NodeTrustStores(Path(node_dir), directory.authority_certificates)
    top = OrderedMultiService()

    # Checks first: the database (driver, connection, schema) before anything is built to run.
    db = Database(database_url(config), reactor=reactor, threads=config.database.pool_size)
    db.migrate()
    top.add(db)
    cpu = CPUPool(reactor, threads=2)
    top.add(cpu)
    runtime = Runtime(
        node_id=config.node_id,
        clock=clock or ReactorClock(reactor),
        db=db,
        cpu=cpu.run,
        signer=RotatingSigner(Signer(keys.signing.key, keys.signing.certificate)),
        sealer=Sealer(load_data_kek(node_dir)),
        metrics=NodeMetrics(),
        audit_key=audit_key,
    )
    clock, metrics = runtime.clock, runtime.metrics
    _record_unrecorded_changes(runtime, config, trust)
    waiters = Waiters(clock)
    peer_urls = {p.id: p.url for p in config.peers if p.id in trust.peer_ids}
    push_urls = {a.id: a.push_url for a in config.authorities if a.push_url}

    pins = TrustPins(keys, trust, peer_urls, push_urls)
    policy = PinnedPeersPolicy(keys.tls.key, keys.tls.certificate, pins.pinned_servers())
    client = HTTPSClient(reactor, policy, timeout_seconds=config.limits.request_deadline_seconds)
    peers = PeerAPI(client, peer_urls)
    senders = build_senders(runtime, config, trust, client, peer_urls)
    for sender in senders.values():
        top.add(sender)

    catalogues = catalogues or load_catalogues()
    translation = build_translation_service(
        config.translation.engine, config.translation.settings, reactor=reactor
    )
    localizer = Localizer(catalogues, config.node.languages, translation, reactor=reactor)
    deliveries = Deliveries(runtime, waiters=waiters, render=localizer.render)
    pusher: Pusher | None = None
    if push_urls:
        pusher = Pusher(
            runtime,
            urls=push_urls,
            deliveries=deliveries,
            client=client,
            backoff=backoff_of(config),
        )
        top.add(pusher)

    def queued(peer: str) -> None:
        sender = senders.get(peer)
        if sender is not None:
            sender.wake()

    def delivered(authority: str) -> None:
        waiters.notify(authority)
        if pusher is not None:
            pusher.wake(authority)

    def look_again() -> None:
        waiters.wake_all()
        for sender in list(senders.values()) + ([pusher] if pusher is not None else []):
            sender.wake()

    if db.dialect_name == "postgresql":  # other processes may store: wake on their commits
        handlers = {DELIVERIES_CHANNEL: delivered, OUTBOX_CHANNEL: queued}
        top.add(
            NotificationListener(db.engine, reactor=reactor, handlers=handlers, resync=look_again)
        )

    registry = CoordinatorRegistry(node_dir)

    def region_of(authority_id: str) -> str | None:
        entry = directory.records().get(authority_id)
        return None if entry is None else entry.region

    def coordinator_of(authority_id: str) -> str | None:
        found = responsible_coordinator(
            registry.all().values(), authority_id, region_of(authority_id)
        )
        return None if found is None else found.id

    def copies(document: Any, authority_id: str) -> tuple[str, ...]:
        return coordinator_copies(
            document, authority_id, registry.all().values(), region_of(authority_id)
        )

    pipeline = Pipeline(
        runtime,
        trust=trust,
        replay_window_seconds=config.limits.replay_window_seconds,
        catalogues=catalogues,
        push_authorities=frozenset(push_urls),
        on_queued=queued,
        on_delivery=delivered,
        on_received=localizer.received,
        published=directory.published,
        peer_access=config.access.rules(),
        peer_directories=lambda: peer_directories(directory, trust.peer_ids),
        deadlines=config.deadlines.policy(),
        copies=copies,
    )
    desk = CoordinatorDesk(
        runtime,
        pipeline=pipeline,
        trust=trust,
        coordinators=registry.all,
        region_of=region_of,
    )
    deadline_service = DeadlineService(
        runtime,
        pipeline=pipeline,
        policy=config.deadlines.policy(),
        interval_seconds=config.deadlines.check_interval_seconds,
        peers=lambda: trust.peer_ids,
        coordinator_of=coordinator_of,
    )
    tracking = TrackingQueries(runtime, peers.tracking, render=localizer.render)
    # Translations are cached in memory only: without an engine there is nothing to forget,
    # and the purge need not decrypt the erased documents to find them.
    forget = localizer.forget if config.translation.engine != "none" else None
    top.add(
        RetentionService(
            runtime,
            config.retention,
            forget=forget,
            # An envelope is accepted within the replay window of its creation time, which
            # may lie the window ahead of its receipt: past twice that, a replay is refused.
            keep_envelope_receipts_seconds=2 * config.limits.replay_window_seconds,
            pause_seconds=0.0,
        )
    )
    top.add(deadline_service)
    tsa = _tsa_client(config, reactor)
    checkpoints = AuditCheckpointService(
        runtime,
        interval=config.audit.checkpoint_interval,
        peer_ids=lambda: sorted(peer_urls),
        peers=PeerCheckpoints(peers),
        peer_trust=trust.envelopes,
        tsa=tsa,
    )
    top.add(checkpoints)
    metrics.know_peers(peer_urls)
    metrics.know_push_authorities(push_urls)
    top.add(
        MetricsRefresher(
            metrics,
            db,
            clock,
            interval=config.metrics.refresh_seconds,
            peers=lambda: sorted(peer_urls),
            authorities=lambda: [a.id for a in config.authorities],
            certificates=lambda: watched_certificates(identity.keys, trust),
        )
    )

    kpi = KpiQueries(runtime, coordinators=registry.all, region_of=region_of)
    kpi_gauges = KpiGauges(runtime, interval=config.metrics.kpi_refresh_seconds)
    top.add(kpi_gauges)

    site = SiteFactory(config, reactor, metrics)
    api_guard = api_root(
        pipeline=pipeline,
        deliveries=deliveries,
        tracking=tracking,
        identify=lambda cert: authority_of_certificate(
            cert, trust.national_certificates, trust.raw.revoked, clock.now()
        ),
        max_wait=config.limits.long_poll_seconds,
        extra={
            b"authorities": AuthoritySearchResource(LiveSearch(directory), run=cpu.run),
            b"coordination": coordination_tree(desk),
            b"kpi": KpiResource(kpi),
        }
        | (api_resources or {}),
    )
    api_site = site(api_guard, "api", config.api.max_connections, config.limits.max_body_bytes)
    peer_guard = peer_root(
        pipeline=pipeline,
        tracking=tracking,
        identify=lambda cert: peer_of_certificate(
            cert, trust.peer_tls(), trust.raw.revoked, clock.now()
        ),
        extra={
            b"directory": DirectoryResource(
                directory, runtime.signer.sign, clock=clock, run=cpu.run
            ),
            b"audit": audit_tree(checkpoints),
        }
        | (peer_resources or {}),
    )
    peer_site = site(peer_guard, "peer", config.peer.max_connections, config.limits.max_body_bytes)
    api_tls = ReloadableServerOptions(keys.tls.key, keys.tls.certificate, [keys.ca.certificate])
    peer_tls = ReloadableServerOptions(keys.tls.key, keys.tls.certificate, pins.peer_cas())
    assert isinstance(runtime.signer, RotatingSigner)
    identity = NodeIdentity(keys, runtime.signer, servers=[api_tls, peer_tls], client=policy)

    def health_check() -> Deferred[Any]:
        return db.run_txn(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())

    readiness = Readiness(
        running=lambda: bool(top.running),
        database=health_check,
        keys_loaded=lambda: runtime.signer is not None and keys.tls.key is not None,
        configured_peers=lambda: [p.id for p in config.peers],
        trusted_peers=lambda: trust.peer_ids,
    )
    health = health_root(
        health_check,
        metrics.registry,
        getattr(translation.translator, "callback_resource", None),
        ready=readiness.check,
    )

    def reload_peer_urls() -> list[str]:
        """Re-read the peers' URLs: a peer that moved (or started on port 0) is sent to at its
        new URL, a newly imported one gets its outbound queue; both are returned."""
        try:
            urls = {p.id: p.url for p in load_config(node_dir).peers if p.id in trust.peer_ids}
        except ConfigurationError:
            log.failure("Peer URLs not reloaded; the node keeps its current ones")
            return []
        moved = [peer for peer, url in urls.items() if peer_urls.get(peer, url) != url]
        for peer in moved:
            peer_urls[peer] = urls[peer]
            senders[peer].set_url(urls[peer])
        added = sorted(set(urls) - set(peer_urls))
        for peer in added:
            peer_urls[peer] = urls[peer]
            senders.update(build_senders(runtime, config, trust, client, {peer: urls[peer]}))
            top.add(senders[peer])  # starts at once: the node is running
            log.info("Outbound queue to newly imported peer {peer} started", peer=peer)
        return moved + added

    reload_trust = TrustReloader(
        trust,
        pins,
        policy=policy,
        peer_tls=peer_tls,
        guarded=[(api_guard, api_site), (peer_guard, peer_site)],
        reload_peer_urls=reload_peer_urls,
        peer_moved=lambda peer: sync.sync_peer_soon(peer),
        trust_changed=lambda changes: record_trust_change(runtime, trust.raw),
        identity=identity,
    )

    sync = DirectorySyncService(
        directory,
        lambda: sorted(peer_urls),
        peers.directory,
        clock=clock,
        run_io=cpu.run,
        on_update=lambda update: reload_trust(),
    )
    top.add(sync)

    health_site = site(health, "health", config.metrics.max_connections, 4096)
    # Listeners last: they stop first at shutdown, before the pools they feed.
    listeners = build_listeners(
        config,
        reactor,
        api_site=api_site,
        api_tls=api_tls,
        peer_site=peer_site,
        peer_tls=peer_tls,
        health_site=health_site,
        adopted=adopted,
    )
    for listener in listeners:
        top.add(listener)
    readiness.watch(listeners.api, listeners.peer)
    console: Listener | None = None
    if config.console.enabled:
        console = _console_listener(
            config,
            reactor,
            site,
            runtime,
            keys,
            trust,
            directory,
            catalogues,
            reload_trust,
            _waker(senders),
            adopted_fd=(adopted or {}).get("console"),
            coordinators=desk,
            kpi=kpi,
        )
        top.add(console)
    if adopted is None:
        top.add(PortsFile(node_dir, listeners.api, listeners.peer, listeners.health, console))
    top.add(
        Closer(
            waiters.cancel_all,
            client.close,
            translation.close,
            *([tsa.close] if tsa is not None else []),
        )
    )

    parts = NodeParts(
        config=config,
        db=db,
        pipeline=pipeline,
        deliveries=deliveries,
        tracking=tracking,
        metrics=metrics,
        senders=senders,
        api=listeners.api,
        peer=listeners.peer,
        health=listeners.health,
        client=client,
        trust=trust,
        reload_trust=reload_trust,
        readiness=readiness,
        coordinators=desk,
        deadlines=deadline_service,
        console=console,
        kpi=kpi,
        kpi_gauges=kpi_gauges,
    )
    return top, parts


def _record_unrecorded_changes(
    runtime: Runtime, config: NodeConfig, trust: NodeTrustStores
) -> None:
    """Record the configuration and trust this start runs with, where no entry has them yet.

    Commands record their own changes; a hand edit of ``gateway.toml`` or of
    the trust store made while the node was stopped shows here, as
    CONFIG_CHANGED / TRUST_CHANGED with this node as actor.
    """
    states = (
        (
            Event.CONFIG_CHANGED,
            "gateway.toml at start",
            node_paths(config.node_dir).config.read_bytes(),
        ),
        (Event.TRUST_CHANGED, "trust at start", trust_listing(trust.raw)),
    )
    for event, subject, state in states:
        recorded = runtime.db.run_txn_sync(
            record_if_changed_txn,
            at=runtime.clock.now(),
            event=event,
            actor=node_actor(runtime.node_id),
            message_id=subject,
            digest=runtime.audit_key.digest(state),
        )
        if recorded is not None:
            log.info("Recorded {event} in the audit log: {subject}", event=event, subject=subject)


def _tsa_client(config: NodeConfig, reactor: Any) -> TSAClient | None:
    """The RFC 3161 client of ``[audit] tsa_url`` (files relative to the node directory)."""
    audit = config.audit
    if not audit.tsa_url:
        return None

    def path(name: str | None) -> str | None:
        return None if name is None else str(config.node_dir / name)

    return TSAClient(
        reactor,
        audit.tsa_url,
        signer_ca_file=path(audit.tsa_ca_file),
        tls_ca_file=path(audit.tsa_tls_ca_file),
        timeout_seconds=audit.tsa_timeout_seconds,
    )


def peer_directories(directory: DirectoryStore, peers: Iterable[str]) -> dict[str, Directory]:
    """The cached directory of each peer (a peer without a readable one is left out)."""
    result: dict[str, Directory] = {}
    for peer in peers:
        try:
            cached = directory.cached(peer)
        except GatewayError:
            continue  # unreadable: logged by directory sync; the receiving node decides
        if cached is not None:
            result[peer] = cached.entries
    return result


def _waker(senders: dict[str, PeerSender]) -> Callable[[str], None]:
    def wake(peer: str) -> None:
        if peer in senders:
            senders[peer].wake()

    return wake


def _console_listener(
    config: NodeConfig,
    reactor: Any,
    site: SiteFactory,
    runtime: Runtime,
    keys: Any,
    trust: NodeTrustStores,
    directory: DirectoryStore,
    catalogues: CatalogueRegistry,
    reload_trust: Callable[[], object],
    wake_peer: Callable[[str], None],
    *,
    adopted_fd: int | None = None,
    coordinators: CoordinatorDesk | None = None,
    kpi: KpiQueries | None = None,
) -> Listener:
    """The admin console on its own listener (gateway.console), with what its pages use."""
    from gateway.console import ConsoleDeps, build_console, console_tls_options

    deps = ConsoleDeps(
        node_id=config.node_id,
        node_dir=config.node_dir,
        config=config,
        db=runtime.db,
        now=runtime.clock.now,
        run=runtime.cpu,
        metrics=runtime.metrics,
        sign=runtime.signer.sign,
        audit_key=runtime.audit_key,
        directory=directory,
        trust=trust,
        catalogues=catalogues,
        node_certificates=[
            ("node CA", keys.ca.certificate),
            ("node signing", keys.signing.certificate),
            ("node TLS", keys.tls.certificate),
        ],
        reload_trust=reload_trust,
        wake_peer=wake_peer,
        started_at=runtime.clock.now(),
        coordinators=coordinators,
        kpi=kpi,
    )
    console_site = site(build_console(deps), "console", config.console.max_connections, 1024 * 1024)
    tls = (
        console_tls_options(keys.tls.key, keys.tls.certificate, keys.ca.certificate)
        if config.console.tls
        else None
    )
    return build_console_listener(
        config, reactor, site=console_site, tls=tls, adopted_fd=adopted_fd
    )


__all__ = ["LISTEN_BACKLOG", "Listener", "NodeParts", "build_node"]
