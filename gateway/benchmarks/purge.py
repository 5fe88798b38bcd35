"""``imi-gateway bench purge``: exchange throughput while a retention purge of many exchanges runs.

The target (docs/performance.md): a purge of 100,000 expired exchanges
lowers exchange throughput by less than 20% while it runs.

What runs (nothing mocked): the two nodes of ``bench exchange`` (NO and PT,
each in its own process, SQLite, real TLS and signatures). Before they
start, PT's database is seeded with ``--exchanges`` closed exchanges, each
with its own wrapped data key and three sealed bodies (the signed Request,
Acceptance and Answer of the running example, sealed with that key), their
tracking stages, all closed 30 minutes before the run: bulk inserts, not
the API, so seeding 100,000 takes seconds rather than the hours a real
exchange each would.

1. ``without``: PT's retention period is 2 hours, so nothing is due: a
   closed-loop phase measures exchanges per second.
2. ``with``: PT restarts with a 1-minute period, so its retention service
   starts the purge at once; the same closed-loop phase runs meanwhile.
   PT's database is read (read-only) before and after the phase: the purge
   rate is the exchanges erased during the phase per second, and the
   report says whether the purge was still running when the phase ended
   (otherwise the phase measured a node that had finished purging).

The report: both throughputs, their ratio, the purge rate and the
retention ``batch_size`` used. A benchmark, not a test: it asserts nothing.
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
    batch_size: int
    duration_s: float
    concurrency: int
    exchanges_per_s_without: float
    exchanges_per_s_with: float
    throughput_ratio: float
    erased_during_phase: int
    purge_exchanges_per_s: float
    purge_running_throughout: bool
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
    from gateway.storage.tables import exchanges, messages, tracking

    started = time.monotonic()
    config = load_config(node_dir)
    kek = load_data_kek(node_dir)
    db = Database(config.database.url, reactor=None, inline=True)
    db.migrate()
    kinds = [("Request", "in"), ("Acceptance", "out"), ("Answer", "out")]
    digests = [sha256_hex(s) for s in samples]

    def chunk_txn(conn: Any, first: int, last: int) -> None:
        ex_rows, msg_rows, track_rows = [], [], []
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
                    "wrapped_data_key": dataprotect.wrap_key(kek, key, exchange_id),
                    "erased_at": None,
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


def _set_retention(node_dir: Path, after_closure: str, batch_size: int) -> None:
    """Set the node's [retention] period and batch size (the rest of its configuration kept)."""
    path, original = node_dir / "gateway.toml", node_dir / "gateway.toml.before-bench"
    if not original.exists():
        shutil.copyfile(path, original)
    text = original.read_text()
    settings = (
        f'after_closure = "{after_closure}"\nbatch_size = {batch_size}\ninterval_seconds = 1\n'
    )
    assert "\n[retention]\n" in text, "the node's configuration has a [retention] table"
    path.write_text(text.replace("\n[retention]\n", f"\n[retention]\n{settings}", 1))


async def _closed_loop(
    reactor: Any, setups: dict[str, Any], nodes: dict[str, Any], options: ExchangeOptions, tag: str
) -> Any:
    from twisted.internet.defer import gatherResults

    from gateway.benchmarks.exchange.load import LoadPhase, Puller, SimulatedSystem, presign

    connections = max(options.concurrency * 2, 64)
    no = SimulatedSystem(reactor, setups["NO"], NO_AUTHORITY, connections)
    pt = SimulatedSystem(reactor, setups["PT"], PT_AUTHORITY, connections)
    pullers = [
        Puller(reactor, no, NO_AUTHORITY, options),
        Puller(reactor, pt, PT_AUTHORITY, options),
    ]
    prefix = f"{NO_AUTHORITY}:IMI-PURGE{os.getpid()}{tag}-"
    count = options.presign_count("max", None)
    exchanges = presign(prefix, count, no.signer, pt.signer, datetime.now(UTC))
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
    for puller in pullers:
        puller.phase = phase
        puller.start()
    try:
        await phase.run()
    finally:
        await gatherResults([p.stop() for p in pullers])
        await no.close()
        await pt.close()
    report = phase.report({})
    for puller in pullers:
        for code, n in puller.errors.items():
            report.errors[f"pull:{code}"] = report.errors.get(f"pull:{code}", 0) + n
    return report


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

    from gateway.benchmarks.exchange.load import presign
    from gateway.benchmarks.exchange.processes import NodeProcess
    from gateway.testbed import (
        before_start,
        node_started,
        setup_nodes,
        signal_reload,
    )

    count = args.exchanges or (QUICK_EXCHANGES if args.quick else DEFAULT_EXCHANGES)
    duration = args.duration or (3.0 if args.quick else 20.0)
    options = ExchangeOptions(
        mode="max",
        duration=duration,
        warmup=1.0 if args.quick else 3.0,
        concurrency=args.concurrency,
        ceiling=150.0 if args.quick else 350.0,
        work_dir=args.work_dir,
    )
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

        async def drive() -> None:
            _say(f"without a purge: {duration:g} s closed loop")
            results["without"] = await _closed_loop(reactor, setups, nodes, options, "A")
            nodes["PT"].stop()
            _set_retention(pt_dir, "1 minute", args.batch_size)
            start("PT")  # its retention service starts the purge at once
            results["erased_before"] = erased_count(pt_dir)
            started = time.monotonic()
            _say(f"with the purge running: {duration:g} s closed loop")
            results["with"] = await _closed_loop(reactor, setups, nodes, options, "B")
            results["erased_after"] = erased_count(pt_dir)
            results["phase_seconds"] = time.monotonic() - started

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
    without, with_purge = results["without"], results["with"]
    erased = results["erased_after"] - results["erased_before"]
    return PurgeReport(
        benchmark="purge",
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        exchanges_seeded=count,
        seed_seconds=round(seed_seconds, 1),
        batch_size=args.batch_size,
        duration_s=duration,
        concurrency=args.concurrency,
        exchanges_per_s_without=round(without.exchanges_per_s, 1),
        exchanges_per_s_with=round(with_purge.exchanges_per_s, 1),
        throughput_ratio=round(with_purge.exchanges_per_s / without.exchanges_per_s, 3)
        if without.exchanges_per_s
        else math.nan,
        erased_during_phase=erased,
        purge_exchanges_per_s=round(erased / results["phase_seconds"], 1),
        purge_running_throughout=results["erased_after"] < count,
        errors={**without.errors, **{f"with:{k}": v for k, v in with_purge.errors.items()}},
    )


def format_report(report: PurgeReport) -> str:
    lines = [
        f"purge benchmark ({report.date}): {report.command}",
        f"  seeded {report.exchanges_seeded} expired exchanges in {report.seed_seconds} s",
        f"  exchanges/s without a purge:  {report.exchanges_per_s_without}",
        f"  exchanges/s during the purge: {report.exchanges_per_s_with}",
        f"  ratio: {report.throughput_ratio} (target: at least 0.8)",
        f"  purge: {report.erased_during_phase} erased during the phase, "
        f"{report.purge_exchanges_per_s} exchanges/s (batch_size {report.batch_size}); "
        f"still running at the end: {'yes' if report.purge_running_throughout else 'NO'}",
    ]
    if report.errors:
        lines.append(f"  errors: {report.errors}")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exchanges",
        type=int,
        default=None,
        help=f"expired exchanges to seed ({DEFAULT_EXCHANGES})",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (20)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop submitters (16)")
    parser.add_argument(
        "--batch-size", type=int, default=500, help="the retention batch_size of node PT (500)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_EXCHANGES} exchanges, 3-second phases"
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
