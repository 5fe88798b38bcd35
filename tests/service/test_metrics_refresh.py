"""The refreshed gauges follow the node's clock; an expiring certificate is warned about daily."""

from __future__ import annotations

from datetime import timedelta

from twisted.logger import globalLogPublisher

from gateway.core import pki
from gateway.service.metrics import MetricsRefresher, NodeMetrics, WatchedCertificate
from tests.service.clocked import clocked_node
from tests.storage.conftest import T0


def expiry(metrics: NodeMetrics) -> dict[str, float]:
    """Seconds left by owner, from the certificate-expiry gauge's samples."""
    return {
        s.labels["owner"]: s.value
        for family in metrics.registry.collect()
        if family.name == "imi_certificate_expiry_seconds"
        for s in family.samples
    }


def test_gauges_refresh_on_the_clock_and_expiry_is_warned_once_a_day(tmp_path) -> None:
    node = clocked_node(tmp_path)
    metrics = node.runtime.metrics
    expiring = pki.make_ca("NO", now=T0, days=30).certificate
    lasting = pki.make_ca("NO", now=T0, days=3650).certificate
    watched = [
        WatchedCertificate("node", "NO", "ca", expiring),
        WatchedCertificate("peer", "PT", "ca", lasting),
    ]
    warnings: list[dict[str, object]] = []

    def observe(event: dict[str, object]) -> None:
        if "expires in" in str(event.get("log_format", "")):
            warnings.append(event)

    globalLogPublisher.addObserver(observe)
    refresher = MetricsRefresher(
        metrics,
        node.db,
        node.runtime.clock,
        interval=60,
        peers=lambda: ["PT"],
        authorities=lambda: ["NO-HELSEDIR"],
        certificates=lambda: watched,
    )
    sample = metrics.registry.get_sample_value
    try:
        refresher.startService()
        node.clock.advance(0)
        for state in ("pending", "inflight", "dead"):
            assert sample("imi_outbox_messages", {"peer": "PT", "state": state}) == 0
        assert sample("imi_deliveries_pending", {"authority": "NO-HELSEDIR"}) == 0
        left = (expiring.not_valid_after_utc - T0).total_seconds()
        assert 29 * 86400 < left <= 30 * 86400
        assert expiry(metrics) == {
            "node": left,
            "peer": (lasting.not_valid_after_utc - T0).total_seconds(),
        }
        assert sample("imi_metrics_refreshed_timestamp_seconds") == T0.timestamp()
        assert [w["owner"] for w in warnings] == ["node"]  # the lasting one is not warned about

        node.clock.advance(60)
        assert sample("imi_metrics_refreshed_timestamp_seconds") == T0.timestamp() + 60
        assert expiry(metrics)["node"] == left - 60
        node.clock.pump([60.0] * 60)
        assert len(warnings) == 1  # once a day, not at every refresh
        node.clock.pump([60.0] * int(timedelta(days=1).total_seconds() // 60))
        assert len(warnings) == 2

        watched.pop(0)  # gone from the trust store: its sample goes too
        node.clock.advance(60)
        assert set(expiry(metrics)) == {"peer"}
    finally:
        globalLogPublisher.removeObserver(observe)
        refresher.stopService()
        node.stop()
