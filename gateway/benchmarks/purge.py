"""``imi-gateway bench purge``: exchange throughput while a retention purge of many exchanges runs.

The target (docs/performance.md): a purge of 100,000 expired exchanges
lowers exchange throughput by less than 20% while it runs.

What runs (nothing mocked): the two nodes of ``bench exchange`` (NO and PT,
each in its own process, SQLite, real TLS and signatures) under the same
load as ``bench exchange``'s closed loop (48 submitters, pullers
long-polling both authorities' deliveries, 30-second phases with a 3-second
warm-up). Before they start, PT's database is seeded with ``--exchanges``
closed exchanges, each with its own wrapped data key and three sealed
bodies (the signed Request, Acceptance and Answer of the running example,
sealed with that key) and their tracking stages, closed 10 ms apart up to
30 minutes before the run: bulk inserts, not the API, so seeding 100,000
takes a minute or two rather than the hours a real exchange each would.

1. ``before``: PT's retention period is 2 hours, so nothing is due: a
   closed-loop phase measures exchanges per second.
2. ``with``: the next phase's documents are signed, then PT restarts with a
   1-minute period, so its retention service starts the purge at once; the
   same closed-loop phase runs meanwhile. PT's erased count is read
   (read-only) when the counted window opens and when it closes: the purge
   rate is the exchanges erased in the window per second, and the report
   says whether the purge ran for the whole window (otherwise the phase
   measured a node that had finished purging).
3. ``after``: once the purge has finished (its total time is reported too),
   the same phase once more. Without a purge is the mean of ``before`` and
   ``after``, so a drift of the machine's other load during the run is
   averaged out rather than read as the purge's cost.

The report: the three throughputs, the ratio, p50 latencies, each process's
CPU seconds per window, the purge rates and the retention ``batch_size``.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.benchmarks.exchange.options import (
    AUTHORITIES,
    NO_AUTHORITY,
    PT_AUTHORITY,
    BenchFailed,
    ExchangeOptions,
)

#: Full scale, and ``--quick``.
DEFAULT_EXCHANGES = 100_000
QUICK_EXCHANGES = 3_000
SEED_CHUNK = 2_000
RELOADED = "Trust reloaded"


@dataclass
class PurgeReport:
    benchmark: str
    command: str
    date: str
    exchanges_seeded: int
    seed_seconds: float
    #: The retention batch_size of node PT (None: the node's default).
    batch_size: int | None
    duration_s: float
    warmup_s: float
    concurrency: int
    #: Closed-loop exchanges/s before the purge, during it, after it; ``without`` is the
    #: mean of before and after (the machine's other load drifts), ``ratio`` = with / without.
    exchanges_per_s_before: float
    exchanges_per_s_with: float
    exchanges_per_s_after: float
    exchanges_per_s_without: float
    throughput_ratio: float
    #: One-way latency p50 (ms) and each process's CPU seconds, per counted window.
    latency_p50_ms: dict[str, float]
    cpu_s: dict[str, dict[str, float]]
    #: Exchanges erased in the counted window of the ``with`` phase, and per second.
    erased_in_window: int
    purge_exchanges_per_s: float
    #: The purge had started before the counted window opened and had not finished when it closed.
    purge_running_throughout: bool
    #: From PT's start to the last exchange erased (the rest of the purge ran on an idle node).
    purge_total_s: float
    purge_total_exchanges_per_s: float
    errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _say(message: str) -> None:
    print(f"bench purge: {message}", file=sys.stderr, flush=True)


def seed_expired(node_dir: Path, count: int, samples: list[bytes], closed_at: datetime) -> float:
    """Bulk-insert ``count`` closed exchanges with sealed bodies into the node's database."""
    from sqlalchemy import insert

    from gateway.config import load_config
    from gateway.core import dataprotect
    from gateway.core.docxml import sha256_hex
    from gateway.keystore import load_data_kek
    from gateway.storage.db import Database
    from gateway.storage.messages import body_aad
    from gateway.storage.tables import exchange_keys, exchanges, messages, tracking

    started = time.monotonic()
    config = load_config(node_dir)
    kek = load_data_kek(node_dir)
    db = Database(config.database.url, reactor=None, inline=True)
    db.migrate()
    kinds = [("Request", "in"), ("Acceptance", "out"), ("Answer", "out")]
    digests = [sha256_hex(s) for s in samples]

    def chunk_txn(conn: Any, first: int, last: int) -> None:
        ex_rows, key_rows, msg_rows, track_rows = [], [], [], []
        for i in range(first, last):
            exchange_id = f"{NO_AUTHORITY}:IMI-SEED-{i:07d}"
            # Spread over time as real exchanges are (10 ms apart), the last one at closed_at.
            closed = closed_at - timedelta(milliseconds=10 * (count - 1 - i))
            opened_at = closed - timedelta(minutes=5)
            key = dataprotect.new_data_key()
            ex_rows.append(
                {
                    "exchange_id": exchange_id,
                    "requester_authority": NO_AUTHORITY,
                    "responder_authority": PT_AUTHORITY,
                    "requester_node": "NO",
                    "responder_node": "PT",
                    "area": "PQD",
                    "question_set": "PQD-DOCTOR",
                    "catalogue_version": "2026.1",
                    "state": "closed",
                    "created_at": opened_at,
                    "updated_at": closed,
                    "closed_at": closed,
                    "erased_at": None,
                }
            )
            key_rows.append(
                {
                    "exchange_id": exchange_id,
                    "wrapped_data_key": dataprotect.wrap_key(kek, key, exchange_id),
                }
            )
            for n, ((doc_type, direction), body) in enumerate(zip(kinds, samples, strict=True)):
                message_id = f"{exchange_id}-{n + 1}"
                msg_rows.append(
                    {
                        "message_id": message_id,
                        "exchange_id": exchange_id,
                        "direction": direction,
                        "document_type": doc_type,
                        "sender_authority": NO_AUTHORITY if direction == "in" else PT_AUTHORITY,
                        "receiver_authority": PT_AUTHORITY if direction == "in" else NO_AUTHORITY,
                        "peer_node": "NO",
                        "sha256": digests[n],
                        "document_created_at": opened_at,
                        "stored_at": opened_at,
                        "body": dataprotect.seal(key, body, body_aad(message_id)),
                        "receipt": None,
                    }
                )
            for stage, at in (("requested", opened_at), ("closed", closed)):
                track_rows.append(
                    {"exchange_id": exchange_id, "stage": stage, "at": at, "node": "PT"}
                )
        conn.execute(insert(exchanges), ex_rows)
        conn.execute(insert(exchange_keys), key_rows)
        conn.execute(insert(messages), msg_rows)
        conn.execute(insert(tracking), track_rows)

    for first in range(0, count, SEED_CHUNK):
        db.run_txn_sync(chunk_txn, first, min(count, first + SEED_CHUNK))
    db.engine.dispose()
    return time.monotonic() - started


def erased_count(node_dir: Path) -> int:
    uri = f"file:{node_dir / 'gateway.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM exchanges WHERE erased_at IS NOT NULL"
        ).fetchone()
    return int(count)


def _set_retention(node_dir: Path, after_closure: str, batch_size: int | None) -> None:
    """Set the node's [retention] period and batch size (the rest of its configuration kept)."""
    path, original = node_dir / "gateway.toml", node_dir / "gateway.toml.before-bench"
    if not original.exists():
        shutil.copyfile(path, original)
    text = original.read_text()
    settings = f'after_closure = "{after_closure}"\ninterval_seconds = 1\n'
    if batch_size is not None:
        settings += f"batch_size = {batch_size}\n"
    assert "\n[retention]\n" in text, "the node's configuration has a [retention] table"
    path.write_text(text.replace("\n[retention]\n", f"\n[retention]\n{settings}", 1))


@dataclass
class _Phase:
    """One closed-loop phase's report, and PT's erased count when its counted window opened
    and closed."""

    report: Any
    erased_at_open: int = 0
    erased_at_close: int = 0


async def _closed_loop(
    reactor: Any,
    setups: dict[str, Any],
    nodes: dict[str, Any],
    options: ExchangeOptions,
    signed: tuple[str, list[Any]],
    cursors: dict[str, int],
) -> _Phase:
    """The closed loop of ``bench exchange`` (same submitters, pullers, documents), once,
    on the pre-signed ``signed`` (id prefix, exchanges).

    ``cursors``: each authority's delivery cursor, carried from one phase to the next
    (so a phase never pulls the deliveries of the one before again).
    """
    from twisted.internet.defer import gatherResults

    from gateway.benchmarks.exchange.load import LoadPhase, Puller, SimulatedSystem, _in_thread

    connections = max(options.concurrency * 2, 64)
    no = SimulatedSystem(reactor, setups["NO"], NO_AUTHORITY, connections)
    pt = SimulatedSystem(reactor, setups["PT"], PT_AUTHORITY, connections)
    pullers = [
        Puller(reactor, no, NO_AUTHORITY, options),
        Puller(reactor, pt, PT_AUTHORITY, options),
    ]
    prefix, exchanges = signed
    phase = LoadPhase(
        reactor,
        mode="max",
        prefix=prefix,
        exchanges=exchanges,
        no=no,
        pt=pt,
        options=options,
        rate=None,
        nodes=nodes,
    )
    result = _Phase(report=None)
    pt_dir = setups["PT"].node_dir

    async def sample(attribute: str) -> None:
        setattr(result, attribute, await _in_thread(lambda: erased_count(pt_dir)))

    def later(attribute: str) -> None:
        from twisted.internet.defer import Deferred

        Deferred.fromCoroutine(sample(attribute))

    for puller in pullers:
        puller.cursor = cursors.get(puller.authority, 0)
        puller.phase = phase
        puller.start()
    _say(f"closed loop: {options.duration:g} s with {options.concurrency} submitters")
    reactor.callLater(options.warmup, later, "erased_at_open")
    reactor.callLater(options.duration, later, "erased_at_close")
    try:
        await phase.run()
    finally:
        await gatherResults([p.stop() for p in pullers])
        await no.close()
        await pt.close()
    for puller in pullers:
        cursors[puller.authority] = puller.cursor
    report = phase.report({})
    for puller in pullers:
        for code, n in puller.errors.items():
            report.errors[f"pull:{code}"] = report.errors.get(f"pull:{code}", 0) + n
    result.report = report
    return result


def _signer(credentials: Any) -> Any:
    from gateway.core.certs import load_pem_certificate, load_pem_private_key
    from gateway.core.signing import Signer

    return Signer(
        load_pem_private_key(credentials.key_path.read_bytes()),
        load_pem_certificate(credentials.certificate_path.read_bytes()),
    )


def run_purge_bench(args: argparse.Namespace, command: str) -> PurgeReport:
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from gateway.benchmarks.exchange.load import _in_thread, _sleep, presign
    from gateway.benchmarks.exchange.processes import NodeProcess
    from gateway.testbed import (
        before_start,
        node_started,
        setup_nodes,
        signal_reload,
    )

    count = args.exchanges or (QUICK_EXCHANGES if args.quick else DEFAULT_EXCHANGES)
    shape = ExchangeOptions()  # the load of ``bench exchange``: its submitters, its pullers
    options = ExchangeOptions(
        mode="max",
        duration=args.duration or (8.0 if args.quick else shape.duration),
        warmup=args.warmup or (2.0 if args.quick else shape.warmup),
        concurrency=args.concurrency or shape.concurrency,
        ceiling=shape.ceiling,
        work_dir=args.work_dir,
    )
    if options.duration <= options.warmup:
        raise BenchFailed("--duration must be longer than --warmup")
    base_dir = Path(tempfile.mkdtemp(prefix="imi-bench-purge-", dir=args.work_dir))
    nodes: dict[str, Any] = {}
    results: dict[str, Any] = {}
    try:
        _say(f"setting up two nodes in {base_dir}")
        setups = setup_nodes(base_dir, AUTHORITIES)
        signers = {  # the running example's documents, signed by their authorities
            authority: _signer(setups[authority[:2]].authorities[authority])
            for authority in (NO_AUTHORITY, PT_AUTHORITY)
        }
        sample = presign(
            "SEED:", 1, signers[NO_AUTHORITY], signers[PT_AUTHORITY], datetime.now(UTC)
        )[0]
        samples = [sample.request, sample.acceptance, sample.answer]
        pt_dir = setups["PT"].node_dir
        _set_retention(pt_dir, "2 hours", args.batch_size)
        _say(f"seeding {count} closed exchanges into PT's database")
        seed_seconds = seed_expired(
            pt_dir, count, samples, datetime.now(UTC) - timedelta(minutes=30)
        )
        _say(f"seeded in {seed_seconds:.1f} s")

        def start(node_id: str) -> None:
            """Start the node; wait until the other node (if running) reloaded its URL."""
            setup = setups[node_id]
            other = nodes.get("NO" if node_id == "PT" else "PT")
            reloads = other.log_text().count(RELOADED) if other else 0
            before_start(setup)
            node = nodes[node_id] = NodeProcess(node_id, setup.node_dir, "info")
            node_started(setup, node.wait_ready(), signal_reload(node.pid))
            deadline = time.monotonic() + 30
            while other is not None and other.log_text().count(RELOADED) <= reloads:
                if time.monotonic() > deadline:
                    raise BenchFailed(f"node {other.node_id} did not reload:\n{other.log_tail()}")
                time.sleep(0.05)

        start("PT")
        start("NO")

        def signed(tag: str) -> tuple[str, list[Any]]:
            prefix = f"{NO_AUTHORITY}:IMI-PURGE{os.getpid()}{tag}-"
            count = options.presign_count("max", None)
            _say(f"pre-signing {count} exchanges")
            return prefix, presign(
                prefix, count, signers[NO_AUTHORITY], signers[PT_AUTHORITY], datetime.now(UTC)
            )

        async def watch_purge(started: float) -> None:
            """Note when PT's last seeded exchange is erased (polled, read-only)."""
            while "purge_seconds" not in results:
                if await _in_thread(lambda: erased_count(pt_dir)) >= count:
                    results["purge_seconds"] = time.monotonic() - started
                    return
                if time.monotonic() - started > args.purge_timeout:
                    raise BenchFailed(f"the purge did not finish in {args.purge_timeout:g} s")
                await _sleep(reactor, 0.5)

        async def drive() -> None:
            cursors: dict[str, int] = {}
            load = signed("A")
            _say("before the purge (PT's retention period: 2 hours, nothing due)")
            results["before"] = await _closed_loop(reactor, setups, nodes, options, load, cursors)
            load = signed("B")  # before the restart, so the purge starts with the phase
            nodes["PT"].stop()
            _set_retention(pt_dir, "1 minute", args.batch_size)
            started = time.monotonic()
            start("PT")  # its retention service starts the purge at once
            watching = Deferred.fromCoroutine(watch_purge(started))
            _say("during the purge (PT's retention period: 1 minute)")
            results["with"] = await _closed_loop(reactor, setups, nodes, options, load, cursors)
            _say("waiting for the purge to finish")
            await watching
            load = signed("C")  # signed now: older documents fall out of the replay window
            _say("after the purge (nothing left to erase)")
            results["after"] = await _closed_loop(reactor, setups, nodes, options, load, cursors)

        outcome: list[Any] = []

        def finished(result: Any) -> None:
            outcome.append(result)
            reactor.stop()  # type: ignore[attr-defined]

        reactor.callWhenRunning(  # type: ignore[attr-defined]
            lambda: Deferred.fromCoroutine(drive()).addBoth(finished)
        )
        reactor.run()  # type: ignore[attr-defined]
        from twisted.python.failure import Failure

        if not outcome:
            raise BenchFailed("interrupted")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
    finally:
        for node in nodes.values():
            node.stop()
        if not args.keep:
            shutil.rmtree(base_dir, ignore_errors=True)
        else:
            _say(f"node directories and logs kept in {base_dir}")
    phases = {name: results[name].report for name in ("before", "with", "after")}
    rates = {name: report.exchanges_per_s for name, report in phases.items()}
    without = (rates["before"] + rates["after"]) / 2
    window = phases["with"].counted_s
    during = results["with"]
    erased = during.erased_at_close - during.erased_at_open
    purge_seconds = results["purge_seconds"]
    errors: dict[str, int] = {}
    for name, report in phases.items():
        errors.update({f"{name}:{code}": n for code, n in report.errors.items()})
    return PurgeReport(
        benchmark="purge",
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        exchanges_seeded=count,
        seed_seconds=round(seed_seconds, 1),
        batch_size=args.batch_size,
        duration_s=options.duration,
        warmup_s=options.warmup,
        concurrency=options.concurrency,
        exchanges_per_s_before=round(rates["before"], 1),
        exchanges_per_s_with=round(rates["with"], 1),
        exchanges_per_s_after=round(rates["after"], 1),
        exchanges_per_s_without=round(without, 1),
        throughput_ratio=round(rates["with"] / without, 3) if without else math.nan,
        latency_p50_ms={name: round(r.latency_ms.p50, 1) for name, r in phases.items()},
        cpu_s={name: r.cpu_s for name, r in phases.items()},
        erased_in_window=erased,
        purge_exchanges_per_s=round(erased / window, 1) if window else math.nan,
        purge_running_throughout=0 < during.erased_at_open and during.erased_at_close < count,
        purge_total_s=round(purge_seconds, 1),
        purge_total_exchanges_per_s=round(count / purge_seconds, 1),
        errors=errors,
    )


def format_report(report: PurgeReport) -> str:
    batch = report.batch_size if report.batch_size is not None else "node default"
    lines = [
        f"purge benchmark ({report.date}): {report.command}",
        f"  seeded {report.exchanges_seeded} expired exchanges into PT in {report.seed_seconds} s",
        f"  closed loop of bench exchange: {report.concurrency} submitters, "
        f"{report.duration_s:g} s phases ({report.warmup_s:g} s warm-up not counted)",
    ]
    for name, rate in (
        ("before the purge", report.exchanges_per_s_before),
        ("during the purge", report.exchanges_per_s_with),
        ("after the purge", report.exchanges_per_s_after),
    ):
        key = name.split()[0].replace("during", "with")
        lines.append(
            f"  exchanges/s {name}: {rate:7.1f}  (p50 one-way {report.latency_p50_ms[key]} ms; "
            f"CPU s {report.cpu_s[key]})"
        )
    lines += [
        f"  ratio during / without (mean of before and after): {report.throughput_ratio} "
        "(target: at least 0.8)",
        f"  purge in the counted window: {report.erased_in_window} erased, "
        f"{report.purge_exchanges_per_s} exchanges/s (batch_size {batch}); "
        f"running for the whole window: {'yes' if report.purge_running_throughout else 'NO'}",
        f"  whole purge: {report.purge_total_s} s from PT's start, "
        f"{report.purge_total_exchanges_per_s} exchanges/s",
    ]
    if report.errors:
        lines.append(f"  errors: {report.errors}")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exchanges",
        type=int,
        default=None,
        help=f"expired exchanges to seed into PT (default {DEFAULT_EXCHANGES:,}; --quick: "
        f"{QUICK_EXCHANGES:,})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per phase, warm-up included (default as bench exchange: 30; --quick: 8)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of each phase not counted (default 3; --quick: 2)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="closed-loop submitters (default as bench exchange: 48)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="the retention batch_size of node PT (default: the node's default)",
    )
    parser.add_argument(
        "--purge-timeout",
        type=float,
        default=3600.0,
        help="seconds from PT's restart to wait for the purge to finish (3600)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EXCHANGES:,} exchanges, 8-second phases (a smoke run, not a measurement)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where the node directories go")
    parser.add_argument("--keep", action="store_true", help="keep the node directories and logs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """``imi-gateway bench purge``: run, print the report (table or JSON)."""
    command = "imi-gateway " + " ".join(sys.argv[1:]) if sys.argv[1:] else "imi-gateway bench purge"
    report = run_purge_bench(args, command)
    print(report.to_json() if args.json else format_report(report), end="")
    if args.json:
        print()
    return 0
