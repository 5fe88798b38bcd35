"""Prometheus metrics of one node, and the service that refreshes its gauges.

Each node has its own ``CollectorRegistry`` (tests and the demo run two nodes
in one process). Labels carry codes, peers, authority ids, certificate roles
and fingerprints only: never personal data, a document id or a body.

Counters are counted where things happen (pipeline, senders, deliveries,
listeners). Gauges that describe stored state (queue depths, pending
deliveries, peer reachability, exchanges by state, console sessions,
whether the database answers) and certificate expiry are set by :class:`MetricsRefresher`,
which reads them every ``[metrics] refresh_seconds`` on the node's clock.
The metrics are listed in docs/metrics.md; a test scrapes a running node and
checks that every metric of that table has samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.gc_collector import GCCollector
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway import __version__
from gateway.core.certs import fingerprint
from gateway.core.clock import Clock, Timer
from gateway.core.lifecycle import State
from gateway.storage.console_views import (
    active_sessions_txn,
    exchange_counts_txn,
    peer_delivery_txn,
)
from gateway.storage.db import Database
from gateway.storage.deliveries import delivery_backlog_txn
from gateway.storage.outbox import outbox_depth_txn

log = Logger()

#: Outbox states the queue-depth gauge always has a sample for, per known peer.
OUTBOX_STATES = ("pending", "inflight", "dead")
#: Listener names of ``imi_connections_refused_total``.
LISTENERS = ("api", "peer", "health")
#: A certificate this close to its notAfter is warned about in the log (once a day).
EXPIRY_WARNING = timedelta(days=60)
EXPIRY_WARNING_EVERY = timedelta(days=1)

del GC_COLLECTOR  # the process-wide collector: each node's registry gets its own


class NodeMetrics:
    """The counters, gauges and histograms a node exports on /metrics."""

    def __init__(self, *, version: str = __version__) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "imi_documents_accepted_total",
            "Documents accepted, by direction (submitted, received) and document type.",
            ["direction", "document_type"],
            registry=self.registry,
        )
        self.refused = Counter(
            "imi_documents_refused_total",
            "Documents or requests refused, by listener and error code.",
            ["listener", "code"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "imi_duplicates_total",
            "Retried submissions or envelopes answered with their original receipt.",
            ["listener"],
            registry=self.registry,
        )
        self.sent = Counter(
            "imi_envelope_documents_sent_total",
            "Documents acknowledged by a peer node.",
            ["peer"],
            registry=self.registry,
        )
        self.send_failures = Counter(
            "imi_envelope_send_failures_total",
            "Failed attempts to send an envelope to a peer, by error code.",
            ["peer", "code"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "imi_dead_letters_total",
            "Documents moved to the dead-letter state.",
            ["peer"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "imi_outbox_messages",
            "Outbound messages per peer and state (pending, inflight, dead; refreshed periodically).",
            ["peer", "state"],
            registry=self.registry,
        )
        self.queue_oldest = Gauge(
            "imi_outbox_oldest_message_age_seconds",
            "Age of the oldest outbound message per peer and state (0: none; refreshed periodically).",
            ["peer", "state"],
            registry=self.registry,
        )
        self.envelope_seconds = Histogram(
            "imi_envelope_round_trip_seconds",
            "Time from sending an envelope to a verified receipt.",
            ["peer"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "imi_deliveries_total",
            "Deliveries handed to national systems, by mode (pull, push).",
            ["mode"],
            registry=self.registry,
        )
        self.deliveries_pending = Gauge(
            "imi_deliveries_pending",
            "Deliveries not yet acknowledged or pushed, per receiving authority "
            "(refreshed periodically).",
            ["authority"],
            registry=self.registry,
        )
        self.deliveries_oldest = Gauge(
            "imi_deliveries_oldest_pending_age_seconds",
            "Age of the oldest pending delivery per receiving authority (0: none; "
            "refreshed periodically).",
            ["authority"],
            registry=self.registry,
        )
        self.push_failures = Counter(
            "imi_push_failures_total",
            "Failed attempts to push a delivery to a national system's callback.",
            ["authority"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "imi_connections_refused_total",
            "Connections closed on accept because the listener's max_connections were open.",
            ["listener"],
            registry=self.registry,
        )
        self.audit_checkpoint_conflicts = Counter(
            "imi_audit_checkpoint_conflicts_total",
            "Audit checkpoints a peer sent that do not extend the one held from it "
            "(the peer rewrote its history), by peer.",
            ["peer"],
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "imi_certificate_expiry_seconds",
            "Seconds until a certificate's notAfter (negative once expired), by owner "
            "(node, peer, national), id, role and SHA-256 fingerprint (refreshed periodically).",
            ["owner", "id", "role", "sha256"],
            registry=self.registry,
        )
        self.peer_up = Gauge(
            "imi_peer_up",
            "1 if the last sending to the peer succeeded (nothing waits for a retry, and not "
            "only dead letters with nothing ever sent), else 0 (refreshed periodically).",
            ["peer"],
            registry=self.registry,
        )
        self.exchanges = Gauge(
            "imi_exchanges",
            "Exchanges stored at this node, by lifecycle state (refreshed periodically).",
            ["state"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "imi_database_up",
            "1 if the last refresh read the database, else 0 (refreshed periodically).",
            registry=self.registry,
        )
        self.console_sessions = Gauge(
            "imi_console_sessions",
            "Admin console sessions not expired, shared by every process of the node "
            "(refreshed periodically).",
            registry=self.registry,
        )
        self.refreshed = Gauge(
            "imi_metrics_refreshed_timestamp_seconds",
            "When the refreshed gauges were last read from the database (Unix time).",
            registry=self.registry,
        )
        build = Info("imi_build", "The running gateway's version.", registry=self.registry)
        build.info({"version": version})
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        for listener in LISTENERS:
            self.connections_refused.labels(listener)

    def know_peers(self, peers: Iterable[str]) -> None:
        """Give each peer's counters a sample (0) so that rates and alerts work from the start."""
        for peer in peers:
            self.sent.labels(peer)
            self.dead_letters.labels(peer)

    def know_push_authorities(self, authorities: Iterable[str]) -> None:
        """Give each push authority's failure counter a sample (0)."""
        for authority in authorities:
            self.push_failures.labels(authority)


def peer_up(retrying: int, dead: int, last_sent_at: datetime | None) -> bool:
    """Whether a peer counts as reachable, from its stored outbound state (the dashboard and
    ``imi_peer_up`` both ask this): nothing waits for a retry after a failure, and it is not
    the case that documents went dead while nothing was ever sent."""
    return retrying == 0 and not (dead > 0 and last_sent_at is None)


@dataclass(frozen=True)
class WatchedCertificate:
    """A certificate whose expiry the node exports: whose it is, what for."""

    owner: str  # "node" (this node's own), "peer" (a peer node's), "national" (a national system's)
    id: str  # the node id or authority id
    role: str  # "ca", "signing", "tls" or "client"
    certificate: x509.Certificate


class _LabelledValues:
    """Sets a labelled gauge to a full set of values, removing label sets no longer present."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._present: set[tuple[str, ...]] = set()

    def replace(self, values: Mapping[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            self._gauge.labels(*labels).set(value)
        for gone in self._present - set(values):
            self._gauge.remove(*gone)
        self._present = set(values)


class MetricsRefresher(Service):
    """Reads the gauges of stored state and certificate expiry, now and every ``interval`` s.

    ``peers`` and ``authorities`` name the peers and authorities that always
    get a sample (0 when nothing is queued for them); ``certificates`` lists
    the certificates to watch (called at each refresh, so a trust reload or
    a key rotation shows at the next one). A certificate within
    :data:`EXPIRY_WARNING` of its notAfter is logged at warn, once a day.
    """

    name = "metrics-refresh"

    def __init__(
        self,
        metrics: NodeMetrics,
        db: Database,
        clock: Clock,
        *,
        interval: float,
        peers: Callable[[], Iterable[str]],
        authorities: Callable[[], Iterable[str]],
        certificates: Callable[[], Iterable[WatchedCertificate]],
    ) -> None:
        self._metrics = metrics
        self._db = db
        self._clock = clock
        self._interval = interval
        self._peers = peers
        self._authorities = authorities
        self._certificates = certificates
        self._timer: Timer | None = None
        self._in_flight: Deferred[None] | None = None
        self._depth = _LabelledValues(metrics.queue_depth)
        self._oldest = _LabelledValues(metrics.queue_oldest)
        self._pending = _LabelledValues(metrics.deliveries_pending)
        self._pending_oldest = _LabelledValues(metrics.deliveries_oldest)
        self._expiry = _LabelledValues(metrics.certificate_expiry)
        self._peer_up = _LabelledValues(metrics.peer_up)
        self._exchanges = _LabelledValues(metrics.exchanges)
        self._warned: dict[str, float] = {}

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        self._schedule(0)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self._in_flight

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        d = self.refresh()

        def done(_: object) -> None:
            self._schedule(self._interval)

        d.addBoth(done)

    def refresh(self) -> Deferred[None]:
        """Read every refreshed gauge now (a failure is logged; the gauges keep their values)."""
        d: Deferred[None] = Deferred.fromCoroutine(self._refresh())
        self._in_flight = d

        def settled(result: None) -> None:
            if self._in_flight is d:
                self._in_flight = None

        def failed(failure: Failure) -> None:
            settled(None)
            self._metrics.database_up.set(0)
            log.failure("Refreshing the metrics failed; they keep their last values", failure)

        d.addCallbacks(settled, failed)
        return d

    async def _refresh(self) -> None:
        self._refresh_certificates()
        depth = await self._db.run_txn(outbox_depth_txn)
        backlog = await self._db.run_txn(delivery_backlog_txn)
        now = self._clock.now()
        counts: dict[tuple[str, ...], float] = {}
        oldest: dict[tuple[str, ...], float] = {}
        for peer in self._peers():
            for state in OUTBOX_STATES:
                counts[(peer, state)] = oldest[(peer, state)] = 0
        for row in depth:
            counts[(row.peer_node, row.state)] = row.count
            age = (now - row.oldest_created_at).total_seconds() if row.oldest_created_at else 0
            oldest[(row.peer_node, row.state)] = max(age, 0.0)
        self._depth.replace(counts)
        self._oldest.replace(oldest)
        pending: dict[tuple[str, ...], float] = {(a,): 0 for a in self._authorities()}
        pending_oldest = dict(pending)
        for item in backlog:
            pending[(item.authority_id,)] = item.count
            age = (now - item.oldest_created_at).total_seconds() if item.oldest_created_at else 0
            pending_oldest[(item.authority_id,)] = max(age, 0.0)
        self._pending.replace(pending)
        self._pending_oldest.replace(pending_oldest)
        delivery = await self._db.run_txn(peer_delivery_txn)
        up: dict[tuple[str, ...], float] = {}
        for peer in self._peers():
            status = delivery.get(peer)
            up[(peer,)] = float(
                peer_up(
                    status.retrying if status else 0,
                    int(counts.get((peer, "dead"), 0)),
                    status.last_sent_at if status else None,
                )
            )
        self._peer_up.replace(up)
        states = await self._db.run_txn(exchange_counts_txn)
        by_state: dict[tuple[str, ...], float] = {(str(state),): 0 for state in State}
        by_state.update({(state,): n for state, n in states.items()})
        self._exchanges.replace(by_state)
        self._metrics.console_sessions.set(await self._db.run_txn(active_sessions_txn, now=now))
        self._metrics.database_up.set(1)
        self._metrics.refreshed.set(self._clock.seconds())

    def _refresh_certificates(self) -> None:
        now, seconds = self._clock.now(), self._clock.seconds()
        values: dict[tuple[str, ...], float] = {}
        for watched in self._certificates():
            cert = watched.certificate
            sha256 = fingerprint(cert)
            left = (cert.not_valid_after_utc - now).total_seconds()
            values[(watched.owner, watched.id, watched.role, sha256)] = left
            last = self._warned.get(sha256)
            due = last is None or seconds - last >= EXPIRY_WARNING_EVERY.total_seconds()
            if left < EXPIRY_WARNING.total_seconds() and due:
                self._warned[sha256] = seconds
                log.warn(
                    "Certificate expires in {days} days: {owner} {id} {role} (sha256 {sha256}); "
                    "renew it (docs/operator-keys.md)",
                    days=int(left // 86400),
                    owner=watched.owner,
                    id=watched.id,
                    role=watched.role,
                    sha256=sha256,
                )
        self._expiry.replace(values)


__all__ = [
    "EXPIRY_WARNING",
    "LISTENERS",
    "OUTBOX_STATES",
    "MetricsRefresher",
    "NodeMetrics",
    "WatchedCertificate",
    "peer_up",
]
