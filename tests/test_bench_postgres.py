"""``bench exchange --database postgresql --workers N`` and ``bench scaling``.

A quick run on PostgreSQL with two workers per node completes without
errors and accounts for every process; the run's databases are created and
dropped; the scaling table is built from ``bench exchange`` reports. Timings
are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from gateway.benchmarks.exchange import BenchFailed, ExchangeOptions
from gateway.benchmarks.exchange.databases import node_databases
from gateway.benchmarks.exchange.options import check_database
from gateway.benchmarks.exchange.processes import _which_worker, cpu_seconds, start_time
from gateway.benchmarks.exchange.scaling import exchange_argv, format_table, row_of
from gateway.cli import build_parser
from tests.conftest import postgres_url


@pytest.fixture(scope="module")
def workers_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    url = postgres_url()
    work = tmp_path_factory.mktemp("bench-pg")
    argv = ["bench", "exchange", "--quick", "--max", "--json", "--database", "postgresql"]
    argv += ["--database-url", url, "--workers", "2", "--poll-wait", "0", "--work-dir", str(work)]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(work.iterdir()) == []
    return json.loads(done.stdout)


def test_quick_postgresql_run_with_two_workers_completes_without_errors(workers_report) -> None:
    report = workers_report
    assert report["workers"] == 2
    assert report["database"].startswith("postgresql")
    (phase,) = report["phases"]
    assert phase["errors"] == {} and phase["node_problems"] == {}
    assert phase["exchanges"] > 0 and phase["documents"] >= phase["exchanges"]
    assert phase["cpu_s"]["NO"] > 0 and phase["cpu_s"]["PT"] > 0
    assert phase["pulls"]["pulls"] >= phase["pulls"]["empty"] >= 0
    assert phase["ratio_to_floor"] > 0


def test_cpu_and_rss_are_read_from_the_supervisor_and_every_worker(workers_report) -> None:
    by_process = workers_report["peak_rss_mb_by_process"]
    assert set(by_process) == {
        f"{node} {which}"
        for node in ("NO", "PT")
        for which in ("supervisor", "worker 1", "worker 2")
    }
    assert all(v > 0 for v in by_process.values())
    for node in ("NO", "PT"):
        mine = [v for k, v in by_process.items() if k.startswith(f"{node} ")]
        assert workers_report["peak_rss_mb"][node] == pytest.approx(sum(mine), abs=0.2)
    assert set(workers_report["targets"]["rss_mb<200_per_node"]["measured"]) == set(by_process)


def _databases(url: str) -> set[str]:
    engine = create_engine(make_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT datname FROM pg_database"))}
    finally:
        engine.dispose()


def test_the_run_creates_a_database_per_node_and_drops_them() -> None:
    url = postgres_url()
    with node_databases("postgresql", url, ["NO", "PT"]) as extra:
        names = {make_url(v.split('"')[1]).database for v in extra.values()}
        assert set(extra) == {"NO", "PT"} and len(names) == 2
        assert names <= _databases(url)
    assert not names & _databases(url)
    with node_databases("sqlite", None, ["NO", "PT"]) as extra:
        assert extra == {}


def test_an_unreachable_server_is_a_bench_failure() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"
    with pytest.raises(BenchFailed, match="cannot create"):
        with node_databases("postgresql", url, ["NO"]):
            pass


def test_several_workers_need_postgresql() -> None:
    with pytest.raises(BenchFailed, match="needs --database postgresql"):
        check_database(ExchangeOptions(workers=2))
    with pytest.raises(BenchFailed, match="--database-url goes with"):
        check_database(ExchangeOptions(database_url="postgresql+psycopg://x/y"))
    check_database(ExchangeOptions(database="postgresql", workers=4))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "exchange", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: BENCH_FAILED")


def test_a_scrape_is_told_apart_by_start_time_then_resident_memory() -> None:
    me = os.getpid()
    started = start_time(me)
    rss = int(Path(f"/proc/{me}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    samples = {
        "process_start_time_seconds{}": started,
        "process_resident_memory_bytes{}": float(rss),
        "process_cpu_seconds_total{}": cpu_seconds(me),
    }
    assert _which_worker(samples, {me: started}) == me
    assert _which_worker(samples, {me: started + 5}) is None
    parent = os.getppid()  # same start time, other CPU time and memory: the closer one wins
    assert _which_worker(samples, {parent: started, me: started}) == me


def _exchange_report(workers: int) -> dict:
    rss = {f"NO worker {i}": 100.0 + i for i in range(1, workers + 1)}
    return {
        "peak_rss_mb": {"NO": sum(rss.values()), "bench": 90.0},
        "peak_rss_mb_by_process": rss,
        "phases": [
            {
                "exchanges_per_s": 100.0 * workers,
                "documents_per_s": 300.0 * workers,
                "cpu_us_per_document": 2000.0,
                "floor_us_per_document": 500.0,
                "ratio_to_floor": 4.0,
                "cpu_s": {"NO": 10.0, "PT": 12.0, "bench": 3.0, "other": 1.5, "stolen": 0.0},
                "counted_s": 27.0,
                "latency_ms": {"p99": 80.0},
                "documents_per_envelope": {"NO->PT": 4.0, "PT->NO": None},
                "errors": {},
                "incomplete": 0,
                "notes": [],
            }
        ],
    }


def test_scaling_rows_come_from_exchange_reports_as_one_table() -> None:
    rows = [row_of(_exchange_report(n), n, 1) for n in (1, 2, 4)]
    assert [r.exchanges_per_s for r in rows] == [100.0, 200.0, 400.0]
    assert rows[2].max_process_rss_mb == 104.0 and rows[0].node_cpu_s == 22.0
    table = format_table(rows).splitlines()
    assert table[0].startswith("| workers | exchanges/s |")
    assert len(table) == 5
    assert table[4].startswith("| 4 | 400.0 | 1,200 | 2,000 | 500 | 4.0x | 22.0 / 27 s | 1.5 |")


def test_scaling_runs_bench_exchange_on_postgresql_per_worker_count() -> None:
    args = build_parser().parse_args(
        ["bench", "scaling", "--quick", "--duration", "20", "--database-url", "postgresql://h/d"]
    )
    assert isinstance(args, argparse.Namespace) and args.workers == "1,2,4"
    argv = exchange_argv(args, 4)
    assert argv[:6] == ["bench", "exchange", "--max", "--json", "--database", "postgresql"]
    assert argv[argv.index("--workers") + 1] == "4"
    assert argv[argv.index("--poll-wait") + 1] == "0"
    assert "--quick" in argv and argv[argv.index("--duration") + 1] == "20.0"
    assert argv[argv.index("--database-url") + 1] == "postgresql://h/d"
    # the arguments are ones bench exchange takes
    build_parser().parse_args(argv)
