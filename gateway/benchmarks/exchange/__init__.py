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

from gateway.benchmarks.exchange.driver import run, run_exchange_bench
from gateway.benchmarks.exchange.load import (
    LoadPhase,
    Puller,
    SignedExchange,
    SimulatedSystem,
    _node_problems,
    exchange_index,
    presign,
)
from gateway.benchmarks.exchange.options import (
    AUTHORITIES,
    DOCS_PER_EXCHANGE,
    DOCUMENT_KINDS,
    QUICK,
    BenchFailed,
    ExchangeOptions,
    add_arguments,
    options_from,
)
from gateway.benchmarks.exchange.processes import NodeProcess, Profiler, summarize_collapsed
from gateway.benchmarks.exchange.report import (
    BenchReport,
    Latency,
    PhaseReport,
    format_report,
    machine_info,
)

__all__ = [
    "AUTHORITIES",
    "DOCS_PER_EXCHANGE",
    "DOCUMENT_KINDS",
    "QUICK",
    "BenchFailed",
    "BenchReport",
    "ExchangeOptions",
    "Latency",
    "LoadPhase",
    "NodeProcess",
    "PhaseReport",
    "Profiler",
    "Puller",
    "SignedExchange",
    "SimulatedSystem",
    "_node_problems",
    "add_arguments",
    "exchange_index",
    "format_report",
    "machine_info",
    "options_from",
    "presign",
    "run",
    "run_exchange_bench",
    "summarize_collapsed",
]
