"""Node processes (``python -m gateway run``) and what is read of them: CPU, RSS, profiles."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.benchmarks.exchange.options import (
    BenchFailed,
)

if TYPE_CHECKING:
    from gateway.node_ports import NodePorts

# --- node processes -----------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def start_time(pid: int) -> float:
    """When process ``pid`` started, in seconds since the epoch, exactly as a node's
    ``process_start_time_seconds`` metric says it (``/proc/PID/stat`` and ``btime``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    ticks = float(stat[stat.rindex(")") + 2 :].split()[19]) / _CLK_TCK
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return ticks + float(line.split()[1])
    return math.nan


def self_cpu_seconds() -> float:
    return cpu_seconds(os.getpid())


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, all CPUs (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + irq + softirq) / _CLK_TCK, steal / _CLK_TCK


#: Scrapes of a multi-worker node's /metrics before giving up on finding every worker.
SCRAPES_PER_WORKER = 25


class NodeProcess:
    """One node running as ``python -m gateway run NODE_DIR [--workers N]``.

    With N > 1 workers, :attr:`pid` is the supervisor's; :meth:`processes`
    lists the supervisor and its workers (from ``ports.json``), whose CPU and
    RSS the benchmark adds up.
    """

    def __init__(self, node_id: str, node_dir: Path, log_level: str, workers: int = 1) -> None:
        self.node_id = node_id
        self.node_dir = node_dir
        self.health_url = ""  # known once the node reported its ports
        self.log_level = log_level
        self.workers = workers
        self.log_path = node_dir.parent / f"node-{node_id.lower()}.log"
        self._log = self.log_path.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "gateway", "run", str(node_dir), "--log-level", log_level]
        if workers > 1:
            argv += ["--workers", str(workers)]
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid
        #: Worker pids as of the last :meth:`processes` (empty: one process).
        self.worker_pids: tuple[int, ...] = ()

    def processes(self) -> dict[str, int]:
        """The node's processes by label: ``NO`` alone, or ``NO supervisor``, ``NO worker 1``..."""
        if self.workers == 1:
            return {self.node_id: self.pid}
        from gateway.node_ports import read_ports_file

        ports = read_ports_file(self.node_dir)
        if ports is not None and ports.pid == self.pid:
            self.worker_pids = ports.workers
        labels = {f"{self.node_id} supervisor": self.pid}
        for number, pid in enumerate(self.worker_pids, 1):
            labels[f"{self.node_id} worker {number}"] = pid
        return labels

    def wait_ready(self, timeout: float = 60.0) -> NodePorts:
        """The ports the node bound, once it answers its health check."""
        from gateway.node_ports import PortsFileMissing, wait_for_ports_file

        deadline = time.monotonic() + timeout
        try:
            ports = wait_for_ports_file(
                self.node_dir, self.pid, timeout=timeout, alive=lambda: self.process.poll() is None
            )
        except PortsFileMissing as exc:
            raise BenchFailed(f"node {self.node_id}: {exc.message}\n" + self.log_tail()) from None
        self.health_url = f"http://127.0.0.1:{ports.metrics}/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchFailed(
                    f"node {self.node_id} exited with status {self.process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return ports
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise BenchFailed(f"node {self.node_id} did not become healthy:\n" + self.log_tail())

    def wait_reloaded(self, timeout: float = 10.0) -> None:
        """Until the node (each of its workers) logged a reload (its log level shows it; else at once)."""
        deadline = time.monotonic() + timeout
        while (
            self.log_level in ("debug", "info")
            and self.log_text().count("Trust reloaded") < self.workers
        ):
            if time.monotonic() >= deadline:
                raise BenchFailed(f"node {self.node_id} did not reload:\n" + self.log_tail())
            time.sleep(0.05)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def metrics(self) -> dict[str, float]:
        """The node's Prometheus samples, keyed ``name{label="v",...}``.

        A node of several workers has one registry per worker, and each
        scrape reaches one of them (the kernel picks the worker that accepts).
        Its /metrics is scraped until every worker answered, each told by its
        ``process_start_time_seconds`` (read for each pid from ``/proc``), and
        the samples are summed over the workers. ``bench_workers_scraped``
        says how many were found (fewer when two started in the same clock
        tick or one was too busy to answer).
        """
        if self.workers == 1:
            return self._scrape()
        workers: dict[int, float] = {}
        for pid in self.processes().values():
            if pid != self.pid:
                try:
                    workers[pid] = start_time(pid)
                except OSError:
                    continue
        found: dict[int, dict[str, float]] = {}
        for _ in range(SCRAPES_PER_WORKER * self.workers):
            samples = self._scrape()
            pid = _which_worker(samples, workers)
            if pid is not None:
                found[pid] = samples
            if len(found) == len(workers):
                break
        total: dict[str, float] = {}
        for samples in found.values():
            for key, value in samples.items():
                total[key] = total.get(key, 0.0) + value
        total["bench_workers_scraped{}"] = float(len(found))
        return total

    def _scrape(self) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        url = self.health_url.rsplit("/", 1)[0] + "/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
            text = answer.read().decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _which_worker(samples: dict[str, float], started: dict[int, float]) -> int | None:
    """The pid whose scrape ``samples`` are: by start time, then (two workers started in
    the same clock tick) by the CPU time closest below what ``/proc`` says now, then by
    the resident memory closest to what the scrape said."""
    when = samples.get("process_start_time_seconds{}", math.nan)
    candidates = [pid for pid, at in started.items() if abs(at - when) < 0.005]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    cpu = samples.get("process_cpu_seconds_total{}", math.nan)
    rss = samples.get("process_resident_memory_bytes{}", math.nan)
    page = os.sysconf("SC_PAGE_SIZE")
    scores: dict[int, tuple[float, float]] = {}
    for pid in candidates:
        try:
            gap = cpu_seconds(pid) - cpu
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if gap >= -1.5 / _CLK_TCK:  # CPU time only grows (rounded to a tick)
            scores[pid] = (round(max(gap, 0.0) * _CLK_TCK), abs(pages * page - rss))
    if not scores:
        return None
    return min(scores, key=lambda pid: scores[pid])


class Profiler:
    """py-spy sampling one node during a counted window (``--profile``)."""

    def __init__(self, out_dir: Path, label: str, pid: int, seconds: float) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            raise BenchFailed("--profile needs py-spy: pip install py-spy")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.raw = out_dir / f"{label}.collapsed"
        self.summary = out_dir / f"{label}.txt"
        self.process = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def finish(self) -> Path | None:
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None
        if not self.raw.exists():
            return None
        self.summary.write_text(summarize_collapsed(self.raw.read_text()))
        return self.summary


#: Leaf functions of a thread that waits (py-spy in blocking mode still samples some).
_IDLE_LEAVES = frozenset({"Condition.wait", "EPollReactor.doPoll", "Queue.get", "_shutdown"})

#: Where a busy sample's time goes, by the first matching frame name (most specific first).
_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("database: COMMIT (waits for the disk)", ("DefaultDialect.do_commit",)),
    (
        "database: BEGIN IMMEDIATE (waits for the lock)",
        ("_install_sqlite_hooks.<locals>._on_begin",),
    ),
    (
        "database: SQLite executing statements",
        (
            "DefaultDialect.do_execute",
            "DefaultDialect.do_executemany",
            "CursorFetchStrategy.fetchone",
            "CursorFetchStrategy.fetchall",
        ),
    ),
    (
        "database: Python (SQLAlchemy, stores, sealing)",
        ("Database._run_group_sync", "Database.run_txn_sync"),
    ),
    (
        "admission: verify, read, validate, receipt signing",
        ("Pipeline._admit_submission", "Pipeline._admit_envelope"),
    ),
    ("deliveries: render, build, sign", ("Deliveries._sign_all", "Deliveries.sign_delivery")),
    (
        "outbound: build and sign envelopes, verify receipts",
        ("PeerSender._build", "PeerSender._check_receipt"),
    ),
    (
        "reactor: logging",
        ("FileLogObserver.__call__", "FilteringLogObserver.__call__", "LogPublisher.__call__"),
    ),
    (
        "reactor: TLS, HTTP, Deferreds",
        ("TLSMemoryBIOProtocol.dataReceived", "Connection.doRead", "Connection.doWrite"),
    ),
)


def _area(frames: Sequence[str]) -> str:
    names = {f.partition(" (")[0] for f in frames}
    for area, markers in _AREAS:
        if any(m in names for m in markers):
            return area
    return "other (reactor, thread hand-offs, timers)"


def summarize_collapsed(text: str, top: int = 40) -> str:
    """Busy samples by area, then self and inclusive shares per function.

    ``text`` is py-spy's collapsed-stack output; samples whose innermost
    frame is a thread waiting for work are left out.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = idle = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short_frame(f) for f in stack.split(";")]
        if frames[-1].partition(" (")[0] in _IDLE_LEAVES:
            idle += count
            continue
        total += count
        own[frames[-1]] += count
        areas[_area(frames)] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no busy samples\n"
    lines = [f"{total} busy samples ({idle} idle left out)", "", "share  area"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in areas.most_common()]
    lines += ["", "self %  function"]
    lines += [f"{100 * n / total:6.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:6.1f}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _short_frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})" if where else name
