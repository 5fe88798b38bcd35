"""Prometheus metrics of one node.

Each node has its own ``CollectorRegistry`` (tests and the demo run two nodes
in one process). Labels carry codes, peers and document types only: never an
authority's personal data, a document id or a body.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    """The counters, gauges and histograms a node exports on /metrics."""

    def __init__(self) -> None:
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
            "Outbound messages per peer and state (refreshed periodically).",
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
