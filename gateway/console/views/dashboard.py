"""Dashboard: node health, peers, queues, dead letters, throughput and errors, expiring certificates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from gateway.console.registry import OPERATOR, Context, Page, page
from gateway.service.metrics import peer_up
from gateway.storage.console_views import exchange_counts_txn, peer_delivery_txn
from gateway.storage.outbox import dead_letters_txn, outbox_depth_txn

#: Certificates expiring within this many days are flagged.
EXPIRY_WARNING_DAYS = 60

#: Each figure of the dashboard and the Prometheus metric that carries it
#: (docs/metrics.md), so that an alert can watch what an operator sees here.
DASHBOARD_METRICS = {
    "node health": "imi_database_up",
    "peers reachable": "imi_peer_up",
    "queue depth per peer": "imi_outbox_messages",
    "dead letters": "imi_outbox_messages",
    "documents accepted": "imi_documents_accepted_total",
    "documents refused (error rate)": "imi_documents_refused_total",
    "documents sent": "imi_envelope_documents_sent_total",
    "send failures (failure rate)": "imi_envelope_send_failures_total",
    "exchanges by state": "imi_exchanges",
    "certificates nearing expiry": "imi_certificate_expiry_seconds",
    "console sessions": "imi_console_sessions",
}


@dataclass(frozen=True)
class ExpiringCertificate:
    what: str
    not_after: datetime
    days: int


def _expiring(ctx: Context) -> list[ExpiringCertificate]:
    deps, now = ctx.deps, ctx.now
    named: list[tuple[str, x509.Certificate]] = list(deps.node_certificates)
    raw = deps.trust.raw
    for peer_id, peer in sorted(raw.peers.items()):
        named += [
            (f"peer {peer_id} {kind}", getattr(peer, kind)) for kind in ("ca", "signing", "tls")
        ]
    for authority, certificates in sorted(raw.national.items()):
        named += [(f"national system {authority}", c) for c in certificates]
    out = []
    for what, cert in named:
        not_after = cert.not_valid_after_utc
        if not_after - now <= timedelta(days=EXPIRY_WARNING_DAYS):
            out.append(ExpiringCertificate(what, not_after, (not_after - now).days))
    return sorted(out, key=lambda e: e.not_after)


def _counter_total(deps: Any, name: str) -> float:
    total = 0.0
    for metric in deps.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


@page("dashboard", roles=OPERATOR, nav="nav.dashboard", order=10)
async def dashboard(ctx: Context) -> Page:
    deps = ctx.deps
    healthy = True
    try:
        await deps.db.run_txn(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
    except Exception:  # the page says so; the health endpoint has the detail
        healthy = False
    depth = await deps.db.run_txn(outbox_depth_txn)
    delivery = await deps.db.run_txn(peer_delivery_txn)
    dead = await deps.db.run_txn(dead_letters_txn, limit=1000)
    counts = await deps.db.run_txn(exchange_counts_txn)
    queues: dict[str, dict[str, int]] = {}
    for d in depth:
        queues.setdefault(d.peer_node, {})[d.state] = d.count
    peers = []
    for peer in deps.config.peers:
        status = delivery.get(peer.id)
        trusted = peer.id in deps.trust.peer_ids
        dead_letters = queues.get(peer.id, {}).get("dead", 0)
        up = peer_up(
            status.retrying if status else 0,
            dead_letters,
            status.last_sent_at if status else None,
        )
        peers.append(
            {
                "id": peer.id,
                "trusted": trusted,
                "reachable": trusted and up,
                "retrying": status.retrying if status else 0,
                "last_error": status.last_error if status else None,
                "last_sent": status.last_sent_at if status else None,
                "pending": queues.get(peer.id, {}).get("pending", 0)
                + queues.get(peer.id, {}).get("inflight", 0),
                "dead": dead_letters,
            }
        )
    minutes = max((ctx.now - deps.started_at).total_seconds() / 60.0, 1.0)
    accepted = _counter_total(deps, "imi_documents_accepted_total")
    refused = _counter_total(deps, "imi_documents_refused_total")
    sent = _counter_total(deps, "imi_envelope_documents_sent_total")
    failures = _counter_total(deps, "imi_envelope_send_failures_total")
    rates = {
        "accepted": accepted,
        "refused": refused,
        "sent": sent,
        "failures": failures,
        "accepted_per_min": accepted / minutes,
        "sent_per_min": sent / minutes,
        "error_rate": 100.0 * refused / (accepted + refused) if accepted + refused else 0.0,
        "failure_rate": 100.0 * failures / (sent + failures) if sent + failures else 0.0,
        "since": deps.started_at,
    }
    return Page(
        "dashboard.html",
        {
            "healthy": healthy,
            "peers": peers,
            "dead_count": len(dead),
            "exchange_counts": sorted(counts.items()),
            "rates": rates,
            "expiring": _expiring(ctx),
            "warning_days": EXPIRY_WARNING_DAYS,
        },
    )
