"""The console's KPI page shows the figures of the KPI service, as `imi-gateway kpi` does."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from tests.console.bed import ConsoleBed, cli
from tests.console.conftest import Client


def test_the_kpi_page_shows_the_same_figures_as_the_kpi_command(bed: ConsoleBed) -> None:
    bed.submit_request(f"NO-HELSEDIR:KPI-{datetime.now(UTC):%H%M%S%f}")  # one more request
    start = (datetime.now(UTC) - timedelta(days=30)).date()
    end = (datetime.now(UTC) + timedelta(days=1)).date()
    client = Client(bed)
    assert client.login("olga") == 303
    status, _, page = client.request("GET", f"/kpis?from={start}&to={end}")
    assert status == 200
    total = re.search(r"<tr><td>Requests</td><td>total</td><td>(\d+)\.0 count</td>", page)
    assert total, page[:2000]

    # The page's period runs to the end of the "to" day: the command's --to is the next day.
    done = cli(
        "kpi",
        str(bed.setup.node_dir),
        "--from",
        f"{start}T00:00:00Z",
        "--to",
        f"{end + timedelta(days=1)}T00:00:00Z",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["total"]["requests"] >= 1
    assert int(total.group(1)) == figures["total"]["requests"]
    assert "Accepted within 7 days" in page or figures["total"]["acceptance_counted"] == 0
