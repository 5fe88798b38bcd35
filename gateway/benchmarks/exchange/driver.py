"""The run: set up two nodes, start their processes, drive the phases, measure the floor."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.benchmarks.exchange.databases import describe, node_databases
from gateway.benchmarks.exchange.load import (
    LoadPhase,
    Puller,
    SimulatedSystem,
    _envelope_sizes,
    _in_thread,
    _node_problems,
    presign,
)
from gateway.benchmarks.exchange.options import (
    AUTHORITIES,
    DOCS_PER_EXCHANGE,
    NO_AUTHORITY,
    PT_AUTHORITY,
    BenchFailed,
    ExchangeOptions,
    options_from,
)
from gateway.benchmarks.exchange.processes import (
    NodeProcess,
    peak_rss_mb,
)
from gateway.benchmarks.exchange.report import (
    BenchReport,
    PhaseReport,
    _targets,
    format_report,
    machine_info,
)

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
            report.notes = _scrape_notes(run.nodes, before, after)
            for puller in pullers.values():
                for code, n in puller.errors.items():
                    report.errors[f"pull:{code}"] = report.errors.get(f"pull:{code}", 0) + n
                puller.errors.clear()
                for what, n in puller.pulls.items():
                    report.pulls[what] = report.pulls.get(what, 0) + n
                    puller.pulls[what] = 0
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


def _scrape_notes(
    nodes: dict[str, NodeProcess],
    before: dict[str, dict[str, float]],
    after: dict[str, dict[str, float]],
) -> list[str]:
    """What the metrics of a multi-worker node miss (a worker /metrics never reached)."""
    notes = []
    for node_id, node in nodes.items():
        if node.workers == 1:
            continue
        seen = [int(m.get("bench_workers_scraped{}", 0)) for m in (before[node_id], after[node_id])]
        if min(seen) < node.workers:
            notes.append(
                f"node {node_id}: metrics (envelope sizes, refusals) from {seen[0]} and {seen[1]} "
                f"of {node.workers} workers before and after the phase"
            )
    return notes


async def _stop_pullers(pullers: dict[str, Puller]) -> None:
    from twisted.internet.defer import gatherResults

    await gatherResults([p.stop() for p in pullers.values()])


_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"bench [{time.monotonic() - _STARTED:5.1f} s]: {message}", file=sys.stderr, flush=True)


def run_exchange_bench(options: ExchangeOptions, command: str) -> BenchReport:
    """Set up two nodes, run the phases, measure the floor; the report."""
    from twisted.internet import reactor

    from gateway.core.signing import DEFAULT_ENGINE
    from gateway.testbed import setup_nodes

    base_dir = Path(tempfile.mkdtemp(prefix="imi-bench-", dir=options.work_dir))
    nodes: dict[str, NodeProcess] = {}
    rss: dict[str, float] = {}
    rss_by_process: dict[str, float] = {}
    try:
        with node_databases(options.database, options.database_url, AUTHORITIES) as extra:
            _say(
                f"setting up two nodes in {base_dir} ({describe(options.database, options.workers)})"
            )
            setups = setup_nodes(base_dir, AUTHORITIES, extra_config=extra or None)
            try:
                run = _run_nodes(reactor, options, setups, nodes, base_dir)
                for node_id, node in nodes.items():
                    for label, pid in node.processes().items():
                        rss_by_process[label] = round(peak_rss_mb(pid), 1)
                    rss[node_id] = round(
                        sum(v for k, v in rss_by_process.items() if k.split()[0] == node_id), 1
                    )
                rss["bench"] = round(peak_rss_mb(os.getpid()), 1)
            finally:
                for node in nodes.values():
                    node.stop()
    finally:
        if not options.keep:
            shutil.rmtree(base_dir, ignore_errors=True)
        else:
            _say(f"node directories and logs kept in {base_dir}")
    return BenchReport(
        benchmark="exchange",
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        machine=machine_info(),
        database=describe(options.database, options.workers),
        signature_engine=DEFAULT_ENGINE,
        documents_per_exchange=DOCS_PER_EXCHANGE,
        national_systems_verify=options.verify,
        node_log_level=options.node_log_level,
        phases=run.phases,
        peak_rss_mb=rss,
        targets=_targets(run.phases, rss_by_process),
        profiles=run.profiles,
        workers=options.workers,
        peak_rss_mb_by_process=rss_by_process,
    )


def _run_nodes(
    reactor: Any,
    options: ExchangeOptions,
    setups: dict[str, Any],
    nodes: dict[str, NodeProcess],
    base_dir: Path,
) -> _Run:
    """Start the node processes (into ``nodes``), drive the phases on the reactor; the run."""
    from gateway.testbed import before_start, node_started, signal_reload

    # Every listener on port 0. PT first (it sends only answers), then NO with PT's
    # peer URL in its configuration; PT learns NO's URL on SIGHUP (a reload).
    for node_id in ("PT", "NO"):
        setup = setups[node_id]
        before_start(setup)
        node = nodes[node_id] = NodeProcess(
            node_id, setup.node_dir, options.node_log_level, options.workers
        )
        node_started(setup, node.wait_ready(), signal_reload(node.pid))
    nodes["PT"].wait_reloaded()
    run = _Run(options, base_dir, setups, nodes)
    outcome: list[Any] = []

    def finished(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    def start() -> None:
        from twisted.internet.defer import Deferred

        Deferred.fromCoroutine(_drive(reactor, run)).addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        raise BenchFailed("interrupted")
    from twisted.python.failure import Failure

    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return run


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
