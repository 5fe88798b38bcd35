"""``imi-gateway bench exchange``: two real nodes on loopback under load, and the XML+crypto floor.

What runs (all on this machine, nothing mocked):

* two node directories made exactly as an operator makes them
  (:func:`gateway.testbed.setup_nodes`: ``init``, ``keys issue-national``,
  ``keys export`` / ``import-peer``), SQLite in each node directory;
* each node in its OWN PROCESS (``python -m gateway run NODE_DIR``), so the
  two nodes use both cores and each one's CPU time and peak RSS
  (``VmHWM``) can be read from ``/proc``;
* in this process, the simulated national systems of ``NO-HELSEDIR`` (at
  NO) and ``PT-OMD`` (at PT): HTTPS with their client certificates, long-poll
  pulls of their deliveries.

An exchange is Request (NO-HELSEDIR -> PT-OMD), then Acceptance and Answer
(PT-OMD -> NO-HELSEDIR): the shortest request+answer exchange the lifecycle
allows (an Answer must follow an Acceptance), so three documents. PT-OMD
submits the acceptance and the answer of exchange *i* as soon as it pulls
request *i*; the exchange is complete when NO-HELSEDIR pulls answer *i*.
Every document is built with the test bed's running example and signed by
its authority's key BEFORE the timed phase.

Phases:

* ``max`` (closed loop): ``--concurrency`` submitters each run one exchange
  at a time, back to back: sustained exchanges per second;
* ``rate`` (open loop): requests submitted at a fixed offered rate, whatever
  the latency: one-way latency percentiles at that load.

One-way latency of a document = from just before its submission (sender's
POST) to the pull answer that hands it to the receiving national system,
both read on this process's monotonic clock. The first ``--warmup`` seconds
of a phase are not counted. CPU per document = CPU time of both node
processes during the counted window (``/proc/PID/stat``), divided by the
documents delivered in it; the floor (:mod:`gateway.benchmarks.floor`) is
measured in the same run, on the same documents and the batch size the
nodes actually used.

This module is a benchmark, not a test: it reports numbers and asserts
nothing about them. Its top-level imports are light (the CLI imports it to
build its parser); the work is done inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.core.admission import scoped_id
from gateway.core.errors import GatewayError

NO_AUTHORITY = "NO-HELSEDIR"
PT_AUTHORITY = "PT-OMD"
AUTHORITIES = {"NO": [NO_AUTHORITY], "PT": [PT_AUTHORITY]}
#: Documents of one exchange, in the order they are sent.
DOCUMENT_KINDS = ("Request", "Acceptance", "Answer")
DOCS_PER_EXCHANGE = len(DOCUMENT_KINDS)
#: Document id suffix (see gateway.testbed) -> kind.
_KIND_OF_SUFFIX = {"1": "Request", "2": "Acceptance", "3": "Answer"}

_ITEM_ID = re.compile(rb'<Item seq="\d+" messageId="([^"]+)"')
_CURSOR = re.compile(rb'cursor="(\d+)"')
_ERROR_CODE = re.compile(rb"<(?:\w+:)?Code>([A-Z0-9_]+)</")


class BenchFailed(GatewayError):
    """The benchmark could not run (bad options, a node did not start)."""

    code = "BENCH_FAILED"


# --- options ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeOptions:
    """What to run. ``rate`` None with mode "both" means half the measured maximum."""

    mode: str = "both"  # "both", "max" or "rate"
    duration: float = 30.0
    warmup: float = 3.0
    concurrency: int = 48
    rate: float | None = None
    ceiling: float = 350.0
    poll_wait: int = 5
    pull_limit: int = 500
    verify: bool = False
    node_log_level: str = "info"
    work_dir: Path | None = None
    keep: bool = False
    profile_dir: Path | None = None
    floor_repeat: int = 300
    drain_seconds: float = 30.0

    def presign_count(self, phase: str, rate: float | None) -> int:
        """Exchanges to pre-sign for a phase (the closed loop stops if it runs out)."""
        if phase == "rate":
            assert rate is not None
            return math.ceil(rate * self.duration) + 1
        return math.ceil(self.ceiling * self.duration) + self.concurrency


QUICK = {"duration": 3.0, "warmup": 1.0, "concurrency": 16, "ceiling": 150.0, "floor_repeat": 30}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``imi-gateway bench exchange``."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--max",
        action="store_true",
        help="run only the closed-loop phase (sustained exchanges per second)",
    )
    mode.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="run only the open-loop phase at R exchanges per second "
        "(default: both phases, the open loop at half the measured maximum)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="seconds per phase, warm-up included (default 30; --quick: 3)",
    )
    parser.add_argument(
        "--warmup", type=float, metavar="S", help="seconds not counted (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="closed-loop submitters, each one exchange at a time (default 48; --quick: 16)",
    )
    parser.add_argument(
        "--ceiling",
        type=float,
        metavar="R",
        help="exchanges per second pre-signed for the closed loop (default 350); "
        "the phase stops early, and says so, if the nodes go faster",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a ~15 s smoke run (3 s phases, fewer repeats)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="the simulated national systems verify every receipt and delivery signature "
        "(costs CPU on the same machine; by default they check status and digests only)",
    )
    parser.add_argument(
        "--node-log-level",
        default="info",
        choices=("debug", "info", "warn", "error", "critical"),
        help="log level of the node processes (default info, as an operator runs them)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample both nodes with py-spy during each counted window; "
        "write collapsed stacks and a summary per node and phase into DIR",
    )
    parser.add_argument(
        "--work-dir", type=Path, metavar="DIR", help="where to create the node directories"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the node directories and logs afterwards"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def options_from(args: argparse.Namespace) -> ExchangeOptions:
    defaults: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("duration", "warmup", "concurrency", "ceiling"):
        value = getattr(args, name)
        if value is not None:
            defaults[name] = value
    mode = "max" if args.max else "rate" if args.rate is not None else "both"
    options = ExchangeOptions(
        mode=mode,
        rate=args.rate,
        verify=args.verify,
        node_log_level=args.node_log_level,
        work_dir=args.work_dir,
        keep=args.keep,
        profile_dir=args.profile,
        **defaults,
    )
    if options.duration <= options.warmup:
        raise BenchFailed("--duration must be longer than --warmup")
    if options.concurrency < 1 or (options.rate is not None and options.rate <= 0):
        raise BenchFailed("--concurrency and --rate must be positive")
    return options


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


def self_cpu_seconds() -> float:
    return cpu_seconds(os.getpid())


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, all CPUs (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + irq + softirq) / _CLK_TCK, steal / _CLK_TCK


class NodeProcess:
    """One node running as ``python -m gateway run NODE_DIR`` in its own process."""

    def __init__(self, node_id: str, node_dir: Path, health_port: int, log_level: str) -> None:
        self.node_id = node_id
        self.node_dir = node_dir
        self.health_url = f"http://127.0.0.1:{health_port}/health"
        self.log_path = node_dir.parent / f"node-{node_id.lower()}.log"
        self._log = self.log_path.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", str(node_dir), "--log-level", log_level],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchFailed(
                    f"node {self.node_id} exited with status {self.process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise BenchFailed(f"node {self.node_id} did not become healthy:\n" + self.log_tail())

    def metrics(self) -> dict[str, float]:
        """The node's Prometheus samples, keyed ``name{label="v",...}``."""
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
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


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


# --- documents ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedExchange:
    request: bytes
    acceptance: bytes
    answer: bytes


def presign(
    prefix: str, count: int, no_signer: Any, pt_signer: Any, created: datetime
) -> list[SignedExchange]:
    """``count`` exchanges (request i, acceptance i, answer i), signed by their authorities."""
    from gateway.core.documents import to_xml
    from gateway.testbed import doctor_acceptance, doctor_answer, doctor_request

    out = []
    for i in range(count):
        request = doctor_request(f"{prefix}{i}", NO_AUTHORITY, PT_AUTHORITY, created)
        out.append(
            SignedExchange(
                no_signer.sign(to_xml(request)),
                pt_signer.sign(to_xml(doctor_acceptance(request, created))),
                pt_signer.sign(to_xml(doctor_answer(request, created))),
            )
        )
    return out


def exchange_index(prefix: str, message_id: str) -> tuple[int, str] | None:
    """(exchange number, document kind) of a bench message id of this phase."""
    # Requests carry NO's scoped ids; PT's replies are scoped to PT (testbed.owned_id).
    for owned in (prefix, scoped_id(PT_AUTHORITY, prefix)):
        if message_id.startswith(owned):
            break
    else:
        return None
    number, _, suffix = message_id[len(owned) :].rpartition("-")
    kind = _KIND_OF_SUFFIX.get(suffix)
    if kind is None or not number.isdigit():
        return None
    return int(number), kind


# --- the load -----------------------------------------------------------------------


class SimulatedSystem:
    """A national system of one authority: its signer, an HTTPS client with enough connections."""

    def __init__(self, reactor: Any, setup: Any, authority: str, connections: int) -> None:
        from gateway.core.certs import TrustStore, load_pem_certificate, load_pem_private_key
        from gateway.keystore import load_node_keys
        from gateway.testbed import NationalSystem
        from gateway.transport.client import HTTPSClient
        from gateway.transport.tls import PinnedPeersPolicy

        national = NationalSystem(reactor, setup, authority)
        self._national_client = national.client
        self.signer = national.signer
        creds = setup.authorities[authority]
        key = load_pem_private_key(creds.key_path.read_bytes())
        cert = load_pem_certificate(creds.certificate_path.read_bytes())
        keys = load_node_keys(setup.node_dir)
        policy = PinnedPeersPolicy(
            key, cert, {("127.0.0.1", setup.api_port): (keys.ca.certificate, keys.tls.certificate)}
        )
        self.client = HTTPSClient(
            reactor, policy, timeout_seconds=60, max_connections_per_host=connections
        )
        self.node_trust = TrustStore(pinned=(keys.signing.certificate,))
        self.base = setup.api_url

    def close(self) -> Any:
        from twisted.internet.defer import gatherResults

        return gatherResults([self.client.close(), self._national_client.close()])


class LoadPhase:
    """One timed phase: submissions, pulls, completions, latencies."""

    def __init__(
        self,
        reactor: Any,
        *,
        mode: str,
        prefix: str,
        exchanges: list[SignedExchange],
        no: SimulatedSystem,
        pt: SimulatedSystem,
        options: ExchangeOptions,
        rate: float | None,
        nodes: dict[str, NodeProcess],
    ) -> None:
        self.reactor = reactor
        self.mode = mode
        self.prefix = prefix
        self.exchanges = exchanges
        self.no = no
        self.pt = pt
        self.options = options
        self.rate = rate
        self.nodes = nodes
        self.submitted: dict[tuple[int, str], float] = {}
        self.pulled: dict[tuple[int, str], float] = {}
        self.completed: dict[int, float] = {}
        self.waiting: dict[int, Any] = {}
        self.issued = 0
        self.errors: Counter[str] = Counter()
        self.pool_exhausted = False
        self.window: tuple[float, float] = (0.0, 0.0)
        self.cpu: dict[str, tuple[float, float]] = {}
        self._machine = (0.0, 0.0)
        self.machine_cpu = (math.nan, math.nan)
        self.profiles: dict[str, Path] = {}
        self._profilers: dict[str, Profiler] = {}

    # the pullers call these

    def on_pulled(self, authority: str, ids: list[str], at: float) -> None:
        for message_id in ids:
            key = exchange_index(self.prefix, message_id)
            if key is None or key in self.pulled:
                continue
            self.pulled[key] = at
            number, kind = key
            if kind == "Request" and authority == PT_AUTHORITY:
                self._respond(number)
            elif kind == "Answer" and authority == NO_AUTHORITY:
                self.completed[number] = at
                waiter = self.waiting.pop(number, None)
                if waiter is not None:
                    waiter.callback(None)

    # submissions

    async def _submit(self, system: SimulatedSystem, number: int, kind: str, body: bytes) -> bool:
        self.submitted[(number, kind)] = time.monotonic()
        try:
            answer = await _post(system, body, self.options.verify)
        except Exception as exc:  # network trouble is a result, not a crash
            self.errors[getattr(exc, "code", type(exc).__name__)] += 1
            return False
        if answer is not None:
            self.errors[answer] += 1
            return False
        return True

    def _respond(self, number: int) -> None:
        from twisted.internet.defer import Deferred

        signed = self.exchanges[number]

        async def respond() -> None:
            if await self._submit(self.pt, number, "Acceptance", signed.acceptance):
                await self._submit(self.pt, number, "Answer", signed.answer)

        Deferred.fromCoroutine(respond())

    def _next(self) -> int | None:
        if self.issued >= len(self.exchanges):
            self.pool_exhausted = True
            return None
        number = self.issued
        self.issued += 1
        return number

    async def _closed_worker(self, end: float) -> None:
        from twisted.internet.defer import Deferred

        while time.monotonic() < end:
            number = self._next()
            if number is None:
                return
            done: Deferred[None] = Deferred()
            self.waiting[number] = done
            if not await self._submit(self.no, number, "Request", self.exchanges[number].request):
                self.waiting.pop(number, None)
                continue
            await done

    async def _open_loop(self, start: float, end: float) -> None:
        from twisted.internet.defer import Deferred

        assert self.rate is not None
        interval = 1.0 / self.rate
        while True:
            now = time.monotonic()
            if now >= end:
                return
            due = min(int((now - start) / interval) + 1, len(self.exchanges))
            while self.issued < due:
                number = self.issued
                self.issued += 1
                Deferred.fromCoroutine(
                    self._submit(self.no, number, "Request", self.exchanges[number].request)
                )
            if self.issued >= len(self.exchanges):
                return
            next_at = start + self.issued * interval
            await _sleep(self.reactor, max(0.0, next_at - time.monotonic()))

    async def run(self) -> None:
        from twisted.internet.defer import Deferred, gatherResults

        start = time.monotonic()
        end = start + self.options.duration
        counted_from = start + self.options.warmup

        def window_opens() -> None:
            self.window = (counted_from, end)
            for node_id, node in self.nodes.items():
                self.cpu[node_id] = (cpu_seconds(node.pid), 0.0)
            self.cpu["bench"] = (self_cpu_seconds(), 0.0)
            self._machine = machine_cpu_seconds()
            if self.options.profile_dir is not None:
                self._profilers = {
                    node_id: Profiler(
                        self.options.profile_dir,
                        f"{self.mode}-{node_id.lower()}",
                        node.pid,
                        end - counted_from,
                    )
                    for node_id, node in self.nodes.items()
                }

        def window_closes() -> None:
            for key, (before, _) in list(self.cpu.items()):
                pid = self.nodes[key].pid if key in self.nodes else os.getpid()
                self.cpu[key] = (before, cpu_seconds(pid))
            busy, steal = machine_cpu_seconds()
            self.machine_cpu = (busy - self._machine[0], steal - self._machine[1])

        def give_up_waiting() -> None:
            # An exchange that never completes (a document refused or lost by a node)
            # must not hold its submitter: it is reported as incomplete.
            waiting, self.waiting = self.waiting, {}
            for waiter in waiting.values():
                if not waiter.called:
                    waiter.callback(None)

        drain_until = end + self.options.drain_seconds
        self.reactor.callLater(self.options.warmup, window_opens)
        self.reactor.callLater(self.options.duration, window_closes)
        give_up = self.reactor.callLater(
            self.options.duration + self.options.drain_seconds, give_up_waiting
        )
        if self.mode == "max":
            workers = [
                Deferred.fromCoroutine(self._closed_worker(end))
                for _ in range(self.options.concurrency)
            ]
            await gatherResults(workers)
        else:
            await Deferred.fromCoroutine(self._open_loop(start, end))
        # Let the window close, then wait for what is in flight.
        await _sleep(self.reactor, max(0.0, end - time.monotonic()) + 0.01)
        while time.monotonic() < drain_until and len(self.completed) < self.issued - sum(
            self.errors.values()
        ):
            await _sleep(self.reactor, 0.05)
        if give_up.active():
            give_up.cancel()
        give_up_waiting()
        for node_id, profiler in self._profilers.items():
            summary = await _in_thread(profiler.finish)
            if summary is not None:
                self.profiles[f"{self.mode}-{node_id}"] = summary

    def report(self, envelopes: dict[str, float]) -> PhaseReport:
        low, high = self.window
        counted = high - low
        exchanges = sum(1 for t in self.completed.values() if low <= t < high)
        delivered = sum(1 for t in self.pulled.values() if low <= t < high)
        samples: dict[str, list[float]] = {kind: [] for kind in DOCUMENT_KINDS}
        for key, sent in self.submitted.items():
            got = self.pulled.get(key)
            if got is not None and low <= sent < high:
                samples[key[1]].append(got - sent)
        all_samples = [s for kind in DOCUMENT_KINDS for s in samples[kind]]
        cpu = {k: after - before for k, (before, after) in self.cpu.items()}
        busy, steal = self.machine_cpu
        cpu["other"] = max(0.0, busy - sum(cpu.values()))
        cpu["stolen"] = steal
        node_cpu = cpu["NO"] + cpu["PT"]
        per_doc = node_cpu / delivered * 1e6 if delivered else math.nan
        incomplete = self.issued - len(self.completed)
        return PhaseReport(
            mode=self.mode,
            offered_rate=self.rate,
            concurrency=self.options.concurrency if self.mode == "max" else None,
            duration_s=self.options.duration,
            counted_s=round(counted, 3),
            exchanges=exchanges,
            exchanges_per_s=exchanges / counted if counted else math.nan,
            documents=delivered,
            documents_per_s=delivered / counted if counted else math.nan,
            latency_ms=Latency.of(all_samples),
            latency_ms_by_type={kind: Latency.of(samples[kind]) for kind in DOCUMENT_KINDS},
            cpu_s={k: round(v, 3) for k, v in cpu.items()},
            cpu_us_per_document=per_doc,
            cpu_us_per_document_by_node={
                k: (cpu[k] / delivered * 1e6 if delivered else math.nan) for k in ("NO", "PT")
            },
            documents_per_envelope=envelopes,
            errors=dict(self.errors),
            incomplete=incomplete,
            pool_exhausted=self.pool_exhausted,
        )


async def _post(system: SimulatedSystem, body: bytes, verify: bool) -> str | None:
    """Submit ``body``; None when the node accepted it, else the error code."""
    import hashlib

    answer = await system.client.post(system.base + "/api/v1/documents", body)
    if answer.status != 200:
        match = _ERROR_CODE.search(answer.body)
        return match.group(1).decode() if match else f"HTTP_{answer.status}"
    digest = hashlib.sha256(body).hexdigest().encode()
    if digest not in answer.body:
        return "RECEIPT_MISMATCH"
    if verify:
        from gateway.core.envelopes import read_receipt
        from gateway.core.signing import verify as verify_signature

        verified = verify_signature(answer.body, system.node_trust, now=datetime.now(UTC))
        receipt = read_receipt(verified.root)
        if [i.sha256 for i in receipt.items] != [digest.decode()]:
            return "RECEIPT_MISMATCH"
    return None


def _sleep(reactor: Any, seconds: float) -> Any:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


def _in_thread(func: Callable[[], Any]) -> Any:
    from twisted.internet.threads import deferToThread

    return deferToThread(func)


class Puller:
    """Long-polls one authority's deliveries for the whole run and hands ids to the phase."""

    def __init__(
        self, reactor: Any, system: SimulatedSystem, authority: str, options: ExchangeOptions
    ) -> None:
        self.reactor = reactor
        self.system = system
        self.authority = authority
        self.options = options
        self.phase: LoadPhase | None = None
        self.cursor = 0
        self.errors: Counter[str] = Counter()
        self._stop = False
        self.done: Any = None

    def start(self) -> None:
        from twisted.internet.defer import Deferred

        self.done = Deferred.fromCoroutine(self._loop())

    async def _loop(self) -> None:

        base = f"{self.system.base}/api/v1/deliveries"
        while not self._stop:
            url = f"{base}?after={self.cursor}&wait={self.options.poll_wait}&limit={self.options.pull_limit}"
            try:
                answer = await self.system.client.get(url)
            except Exception as exc:
                self.errors[getattr(exc, "code", type(exc).__name__)] += 1
                await _sleep(self.reactor, 0.1)
                continue
            at = time.monotonic()
            if answer.status != 200:
                match = _ERROR_CODE.search(answer.body)
                self.errors[match.group(1).decode() if match else f"HTTP_{answer.status}"] += 1
                await _sleep(self.reactor, 0.1)
                continue
            if self.options.verify:
                try:
                    self._verify(answer.body)
                except GatewayError as exc:
                    self.errors[f"verify:{exc.code}"] += 1
            ids = [m.decode() for m in _ITEM_ID.findall(answer.body)]
            cursor = _CURSOR.search(answer.body)
            if cursor is not None:
                self.cursor = int(cursor.group(1))
            if ids and self.phase is not None:
                self.phase.on_pulled(self.authority, ids, at)
        # acknowledge the last batch
        try:
            await self.system.client.get(f"{base}?after={self.cursor}&wait=0&limit=1")
        except Exception:  # noqa: S110 - the node is about to stop anyway
            pass

    def _verify(self, body: bytes) -> None:
        import base64

        from gateway.core.envelopes import read_delivery
        from gateway.core.signing import verify
        from gateway.core.xmlparse import parse_xml

        root = parse_xml(body)
        now = datetime.now(UTC)
        for item in root:
            read_delivery(
                verify(base64.b64decode(item.text or ""), self.system.node_trust, now=now).root
            )

    def stop(self) -> Any:
        self._stop = True
        return self.done


def _node_problems(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, int]:
    """Documents the nodes refused or dead-lettered during a phase, by node and code."""
    problems: dict[str, int] = {}
    for node_id, samples in after.items():
        for key, value in samples.items():
            name, _, labels = key.partition("{")
            if name not in ("imi_documents_refused_total", "imi_dead_letters_total"):
                continue
            delta = int(value - before.get(node_id, {}).get(key, 0.0))
            if delta:
                what = "refused" if name.startswith("imi_documents") else "dead_letters"
                problems[f"node {node_id} {what} {{{labels}"] = delta
    return problems


def _envelope_sizes(before: dict[str, float], after: dict[str, float], peer: str) -> float:
    sent = f'imi_envelope_documents_sent_total{{peer="{peer}"}}'
    count = f'imi_envelope_round_trip_seconds_count{{peer="{peer}"}}'
    docs = after.get(sent, 0.0) - before.get(sent, 0.0)
    envelopes = after.get(count, 0.0) - before.get(count, 0.0)
    return docs / envelopes if envelopes else math.nan


# --- the run ------------------------------------------------------------------------


@dataclass
class _Run:
    options: ExchangeOptions
    base_dir: Path
    setups: dict[str, Any]
    nodes: dict[str, NodeProcess]
    phases: list[PhaseReport] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    samples: list[bytes] = field(default_factory=list)


async def _drive(reactor: Any, run: _Run) -> None:
    from twisted.internet.defer import Deferred

    from gateway.benchmarks.floor import measure_floor
    from gateway.keystore import load_node_keys

    options = run.options
    connections = max(options.concurrency * 2, 64)
    no = SimulatedSystem(reactor, run.setups["NO"], NO_AUTHORITY, connections)
    pt = SimulatedSystem(reactor, run.setups["PT"], PT_AUTHORITY, connections)
    pullers = {
        NO_AUTHORITY: Puller(reactor, no, NO_AUTHORITY, options),
        PT_AUTHORITY: Puller(reactor, pt, PT_AUTHORITY, options),
    }
    for puller in pullers.values():
        puller.start()
    try:
        plan: list[tuple[str, float | None]] = []
        if options.mode in ("both", "max"):
            plan.append(("max", None))
        if options.mode in ("both", "rate"):
            plan.append(("rate", options.rate))
        for number, (mode, rate) in enumerate(plan):
            if mode == "rate" and rate is None:
                measured = run.phases[-1].exchanges_per_s if run.phases else math.nan
                rate = max(1.0, round(measured / 2)) if measured == measured else 50.0
            prefix = f"{NO_AUTHORITY}:IMI-BENCH{os.getpid()}{'MR'[mode == 'rate']}{number}-"
            count = options.presign_count(mode, rate)
            _say(
                f"pre-signing {count} exchanges ({count * DOCS_PER_EXCHANGE} documents) for {mode}"
            )
            exchanges = presign(prefix, count, no.signer, pt.signer, datetime.now(UTC))
            if not run.samples:
                run.samples = [exchanges[0].request, exchanges[0].acceptance, exchanges[0].answer]
            phase = LoadPhase(
                reactor,
                mode=mode,
                prefix=prefix,
                exchanges=exchanges,
                no=no,
                pt=pt,
                options=options,
                rate=rate,
                nodes=run.nodes,
            )
            for puller in pullers.values():
                puller.phase = phase
            before = {n: await _in_thread(node.metrics) for n, node in run.nodes.items()}
            what = f"at {rate:g}/s" if mode == "rate" else f"with {options.concurrency} submitters"
            _say(f"{mode} phase: {options.duration:g} s {what}")
            await phase.run()
            after = {n: await _in_thread(node.metrics) for n, node in run.nodes.items()}
            envelopes = {
                "NO->PT": _envelope_sizes(before["NO"], after["NO"], "PT"),
                "PT->NO": _envelope_sizes(before["PT"], after["PT"], "NO"),
            }
            report = phase.report(envelopes)
            report.node_problems = _node_problems(before, after)
            for puller in pullers.values():
                for code, n in puller.errors.items():
                    report.errors[f"pull:{code}"] = report.errors.get(f"pull:{code}", 0) + n
                puller.errors.clear()
            run.phases.append(report)
            run.profiles.update({k: str(v) for k, v in phase.profiles.items()})
            del exchanges, phase
    finally:
        await Deferred.fromCoroutine(_stop_pullers(pullers))
        await no.close()
        await pt.close()
    # the floor, on a quiet machine (the nodes idle), same documents and batch sizes
    keys = load_node_keys(run.setups["NO"].node_dir)
    for report in run.phases:
        sizes = [v for v in report.documents_per_envelope.values() if v == v]
        batch = sum(sizes) / len(sizes) if sizes else 1.0
        _say(f"floor for the {report.mode} phase (documents per envelope {batch:.1f})")
        floor = measure_floor(
            run.samples,
            node_key=keys.signing.key,
            node_certificate=keys.signing.certificate,
            batch_size=batch,
            repeat=options.floor_repeat,
        )
        report.floor = floor.as_dict()
        report.floor_us_per_document = floor.us_per_document
        report.ratio_to_floor = report.cpu_us_per_document / floor.us_per_document


async def _stop_pullers(pullers: dict[str, Puller]) -> None:
    from twisted.internet.defer import gatherResults

    await gatherResults([p.stop() for p in pullers.values()])


_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"bench [{time.monotonic() - _STARTED:5.1f} s]: {message}", file=sys.stderr, flush=True)


def _targets(phases: list[PhaseReport], rss: dict[str, float]) -> dict[str, Any]:
    """The issue's targets, each with the measured figure and whether it is met."""
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


def run_exchange_bench(options: ExchangeOptions, command: str) -> BenchReport:
    """Set up two nodes, run the phases, measure the floor; the report."""
    from twisted.internet import reactor

    from gateway.core.signing import DEFAULT_ENGINE
    from gateway.testbed import setup_nodes

    base_dir = Path(tempfile.mkdtemp(prefix="imi-bench-", dir=options.work_dir))
    nodes: dict[str, NodeProcess] = {}
    rss: dict[str, float] = {}
    try:
        _say(f"setting up two nodes in {base_dir}")
        setups = setup_nodes(base_dir, AUTHORITIES)
        for node_id, setup in setups.items():
            nodes[node_id] = NodeProcess(
                node_id, setup.node_dir, setup.metrics_port, options.node_log_level
            )
        for node in nodes.values():
            node.wait_ready()
        run = _Run(options, base_dir, setups, nodes)
        outcome: list[Any] = []

        def finished(result: Any) -> None:
            outcome.append(result)
            reactor.stop()  # type: ignore[attr-defined]

        def start() -> None:
            from twisted.internet.defer import Deferred

            Deferred.fromCoroutine(_drive(reactor, run)).addBoth(finished)

        reactor.callWhenRunning(start)  # type: ignore[attr-defined]
        reactor.run()  # type: ignore[attr-defined]
        if not outcome:
            raise BenchFailed("interrupted")
        from twisted.python.failure import Failure

        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        for node_id, node in nodes.items():
            rss[node_id] = round(peak_rss_mb(node.pid), 1)
        rss["bench"] = round(peak_rss_mb(os.getpid()), 1)
    finally:
        for node in nodes.values():
            node.stop()
        if not options.keep:
            shutil.rmtree(base_dir, ignore_errors=True)
        else:
            _say(f"node directories and logs kept in {base_dir}")
    return BenchReport(
        benchmark="exchange",
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        machine=machine_info(),
        database="sqlite (WAL, synchronous=FULL), one file per node",
        signature_engine=DEFAULT_ENGINE,
        documents_per_exchange=DOCS_PER_EXCHANGE,
        national_systems_verify=options.verify,
        node_log_level=options.node_log_level,
        phases=run.phases,
        peak_rss_mb=rss,
        targets=_targets(run.phases, rss),
        profiles=run.profiles,
    )


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
        f"documents); national systems verify signatures: "
        f"{'yes' if report.national_systems_verify else 'no (status and digest only)'}",
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
        if p.errors or p.incomplete or p.pool_exhausted or p.node_problems:
            lines.append(
                f"  errors {p.errors or 'none'}, incomplete exchanges {p.incomplete}"
                + (", PRE-SIGNED POOL EXHAUSTED (raise --ceiling)" if p.pool_exhausted else "")
            )
        for what, count in p.node_problems.items():
            lines.append(f"  NODE PROBLEM: {what}: {count}")
        lines.append("")
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in report.peak_rss_mb.items())
    lines.append(f"peak RSS: {rss}")
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


def run(args: argparse.Namespace) -> int:
    """``imi-gateway bench exchange``: run, print the report (table or JSON)."""
    options = options_from(args)
    command = (
        "imi-gateway " + " ".join(sys.argv[1:]) if sys.argv[1:] else "imi-gateway bench exchange"
    )
    report = run_exchange_bench(options, command)
    print(
        report.to_json() if args.json else format_report(report), end="" if not args.json else "\n"
    )
    return 0
