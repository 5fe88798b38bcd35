"""A running node's /metrics has samples for every metric docs/metrics.md lists.

Two real nodes on loopback. NO sends and receives documents, answers a
duplicate, refuses a malformed submission, fails to push to an authority's
callback, dead-letters a document to a stopped peer and keeps another one
pending; then its /metrics is scraped over its real listener. Every metric
in the table of docs/metrics.md must have samples there, so a metric listed
in the docs but never filled fails this test, and so does the queue depth of
issue 11 (`imi_outbox_messages` pending and dead).
"""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThread

from gateway.core.documents import to_xml
from gateway.storage.outbox import outbox_depth_txn
from gateway.testbed import NationalSystem, doctor_request, setup_nodes
from tests.nodes import start_node
from tests.waiting import until

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \|", re.MULTILINE)
AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD"]}
FAST_GIVE_UP = {"NO": "[outbound]\ninitial_backoff_seconds = 0.05\nmax_attempts = 1"}


def documented_metrics() -> list[str]:
    names = ROW.findall(DOC.read_text(encoding="utf-8"))
    assert len(names) >= 15, "the metrics table of docs/metrics.md was not found"
    return names


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def has_samples(name: str, scraped: dict[str, list[tuple[dict[str, str], float]]]) -> bool:
    # A histogram's samples are NAME_bucket, NAME_count and NAME_sum.
    return any(s == name or s in (f"{name}_bucket", f"{name}_count") for s in scraped)


def value(
    scraped: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    for got, v in scraped.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return -1.0


def configure(setups: dict, tmp_path: Path) -> None:
    config = setups["NO"].node_dir / "gateway.toml"
    text = config.read_text()
    # UDIR's callback does not answer: each push fails (and is retried).
    text = text.replace(
        'id = "NO-UDIR"\n', 'id = "NO-UDIR"\npush_url = "https://127.0.0.1:9/imi/deliveries"\n'
    )
    text = text.replace(
        "[metrics]\n", "[metrics]\nrefresh_seconds = 1\nkpi_refresh_seconds = 1\n", 1
    )
    config.write_text(text)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode("utf-8"))


@pytest_twisted.ensureDeferred
async def test_every_documented_metric_has_samples_on_a_running_node(tmp_path) -> None:
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config=FAST_GIVE_UP)
    configure(setups, tmp_path)
    nodes = {c: start_node(s) for c, s in setups.items()}
    from twisted.internet import reactor

    systems = {
        a: NationalSystem(reactor, setups[a[:2]], a) for ids in AUTHORITIES.values() for a in ids
    }
    helsedir, omd = systems["NO-HELSEDIR"], systems["PT-OMD"]
    now = datetime.now(UTC)
    try:
        # Received at NO: one pulled by HELSEDIR, one pushed (and failing) to UDIR.
        await omd.submit(omd.sign(to_xml(doctor_request("IMI-M-1", "PT-OMD", "NO-HELSEDIR", now))))
        await omd.submit(omd.sign(to_xml(doctor_request("IMI-M-2", "PT-OMD", "NO-UDIR", now))))
        pulled = await helsedir.pull(wait=20)
        assert len(pulled.deliveries) == 1
        await helsedir.pull(after=pulled.cursor)  # acknowledged: no longer pending
        # Submitted at NO and sent to PT; once more (a duplicate); and a refused one.
        sent = helsedir.sign(to_xml(doctor_request("IMI-M-3", "NO-HELSEDIR", "PT-OMD", now)))
        await helsedir.submit(sent)
        await helsedir.submit(sent)
        refused = await helsedir.submit_raw(b"<not-a-document/>")
        assert refused.status == 400
        assert len((await omd.pull(wait=20)).deliveries) == 1
        # PT stops: the next document to it is dead at once (max_attempts = 1) ...
        await nodes["PT"].stop()
        dead = helsedir.sign(to_xml(doctor_request("IMI-M-4", "NO-HELSEDIR", "PT-OMD", now)))
        await helsedir.submit(dead)

        async def dead_lettered() -> bool:
            rows = await nodes["NO"].parts.db.run_txn(outbox_depth_txn)
            return any(r.peer_node == "PT" and r.state == "dead" and r.count == 1 for r in rows)

        await until(dead_lettered)  # the sender tried it (after its linger) and gave up
        # ... and with NO's queue to PT stopped, one more stays pending.
        await maybeDeferred(nodes["NO"].parts.senders["PT"].stopService)
        pending = helsedir.sign(to_xml(doctor_request("IMI-M-5", "NO-HELSEDIR", "PT-OMD", now)))
        await helsedir.submit(pending)

        port = nodes["NO"].parts.health.port
        scraped: dict[str, list[tuple[dict[str, str], float]]] = {}

        async def refreshed() -> bool:
            nonlocal scraped
            scraped = samples(await deferToThread(scrape, port))
            return (
                value(scraped, "imi_outbox_messages", peer="PT", state="pending") == 1
                and value(scraped, "imi_outbox_messages", peer="PT", state="dead") == 1
                and value(scraped, "imi_push_failures_total", authority="NO-UDIR") >= 1
                and value(scraped, "imi_kpi_requests", window="30d", authority="PT-OMD") >= 1
            )

        await until(refreshed)
        missing = [name for name in documented_metrics() if not has_samples(name, scraped)]
        assert missing == []
        assert value(scraped, "imi_deliveries_pending", authority="NO-UDIR") == 1
        assert value(scraped, "imi_deliveries_pending", authority="NO-HELSEDIR") == 0
        assert value(scraped, "imi_documents_refused_total", listener="api") >= 1
        assert value(scraped, "imi_duplicates_total", listener="api") == 1
        assert value(scraped, "imi_dead_letters_total", peer="PT") == 1
        assert value(scraped, "imi_build_info", version=__import__("gateway").__version__) == 1
        expiry = {
            (labels["owner"], labels["id"], labels["role"])
            for labels, _ in scraped["imi_certificate_expiry_seconds"]
        }
        assert {("node", "NO", r) for r in ("ca", "signing", "tls")} <= expiry
        assert {("peer", "PT", r) for r in ("ca", "signing", "tls")} <= expiry
        assert {("national", a, "client") for a in ("NO-HELSEDIR", "NO-UDIR")} <= expiry
        days = value(scraped, "imi_certificate_expiry_seconds", owner="node", role="signing")
        assert 820 * 86400 < days <= 825 * 86400
    finally:
        for system in systems.values():
            await system.close()
        for node in nodes.values():
            if node.service.running:  # type: ignore[attr-defined]
                await node.stop()
