"""``imi-gateway bench scaling``: the exchange benchmark on PostgreSQL with 1, 2, 4 workers.

Each row is one whole ``imi-gateway bench exchange --max --database
postgresql --workers N --json`` run in a child process (a Twisted reactor
runs once per process), one after the other: new node directories and new
databases for every row, the closed-loop phase, then the XML+crypto floor
measured in that same run. The table puts side by side what changes with
the worker count: exchanges per second, node CPU per document and its ratio
to the floor, and the CPU the rest of the machine used meanwhile (``other``:
on a shared machine a row is only comparable with rows of little ``other``;
``--repeat`` runs every worker count several times).

It reports figures and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from gateway.benchmarks.exchange.options import BenchFailed

DEFAULT_WORKERS = (1, 2, 4)


@dataclass(frozen=True)
class ScalingRow:
    workers: int
    run: int
    exchanges_per_s: float | None
    documents_per_s: float | None
    cpu_us_per_document: float | None
    floor_us_per_document: float | None
    ratio_to_floor: float | None
    node_cpu_s: float
    other_cpu_s: float
    counted_s: float
    p99_ms: float | None
    documents_per_envelope: dict[str, float | None]
    errors: dict[str, int]
    incomplete: int
    max_process_rss_mb: float
    notes: list[str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        default=",".join(map(str, DEFAULT_WORKERS)),
        metavar="N,N,...",
        help="worker counts, one row each, in this order (default 1,2,4)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="K", help="run every worker count K times"
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="seconds per row's phase (default 30)"
    )
    parser.add_argument("--warmup", type=float, metavar="S", help="seconds not counted (default 3)")
    parser.add_argument(
        "--concurrency", type=int, metavar="N", help="closed-loop submitters (default 48)"
    )
    parser.add_argument(
        "--ceiling", type=float, metavar="R", help="exchanges/s pre-signed (default 350)"
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="the PostgreSQL server (default $IMI_BENCH_POSTGRES_URL, else "
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres)",
    )
    parser.add_argument(
        "--poll-wait",
        type=int,
        default=0,
        metavar="S",
        help="the pullers' long-poll wait (default 0 here, as the recorded table was "
        "measured; see bench exchange --help)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s phases, fewer floor repeats (a smoke run)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def _worker_counts(spec: str) -> list[int]:
    try:
        counts = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise BenchFailed("--workers takes worker counts such as 1,2,4") from None
    if not counts or min(counts) < 1:
        raise BenchFailed("--workers takes worker counts such as 1,2,4")
    return counts


def exchange_argv(args: argparse.Namespace, workers: int) -> list[str]:
    """The ``bench exchange`` arguments of one row."""
    argv = ["bench", "exchange", "--max", "--json", "--database", "postgresql"]
    argv += ["--workers", str(workers), "--poll-wait", str(args.poll_wait)]
    if args.quick:
        argv.append("--quick")
    for name in ("duration", "warmup", "concurrency", "ceiling", "database_url"):
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def row_of(report: dict[str, Any], workers: int, number: int) -> ScalingRow:
    """One table row from a ``bench exchange --json`` report."""
    phase = report["phases"][0]
    cpu = phase["cpu_s"]
    rss = report.get("peak_rss_mb_by_process") or {
        k: v for k, v in report["peak_rss_mb"].items() if k != "bench"
    }
    return ScalingRow(
        workers=workers,
        run=number,
        exchanges_per_s=phase["exchanges_per_s"],
        documents_per_s=phase["documents_per_s"],
        cpu_us_per_document=phase["cpu_us_per_document"],
        floor_us_per_document=phase["floor_us_per_document"],
        ratio_to_floor=phase["ratio_to_floor"],
        node_cpu_s=round(cpu["NO"] + cpu["PT"], 3),
        other_cpu_s=cpu["other"],
        counted_s=phase["counted_s"],
        p99_ms=phase["latency_ms"]["p99"],
        documents_per_envelope=phase["documents_per_envelope"],
        errors=phase["errors"],
        incomplete=phase["incomplete"],
        max_process_rss_mb=max(rss.values()) if rss else 0.0,
        notes=phase.get("notes", []),
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def format_table(rows: list[ScalingRow]) -> str:
    """A Markdown table (docs/performance.md records it as printed)."""
    lines = [
        "| workers | exchanges/s | documents/s | CPU/doc µs | floor µs | ratio | node CPU s "
        "| other CPU s | p99 ms | docs/envelope NO->PT, PT->NO | max RSS/process MB | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        env = ", ".join(_fmt(v, 1) for v in r.documents_per_envelope.values())
        errors = ", ".join(f"{k} {v}" for k, v in r.errors.items()) or "none"
        if r.incomplete:
            errors += f"; {r.incomplete} incomplete"
        lines.append(
            f"| {r.workers} | {_fmt(r.exchanges_per_s, 1)} | {_fmt(r.documents_per_s)} "
            f"| {_fmt(r.cpu_us_per_document)} | {_fmt(r.floor_us_per_document)} "
            f"| {_fmt(r.ratio_to_floor, 1)}x | {r.node_cpu_s:.1f} / {r.counted_s:g} s "
            f"| {r.other_cpu_s:.1f} | {_fmt(r.p99_ms)} | {env} | {r.max_process_rss_mb:.0f} "
            f"| {errors} |"
        )
    notes = [f"{r.workers} workers: {n}" for r in rows for n in r.notes]
    if notes:
        lines.append("")
    return "\n".join(lines + [f"* note: {n}" for n in notes]) + "\n"


def run(args: argparse.Namespace) -> int:
    """``imi-gateway bench scaling``: one ``bench exchange`` child per row; the table."""
    counts = _worker_counts(args.workers)
    if args.repeat < 1:
        raise BenchFailed("--repeat must be at least 1")
    rows: list[ScalingRow] = []
    for number in range(1, args.repeat + 1):
        for workers in counts:
            print(
                f"bench scaling: {workers} workers (run {number} of {args.repeat})",
                file=sys.stderr,
                flush=True,
            )
            done = subprocess.run(
                [sys.executable, "-m", "gateway", *exchange_argv(args, workers)],
                stdout=subprocess.PIPE,
                check=False,
            )
            if done.returncode != 0:
                raise BenchFailed(
                    f"bench exchange with {workers} workers ended with status {done.returncode}"
                )
            rows.append(row_of(json.loads(done.stdout), workers, number))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(format_table(rows), end="")
    return 0
