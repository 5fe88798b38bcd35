"""``imi-gateway bench``: a tiny run works and reports every field. Timings are never asserted."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.benchmarks import floor
from gateway.benchmarks.exchange import (
    Latency,
    _node_problems,
    exchange_index,
    summarize_collapsed,
)
from gateway.cli import build_parser
from gateway.core import pki
from gateway.core.certs import TrustStore
from gateway.core.documents import to_xml
from gateway.core.signing import Signer, verify
from gateway.testbed import doctor_answer, doctor_request

PHASE_FIELDS = {
    "mode",
    "offered_rate",
    "concurrency",
    "duration_s",
    "counted_s",
    "exchanges",
    "exchanges_per_s",
    "documents",
    "documents_per_s",
    "latency_ms",
    "latency_ms_by_type",
    "cpu_s",
    "cpu_us_per_document",
    "cpu_us_per_document_by_node",
    "documents_per_envelope",
    "errors",
    "incomplete",
    "pool_exhausted",
    "node_problems",
    "floor_us_per_document",
    "ratio_to_floor",
    "floor",
    "pulls",
    "notes",
}


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "bench",
            "exchange",
            "--quick",
            "--json",
            "--work-dir",
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(work.iterdir()) == []  # node directories removed afterwards
    return json.loads(done.stdout)


def test_quick_exchange_run_reports_every_field(quick_report) -> None:
    report = quick_report
    assert report["benchmark"] == "exchange"
    assert report["documents_per_exchange"] == 3
    assert report["signature_engine"] == "fast"
    assert report["machine"]["cpus"] >= 1 and report["machine"]["sqlite"]
    assert [p["mode"] for p in report["phases"]] == ["max", "rate"]
    for phase in report["phases"]:
        assert set(phase) == PHASE_FIELDS
        assert set(phase["latency_ms_by_type"]) == {"Request", "Acceptance", "Answer"}
        assert set(phase["cpu_s"]) == {"NO", "PT", "bench", "other", "stolen"}
        assert set(phase["documents_per_envelope"]) == {"NO->PT", "PT->NO"}
        assert set(phase["latency_ms"]) == {"count", "p50", "p95", "p99", "max"}
        assert set(phase["floor"]) == {"us_per_document", "batch_size", "by_document"}
        assert set(phase["floor"]["by_document"]) == {"Request", "Acceptance", "Answer"}
    assert set(report["peak_rss_mb"]) == {"NO", "PT", "bench"}
    assert set(report["targets"]) == {
        "exchanges_per_s>=300",
        "cost<=2x_floor",
        "p99_ms<100_at_half_load",
        "rss_mb<200_per_node",
    }


def test_quick_exchange_run_completes_exchanges_without_errors(quick_report) -> None:
    for phase in quick_report["phases"]:
        assert phase["errors"] == {}
        assert phase["exchanges"] > 0
        assert phase["documents"] >= phase["exchanges"]
        assert phase["latency_ms"]["count"] > 0
        assert (
            phase["latency_ms"]["p50"] <= phase["latency_ms"]["p99"] <= phase["latency_ms"]["max"]
        )
        assert phase["cpu_s"]["NO"] > 0 and phase["cpu_s"]["PT"] > 0
        assert phase["floor_us_per_document"] > 0
        assert phase["ratio_to_floor"] > 0
    closed, opened = quick_report["phases"]
    assert closed["concurrency"] == 16 and closed["offered_rate"] is None
    assert opened["offered_rate"] > 0 and opened["concurrency"] is None
    assert all(v > 0 for v in quick_report["peak_rss_mb"].values())


def test_bench_command_lists_the_exchange_benchmark() -> None:
    parser = build_parser()
    args = parser.parse_args(["bench", "exchange", "--quick", "--max"])
    assert args.quick and args.max and callable(args.func)
    help_text = subprocess.run(
        [sys.executable, "-m", "gateway", "bench"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 2
    assert "exchange" in help_text.stderr


def test_rate_and_max_modes_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "exchange", "--max", "--rate", "10"])


def _signed_documents():
    now = datetime.now(UTC)
    ca = pki.make_ca("NO", now=now)
    national = pki.issue_national_system(ca, "NO-HELSEDIR", now=now)
    node = pki.issue_node_signing(ca, "NO", now=now)
    signer = Signer(national.key, national.certificate)
    request = doctor_request("IMI-NO-FLOOR-1", "NO-HELSEDIR", "PT-OMD", now)
    docs = [signer.sign(to_xml(request)), signer.sign(to_xml(doctor_answer(request, now)))]
    return ca, node, docs


def test_floor_counts_every_operation_a_document_needs() -> None:
    _ca, node, docs = _signed_documents()
    measured = floor.measure_floor(
        docs, node_key=node.key, node_certificate=node.certificate, batch_size=4.4, repeat=3
    )
    assert measured.batch_size == 4
    result = measured.as_dict()
    assert set(result["by_document"]) == {"Request", "Answer"}
    for kind in result["by_document"].values():
        ops = kind["operations"]
        assert ops["parse+validate+verify document"]["per_document"] == 2
        assert ops["sign receipt (1 item)"]["per_document"] == 1
        assert ops["sign delivery"]["per_document"] == 1
        for shared in (
            "sign envelope (4 documents)",
            "parse+validate+verify envelope (4)",
            "base64-decode payloads (4)",
            "sign receipt (4 items)",
            "parse+validate+verify receipt (4)",
        ):
            assert ops[shared]["per_document"] == 0.25
        assert all(op["us"] > 0 for op in ops.values())
    assert measured.us_per_document > 0


def test_floor_signatures_are_real_ones_the_gateway_verifies() -> None:
    _ca, node, docs = _signed_documents()
    root = floor.parse(docs[0])
    root.remove(root[-1])  # the unsigned document
    der = node.certificate.public_bytes(serialization.Encoding.DER)
    signed = floor.sign(root, node.key, base64.b64encode(der).decode())
    verified = verify(signed, TrustStore(pinned=(node.certificate,)), now=datetime.now(UTC))
    assert verified.node_id == "NO"
    # ... and the floor's verifier refuses a tampered document.
    tampered = floor.parse(signed.replace(b"PT-OMD", b"PT-OMX"))
    with pytest.raises(ValueError, match="digest"):
        floor.verify(tampered, der, node.certificate.public_key())


def test_latency_percentiles_use_nearest_rank() -> None:
    lat = Latency.of([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert (lat.count, lat.p50, lat.p95, lat.p99, lat.max) == (100, 50, 95, 99, 100)
    assert Latency.of([]).count == 0


def test_message_ids_map_back_to_their_exchange_and_kind() -> None:
    assert exchange_index("IMI-NO-BENCH1M0-", "IMI-NO-BENCH1M0-17-3") == (17, "Answer")
    assert exchange_index("IMI-NO-BENCH1M0-", "IMI-NO-BENCH1M0-4-1") == (4, "Request")
    assert exchange_index("IMI-NO-BENCH1M0-", "IMI-NO-BENCH1R1-4-1") is None
    assert exchange_index("IMI-NO-BENCH1M0-", "IMI-NO-BENCH1M0-4-9") is None


def test_profile_summary_ranks_areas_and_functions_by_busy_samples() -> None:
    collapsed = (
        "run (gateway/node.py:1);Pipeline._admit_submission (gateway/service/pipeline.py:9);"
        "verify (gateway/core/signing.py:2) 30\n"
        "run (gateway/node.py:1);Database.run_txn_sync (gateway/storage/db.py:5);"
        "DefaultDialect.do_commit (sqlalchemy/engine/default.py:3) 10\n"
        "work (twisted/_threads/_threadworker.py:1);Condition.wait (threading.py:2) 99\n"
    )
    summary = summarize_collapsed(collapsed)
    assert summary.startswith("40 busy samples (99 idle left out)")
    assert "75.0  admission: verify, read, validate, receipt signing" in summary
    assert "25.0  database: COMMIT (waits for the disk)" in summary
    assert "75.0  verify (core/signing.py)" in summary
    assert "100.0  run (gateway/node.py)" in summary


def test_node_refusals_and_dead_letters_during_a_phase_are_reported() -> None:
    before = {"PT": {'imi_dead_letters_total{peer="NO"}': 1.0}}
    after = {
        "PT": {
            'imi_dead_letters_total{peer="NO"}': 3.0,
            'imi_envelope_documents_sent_total{peer="NO"}': 50.0,
        },
        "NO": {'imi_documents_refused_total{code="EXCHANGE_STATE_CONFLICT",listener="peer"}': 2.0},
    }
    assert _node_problems(before, after) == {
        'node PT dead_letters {peer="NO"}': 2,
        'node NO refused {code="EXCHANGE_STATE_CONFLICT",listener="peer"}': 2,
    }
