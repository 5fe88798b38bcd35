"""A worker of a three-worker node killed with SIGKILL mid-stream: the survivors take over.

The sending node NO runs as ``imi-gateway run --workers 3`` on a PostgreSQL
database of its own (short leases: ``[outbound] lease_seconds = 3``); its
peer PT runs as a node process too (SQLite). A national system streams the
documents of many exchanges to NO (Request, Reminder, Reminder, Withdrawal:
PT's lifecycle refuses any other order). Mid-stream PT is stopped (SIGSTOP)
until every worker of NO holds a lease on documents it is sending (three
claims in flight: each claim's rows share one ``lease_until``); then one
worker is killed with SIGKILL while the others keep accepting, and PT goes
on (SIGCONT). The national system resubmits whatever it has no receipt for.

The test proves:

* every document is delivered to PT's national system exactly once (message
  ids of receipts against deliveries), in the order of its exchange;
* the killed worker's claimed documents are sent by another process after
  their lease expired (claimed again: ``attempts`` 2, sent after the lease);
* NO's outbox ends with every row sent (none dead: no reordering refused);
* NO's audit log, exported with ``imi-gateway audit export``, verifies with
  ``imi-gateway audit verify`` against the node certificate.

It waits on process events, the long-poll and database state
(``tests.waiting.until``), never on a timer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest_twisted
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from twisted.internet import defer, reactor

from gateway.node_ports import read_ports_file
from gateway.testbed import NationalSystem, before_start, setup_nodes
from tests.nodes import AUTHORITIES
from tests.service.bed import (
    message_id_of,
    postgres_database,
    pull_until,
    requester_streams,
    submit_streams,
)
from tests.service.test_kill_restart import STARTUP_TIMEOUT, NodeProcess
from tests.waiting import until

EXCHANGES = 40  # x 4 documents
STOP_PEER_AFTER_RECEIPTS = 30
WORKERS = 3
LEASE_SECONDS = 3
NO_CONFIG = f"""
[outbound]
initial_backoff_seconds = 0.05
max_backoff_seconds = 0.5
batch_size = 4
lease_seconds = {LEASE_SECONDS}
"""


class WorkersProcess(NodeProcess):
    """``imi-gateway run NODE_DIR --workers N``: the supervisor and its workers."""

    workers = WORKERS

    def start(self, cwd: Path) -> defer.Deferred[None]:
        argv = [sys.executable, "-m", "gateway", "run", str(self.setup.node_dir)]
        argv += ["--log-format", "json", "--workers", str(self.workers)]
        before_start(self.setup)
        reactor.spawnProcess(self, sys.executable, argv, env=dict(os.environ), path=str(cwd))
        return self.running.addTimeout(STARTUP_TIMEOUT, reactor)


def _query(engine: Any, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def _claims_in_flight(engine: Any) -> dict[Any, list[int]]:
    """The outbox rows in flight, grouped by claim (one ``lease_until`` per claim)."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for row_id, lease_until in _query(
        engine, "SELECT id, lease_until FROM outbox WHERE state = 'inflight'"
    ):
        groups[lease_until].append(row_id)
    return dict(groups)


@pytest_twisted.ensureDeferred
async def test_survivors_take_over_a_killed_workers_leases_and_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    with postgres_database() as url:
        setups = setup_nodes(
            tmp_path,
            AUTHORITIES,
            extra_config={"NO": f'[database]\nurl = "{url}"\n' + NO_CONFIG},
        )
        engine = create_engine(url, poolclass=NullPool)
        pt_node, no_node = NodeProcess(setups["PT"]), WorkersProcess(setups["NO"])
        systems: list[NationalSystem] = []
        try:
            await pt_node.start(tmp_path)
            await no_node.start(tmp_path)
            ports = read_ports_file(setups["NO"].node_dir)
            assert ports is not None and len(ports.workers) == WORKERS
            assert ports.pid == no_node.transport.pid  # the supervisor; signals go to it

            no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
            pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
            systems += [no, pt]
            streams = requester_streams(no, "PT-OMD", "IMI-NO-WORKERS", EXCHANGES)
            everything = [m for s in streams for m in s.message_ids]
            receipts: dict[str, bytes] = {}
            peer_stopped: list[bool] = []

            def maybe_stop_peer(_message_id: str) -> None:
                if len(receipts) >= STOP_PEER_AFTER_RECEIPTS and not peer_stopped:
                    peer_stopped.append(True)
                    pt_node.transport.signalProcess("STOP")

            streaming = defer.ensureDeferred(
                submit_streams(
                    no,
                    streams,
                    concurrency=6,
                    receipts=receipts,
                    stop_on_error=True,
                    on_receipt=maybe_stop_peer,
                )
            )
            await until(lambda: peer_stopped, timeout=60)
            # Every worker holds a claim on documents it cannot deliver yet.
            claims = await until(
                lambda: (c := _claims_in_flight(engine)) and len(c) == WORKERS and c,
                timeout=30,
                step=0.05,
            )
            victim = ports.workers[1]
            os.kill(victim, signal.SIGKILL)  # mid-stream: no shutdown, its leases stay
            pt_node.transport.signalProcess(signal.SIGCONT)
            await streaming

            # Like any client without an answer, the national system resubmits what it has
            # no receipt for (the killed worker's connections died with it).
            no_again = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
            systems.append(no_again)
            await submit_streams(no_again, streams, concurrency=6, receipts=receipts)
            assert sorted(receipts) == sorted(everything)

            # NO sends every row (none dead: PT refused no reordering), then PT delivers.
            await until(
                lambda: (
                    _query(engine, "SELECT count(*) FROM outbox WHERE state <> 'sent'")[0][0] == 0
                ),
                timeout=60,
                step=0.1,
            )
            cursor, deliveries = await pull_until(pt, len(everything))
            assert (await pt.pull(after=cursor, wait=0)).deliveries == []
            delivered = [message_id_of(d) for d in deliveries]
            assert len(delivered) == len(set(delivered)), "a document was delivered twice"
            assert set(delivered) == set(receipts)
            for stream in streams:
                ids = set(stream.message_ids)
                assert [m for m in delivered if m in ids] == stream.message_ids

            rows = {
                r.id: r for r in _query(engine, "SELECT id, attempts, sent_at, state FROM outbox")
            }
            assert len(rows) == len(everything)
            # The killed worker's claim was sent by another process after its lease expired.
            taken_over = [
                lease_until
                for lease_until, ids in claims.items()
                if all(rows[i].attempts >= 2 and rows[i].sent_at >= lease_until for i in ids)
            ]
            assert taken_over, "no claim was sent again after its lease expired"
            # The supervisor started a new worker in place of the killed one.
            await until(
                lambda: (p := read_ports_file(setups["NO"].node_dir)) and victim not in p.workers,
                timeout=60,
                step=0.1,
            )
            # Sent once each as the audit log tells it: one TRANSFERRED a document.
            transferred = _query(
                engine,
                "SELECT message_id, count(*) FROM audit_log WHERE event = 'TRANSFERRED' "
                "GROUP BY message_id",
            )
            assert sorted(m for m, _ in transferred) == sorted(everything)
            assert {n for _, n in transferred} == {1}
            await no_node.stop()
            # The audit chain of the three workers' appends verifies offline.
            export = tmp_path / "audit.xml"
            node_dir = setups["NO"].node_dir
            gateway = [sys.executable, "-m", "gateway", "audit"]
            exported = subprocess.run(
                [*gateway, "export", str(node_dir), "-o", str(export)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert exported.returncode == 0, exported.stderr
            cert = node_dir / "certs" / "signing.pem"
            verified = subprocess.run(
                [*gateway, "verify", str(export), "--cert", str(cert)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert verified.returncode == 0, verified.stderr
        finally:
            for system in systems:
                await system.close()
            if pt_node.transport is not None and not pt_node.ended.called:
                pt_node.transport.signalProcess(signal.SIGCONT)
            await no_node.stop()
            await pt_node.stop()
            engine.dispose()
