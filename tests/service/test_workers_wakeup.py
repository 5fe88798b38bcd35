"""A long poll on one worker is woken by a document another worker stored.

Node NO runs as ``imi-gateway run --workers 2`` on a PostgreSQL database of
its own; its peer PT runs as a node process (SQLite). For each document,
NO's national system holds two long polls with a long ``wait``, one served
by each worker: while one worker is stopped (SIGSTOP) the other accepts the
poll's connection, which the test sees in ``/proc`` (the worker owns the
established socket), then the stopped one continues. PT's national system
then submits a Request to NO's authority; whichever worker receives PT's
envelope, the poll on the other one answers only if that worker is woken
across processes (database notifications, ``gateway/storage/notify.py``).

Both polls must return the document before their wait ends: a poll that is
not woken answers only when its wait has run out. The wait is long (45 s) so
that only a wake-up explains an answer before it; nothing here is a timing
measurement.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor

from gateway.node_ports import read_ports_file
from gateway.testbed import NationalSystem, setup_nodes
from tests.nodes import AUTHORITIES
from tests.service.bed import message_id_of, postgres_database, requester_streams, submit
from tests.service.test_kill_restart import NodeProcess
from tests.service.test_workers_kill import WorkersProcess
from tests.waiting import until

DOCUMENTS = 3
WAIT = 45
NO_CONFIG = "[limits]\nlong_poll_seconds = 60\n"


class TwoWorkers(WorkersProcess):
    workers = 2


def established(pid: int, port: int) -> int:
    """How many established TCP connections to local ``port`` process ``pid`` holds."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    owned = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            owned += 1
    return owned


async def poll_on(
    worker: int, other: int, system: NationalSystem, port: int, after: int
) -> tuple[float, defer.Deferred[Any]]:
    """Start a long poll that ``worker`` serves; (its start time, its answer to come)."""
    os.kill(other, signal.SIGSTOP)  # the kernel hands the new connection to ``worker``
    try:
        started = reactor.seconds()
        answer = defer.ensureDeferred(_pull(system, after))
        await until(lambda: established(worker, port) == 1, timeout=30, step=0.05)
    finally:
        os.kill(other, signal.SIGCONT)
    return started, answer


async def _pull(system: NationalSystem, after: int) -> tuple[Any, float]:
    pulled = await system.pull(after=after, wait=WAIT)
    return pulled, reactor.seconds()


@pytest_twisted.ensureDeferred
async def test_a_long_poll_is_woken_by_a_document_another_worker_received(tmp_path: Path) -> None:
    with postgres_database() as url:
        setups = setup_nodes(
            tmp_path,
            AUTHORITIES,
            extra_config={"NO": f'[database]\nurl = "{url}"\n' + NO_CONFIG},
        )
        pt_node, no_node = NodeProcess(setups["PT"]), TwoWorkers(setups["NO"])
        systems: list[NationalSystem] = []
        workers: tuple[int, ...] = ()
        try:
            await pt_node.start(tmp_path)
            await no_node.start(tmp_path)
            ports = read_ports_file(setups["NO"].node_dir)
            assert ports is not None and len(ports.workers) == 2
            workers = ports.workers
            pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
            systems.append(pt)
            streams = requester_streams(pt, "NO-HELSEDIR", "IMI-PT-WAKE", DOCUMENTS)

            cursor = 0
            for stream in streams:
                message_id, signed = stream.documents[0]  # the exchange's Request
                polls = []
                for worker, other in (workers, workers[::-1]):
                    system = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
                    systems.append(system)
                    polls.append(await poll_on(worker, other, system, ports.api, cursor))
                await submit(pt, signed)
                for started, answer in polls:
                    pulled, answered = await answer
                    assert [message_id_of(d) for d in pulled.deliveries] == [message_id]
                    # Answered while its wait still ran: only a wake-up explains it.
                    assert answered - started < WAIT
                cursor = pulled.cursor
                for system in systems[1:]:
                    await system.close()
                del systems[1:]
                await until(lambda: not any(established(w, ports.api) for w in workers), timeout=30)
        finally:
            for worker in workers:
                try:
                    os.kill(worker, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            for system in systems:
                await system.close()
            await no_node.stop()
            await pt_node.stop()
