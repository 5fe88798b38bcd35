"""The benchmark's report: its fields, the targets, and the text form."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# --- report -------------------------------------------------------------------------


@dataclass
class Latency:
    """Percentiles in milliseconds (nearest rank) of ``count`` samples."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        if not samples:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(samples)

        def rank(p: float) -> float:
            return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000

        return cls(len(ordered), rank(50), rank(95), rank(99), ordered[-1] * 1000)


@dataclass
class PhaseReport:
    mode: str
    offered_rate: float | None
    concurrency: int | None
    duration_s: float
    counted_s: float
    exchanges: int
    exchanges_per_s: float
    documents: int
    documents_per_s: float
    latency_ms: Latency
    latency_ms_by_type: dict[str, Latency]
    cpu_s: dict[str, float]
    cpu_us_per_document: float
    cpu_us_per_document_by_node: dict[str, float]
    documents_per_envelope: dict[str, float]
    errors: dict[str, int]
    incomplete: int
    pool_exhausted: bool
    #: Documents the nodes refused or dead-lettered in the phase (from their /metrics).
    node_problems: dict[str, int] = field(default_factory=dict)
    floor_us_per_document: float = math.nan
    ratio_to_floor: float = math.nan
    floor: dict[str, Any] = field(default_factory=dict)
    #: The pullers' requests in the phase (``pulls``) and how many handed out nothing (``empty``).
    pulls: dict[str, int] = field(default_factory=dict)
    #: What the figures of this phase may miss (e.g. a worker whose metrics were not reached).
    notes: list[str] = field(default_factory=list)


@dataclass
class BenchReport:
    benchmark: str
    command: str
    date: str
    machine: dict[str, Any]
    database: str
    signature_engine: str
    documents_per_exchange: int
    national_systems_verify: bool
    node_log_level: str
    phases: list[PhaseReport]
    peak_rss_mb: dict[str, float]
    targets: dict[str, Any]
    profiles: dict[str, str]
    #: Worker processes per node (1: ``imi-gateway run`` without ``--workers``).
    workers: int = 1
    #: Peak RSS of every node process (supervisor and workers); ``peak_rss_mb`` sums per node.
    peak_rss_mb_by_process: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(_finite(asdict(self)), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with NaN (no samples) as None, so the JSON is standard."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def machine_info() -> dict[str, Any]:
    import sqlite3

    import cryptography
    from lxml import etree

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
        "cryptography": cryptography.__version__,
    }


def _targets(phases: list[PhaseReport], rss: dict[str, float]) -> dict[str, Any]:
    """The issue's targets, each with the measured figure and whether it is met.

    ``rss``: peak RSS by node process (``NO``, or ``NO supervisor``, ``NO worker 1``, ...).
    """
    out: dict[str, Any] = {}
    closed = [p for p in phases if p.mode == "max"]
    opened = [p for p in phases if p.mode == "rate"]
    if closed:
        p = closed[0]
        out["exchanges_per_s>=300"] = {
            "measured": p.exchanges_per_s,
            "met": p.exchanges_per_s >= 300,
        }
        out["cost<=2x_floor"] = {"measured": p.ratio_to_floor, "met": p.ratio_to_floor <= 2}
    if opened:
        p = opened[0]
        out["p99_ms<100_at_half_load"] = {
            "measured": p.latency_ms.p99,
            "offered_rate": p.offered_rate,
            "met": p.latency_ms.p99 < 100,
        }
    nodes = {k: v for k, v in rss.items() if k != "bench"}
    out["rss_mb<200_per_node"] = {"measured": nodes, "met": all(v < 200 for v in nodes.values())}
    return out


# --- output -------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def format_report(report: BenchReport) -> str:
    lines = [
        f"imi-gateway bench exchange  {report.date}",
        f"machine: {report.machine['cpus']} CPUs, {report.machine['cpu_model']}, "
        f"Python {report.machine['python']}, SQLite {report.machine['sqlite']}, "
        f"signature engine {report.signature_engine}",
        f"an exchange = Request + Acceptance + Answer ({report.documents_per_exchange} signed "
        f"documents); national systems verify signatures (--verify): "
        f"{'yes' if report.national_systems_verify else 'no (status and digest only)'}",
        f"database: {report.database}",
        "",
    ]
    for p in report.phases:
        head = (
            f"closed loop, {p.concurrency} submitters"
            if p.mode == "max"
            else f"open loop at {p.offered_rate:g} exchanges/s"
        )
        lines.append(f"{p.mode} phase: {head}, {p.counted_s:g} s counted")
        lines.append(
            f"  exchanges/s {_fmt(p.exchanges_per_s)}   documents/s {_fmt(p.documents_per_s)}"
            f"   ({p.exchanges} exchanges, {p.documents} documents)"
        )
        lines.append("  one-way latency ms      p50      p95      p99      max    count")
        rows = [("all", p.latency_ms), *list(p.latency_ms_by_type.items())]
        for name, lat in rows:
            lines.append(
                f"    {name:<18}{_fmt(lat.p50):>9}{_fmt(lat.p95):>9}{_fmt(lat.p99):>9}"
                f"{_fmt(lat.max):>9}{lat.count:>9}"
            )
        cpu = ", ".join(f"{k} {v:.1f} s" for k, v in p.cpu_s.items())
        lines.append(f"  CPU in the counted window: {cpu} (other = rest of the machine)")
        by_node = ", ".join(f"{k} {_fmt(v, 0)}" for k, v in p.cpu_us_per_document_by_node.items())
        lines.append(
            f"  CPU per document (both nodes): {_fmt(p.cpu_us_per_document, 0)} us ({by_node})"
        )
        lines.append(
            f"  XML+crypto floor: {_fmt(p.floor_us_per_document, 0)} us per document"
            f"   ratio {_fmt(p.ratio_to_floor, 2)}x"
        )
        env = ", ".join(f"{k} {_fmt(v)}" for k, v in p.documents_per_envelope.items())
        lines.append(f"  documents per envelope: {env}")
        if p.pulls:
            lines.append(f"  pulls: {p.pulls.get('pulls', 0)} ({p.pulls.get('empty', 0)} empty)")
        if p.errors or p.incomplete or p.pool_exhausted or p.node_problems:
            lines.append(
                f"  errors {p.errors or 'none'}, incomplete exchanges {p.incomplete}"
                + (", PRE-SIGNED POOL EXHAUSTED (raise --ceiling)" if p.pool_exhausted else "")
            )
        for what, count in p.node_problems.items():
            lines.append(f"  NODE PROBLEM: {what}: {count}")
        for note in p.notes:
            lines.append(f"  note: {note}")
        lines.append("")
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in report.peak_rss_mb.items())
    lines.append(f"peak RSS: {rss}")
    if report.workers > 1:
        each = ", ".join(f"{k} {v:.0f}" for k, v in report.peak_rss_mb_by_process.items())
        lines.append(f"  per process (MB): {each}")
    short = any(p.duration_s < 60 for p in report.phases)
    lines.append("targets" + (" (set for 60 s phases; this run was shorter):" if short else ":"))
    for name, target in report.targets.items():
        measured = target["measured"]
        shown = (
            ", ".join(f"{k} {v:.0f}" for k, v in measured.items())
            if isinstance(measured, dict)
            else _fmt(measured, 2)
        )
        lines.append(f"  {name:<28} {shown:<24} {'met' if target['met'] else 'MISSED'}")
    if report.profiles:
        lines.append("profiles: " + ", ".join(report.profiles.values()))
    return "\n".join(lines) + "\n"
