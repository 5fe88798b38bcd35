"""Prometheus metrics cover what the dashboard shows, and say the same.

Every figure of the dashboard names its metric (``DASHBOARD_METRICS``); each is
documented in docs/metrics.md and has samples on the running console node, and
the figures agree: each peer's reachability, the dead letters, the exchanges by
state, the console sessions.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.console.views.dashboard import DASHBOARD_METRICS
from tests.console.bed import ConsoleBed
from tests.console.conftest import Client
from tests.service.test_metrics_scrape import has_samples, samples, scrape, value
from tests.waiting import until_sync

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _dashboard(client: Client) -> tuple[dict[str, bool], int, dict[str, int]]:
    status, _, page = client.request("GET", "/dashboard")
    assert status == 200
    peers = {
        peer: "pill ok" in row
        for peer, row in re.findall(r'<tr id="peer-([A-Z]+)">(.*?)</tr>', page, re.S)
    }
    dead = re.search(r'id="dead-count">(\d+)<', page)
    assert dead
    states = {
        state: int(n)
        for state, n in re.findall(
            r'<tr class="exchange-state"><td>([a-z_]+)</td><td>(\d+)</td>', page
        )
    }
    return peers, int(dead.group(1)), states


def test_every_dashboard_figure_has_a_documented_metric_with_the_same_value(
    bed: ConsoleBed,
) -> None:
    documented = DOC.read_text(encoding="utf-8")
    for figure, metric in DASHBOARD_METRICS.items():
        assert f"| `{metric}` |" in documented, (figure, metric)
    client = Client(bed)
    assert client.login("olga") == 303
    status, _ = bed.api("POST", "/api/v1/documents", b"<not-signed/>")  # a refusal is counted
    assert status == 400

    def agree() -> bool:
        scraped = samples(scrape(bed.ports.metrics))
        peers, dead, states = _dashboard(client)
        missing = [m for m in DASHBOARD_METRICS.values() if not has_samples(m, scraped)]
        assert not missing, missing
        assert peers, "the dashboard lists no peer"
        return (
            value(scraped, "imi_database_up") == 1
            and value(scraped, "imi_console_sessions") >= 1
            and all(value(scraped, "imi_peer_up", peer=p) == float(up) for p, up in peers.items())
            and sum(v for labels, v in scraped["imi_outbox_messages"] if labels["state"] == "dead")
            == dead
            and {labels["state"]: int(v) for labels, v in scraped["imi_exchanges"] if v} == states
        )

    until_sync(agree, timeout=30)
    # The bed's peer PT was unreachable when its first document went dead: while nothing was
    # ever sent to it, both say so.
    scraped = samples(scrape(bed.ports.metrics))
    peers, _, _ = _dashboard(client)
    assert value(scraped, "imi_peer_up", peer="PT") == float(peers["PT"])
