"""A node process killed with SIGKILL mid-stream loses nothing and delivers nothing twice.

The sending node (NO) runs as a real process, ``python -m gateway run
NODE_DIR``; its peer (PT) runs in this process. A national system streams
documents of many exchanges to NO; when a number of receipts have come
back, NO is killed with SIGKILL while submissions are in flight and its
outbound queue is busy. NO is started again from the same node directory;
the national system, like any client that got no answer, resubmits every
document without a receipt, and also resubmits the acknowledged ones. The
test proves:

* every document whose receipt was received is delivered to PT's national
  system exactly once (nothing accepted is lost);
* a resubmission of an accepted document returns the original receipt, byte
  for byte;
* nothing is delivered twice, and each exchange's documents arrive in order.

The test waits on process events (the node's "running" log event, process
exit) and on the long-poll, never on a timer.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, protocol, reactor

from gateway.node_ports import read_ports_file
from gateway.testbed import (
    NationalSystem,
    NodeSetup,
    before_start,
    node_started,
    node_stopped,
    setup_nodes,
    signal_reload,
)
from tests.nodes import AUTHORITIES, start_node
from tests.service.bed import (
    message_id_of,
    pull_until,
    requester_streams,
    submit,
    submit_streams,
)

EXCHANGES = 30  # x 4 documents
KILL_AFTER_RECEIPTS = 45
STARTUP_TIMEOUT = 60  # seconds; a bound, not a wait: start-up or shutdown takes about one
QUICK_RETRIES = """
[outbound]
initial_backoff_seconds = 0.05
max_backoff_seconds = 0.5
batch_size = 8
"""


class NodeProcess(protocol.ProcessProtocol):
    """``python -m gateway run NODE_DIR --log-format json``, watched through its JSON log."""

    def __init__(self, setup: NodeSetup) -> None:
        self.setup = setup
        self.running: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[Any] = defer.Deferred()
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self._partial = b""

    def start(self, cwd: Path) -> defer.Deferred[None]:
        argv = [sys.executable, "-m", "gateway", "run", str(self.setup.node_dir)]
        argv += ["--log-format", "json"]
        before_start(self.setup)
        reactor.spawnProcess(self, sys.executable, argv, env=dict(os.environ), path=str(cwd))
        return self.running.addTimeout(STARTUP_TIMEOUT, reactor)

    def outReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:  # not a log event (nothing else should print here)
                continue
            self.events.append(event)
            if " running: " in event.get("message", "") and not self.running.called:
                self._started()

    def _started(self) -> None:
        """Running: its ports file is written (before the event); the bed learns its ports."""
        pid = self.transport.pid
        ports = read_ports_file(self.setup.node_dir)
        if ports is None or ports.pid != pid:
            self.running.errback(AssertionError(f"node process {pid} reported no ports"))
            return
        node_started(self.setup, ports, signal_reload(pid))
        self.running.callback(None)

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Any) -> None:
        node_stopped(self.setup)
        if not self.running.called:
            self.running.errback(
                AssertionError(f"the node exited before running: {self.stderr.decode()[-2000:]}")
            )
        self.ended.callback(reason.value)

    def kill(self) -> None:
        self.transport.signalProcess("KILL")

    async def stop(self) -> None:
        """SIGTERM (a clean shutdown), and SIGKILL if it takes longer than a bound."""
        if self.transport is None or self.ended.called:
            return
        self.transport.signalProcess("TERM")
        killer = reactor.callLater(STARTUP_TIMEOUT, self.transport.signalProcess, "KILL")
        await self.ended
        if killer.active():
            killer.cancel()


@pytest_twisted.ensureDeferred
async def test_a_node_killed_mid_stream_loses_nothing_and_delivers_nothing_twice(
    tmp_path: Path,
) -> None:
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config={"NO": QUICK_RETRIES})
    pt_node = start_node(setups["PT"])
    pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
    first = NodeProcess(setups["NO"])
    second = NodeProcess(setups["NO"])
    systems: list[NationalSystem] = [pt]
    try:
        await first.start(tmp_path)
        no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
        systems.append(no)
        streams = requester_streams(no, "PT-OMD", "IMI-NO-KILL", EXCHANGES)
        everything = [m for s in streams for m in s.message_ids]
        signed = {m: body for s in streams for m, body in s.documents}

        receipts: dict[str, bytes] = {}

        def maybe_kill(_message_id: str) -> None:
            if len(receipts) == KILL_AFTER_RECEIPTS:
                first.kill()  # SIGKILL: no shutdown, no flush, mid-stream

        await submit_streams(
            no, streams, concurrency=6, receipts=receipts, stop_on_error=True, on_receipt=maybe_kill
        )
        await first.ended
        acknowledged_before_kill = dict(receipts)
        assert KILL_AFTER_RECEIPTS <= len(acknowledged_before_kill) < len(everything)

        # Restart from the same directory (on new ports: the bed learns them); a
        # fresh client (the old connections died with the process).
        await second.start(tmp_path)
        no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
        systems.append(no)
        # Every acknowledged document, resubmitted, gets its original receipt.
        for message_id, receipt in acknowledged_before_kill.items():
            assert await submit(no, signed[message_id]) == receipt, message_id
        # Then the national system resubmits everything it has no receipt for.
        await submit_streams(no, streams, concurrency=6, receipts=receipts)
        assert sorted(receipts) == sorted(everything)

        cursor, deliveries = await pull_until(pt, len(everything))
        extra = await pt.pull(after=cursor, wait=0)
        assert extra.deliveries == []
        delivered = [message_id_of(d) for d in deliveries]
        assert len(delivered) == len(set(delivered)), "a document was delivered twice"
        assert set(delivered) == set(everything)
        assert set(acknowledged_before_kill) <= set(delivered)
        assert all(d.document == signed[message_id_of(d)] for d in deliveries)
        for stream in streams:
            ids = set(stream.message_ids)
            assert [m for m in delivered if m in ids] == stream.message_ids
        # PT holds each document once; NO, stopped cleanly, has every row sent.
        counts = await pt_node.parts.db.run_txn(
            lambda conn: conn.exec_driver_sql(
                "SELECT count(*), count(DISTINCT message_id) FROM deliveries"
            ).one()
        )
        assert tuple(counts) == (len(everything), len(everything))
        await second.stop()
        with contextlib.closing(sqlite3.connect(setups["NO"].node_dir / "gateway.sqlite3")) as db:
            states = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state"))
        assert states == {"sent": len(everything)}
    finally:
        for system in systems:
            await system.close()
        await first.stop()
        await second.stop()
        await pt_node.stop()
