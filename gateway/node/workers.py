"""Several worker processes per node: the supervisor of ``imi-gateway run --workers N``.

One node process is bound by the GIL to about one core. With PostgreSQL a
node runs N worker processes over one database with one identity (its node
directory: keys, trust, configuration):

* **The supervisor binds, the workers accept.** :func:`bind_listeners` binds
  the three listening sockets (national-system API, peer API, health and
  metrics) once, in the supervisor; each worker is started as
  ``python -m gateway run NODE_DIR --worker-fds API,PEER,METRICS,READY`` with
  the sockets on those descriptors and adopts them
  (``reactor.adoptStreamPort``, :mod:`gateway.node.listeners`). The kernel
  hands each new connection to one of the workers; a connection waiting in
  the backlog of a worker that died is taken by another (the socket is
  shared, not one per worker).
* **The workers share the node's state through the database**: outbound
  queues through leases and ``FOR UPDATE SKIP LOCKED`` (only the head of
  each exchange is claimed, :mod:`gateway.storage.outbox`, so order per
  exchange holds), deliveries through their per-authority cursors, the audit
  chain under its advisory lock, and the timers (retention, audit
  checkpoints) one process at a time (:mod:`gateway.storage.run_lock`).
* **The supervisor supervises.** A worker tells it that it runs by writing
  ``ready`` on the READY descriptor (a pipe). When every worker is ready the
  supervisor writes ``NODE_DIR/ports.json`` (its own pid, which
  ``imi-gateway reload`` signals, and the workers' pids) and tells systemd
  ``READY=1``. A worker that dies is started again (after 1 s, growing to
  30 s while it keeps dying young); a worker that fails the node's first
  start with a start-up problem (exit status 3) stops the node with it.
  SIGHUP is forwarded to every worker (trust reload); SIGTERM and SIGINT
  stop the workers with SIGTERM (a clean shutdown each), then the
  supervisor. Workers ask the kernel for SIGTERM should the supervisor die
  (``PR_SET_PDEATHSIG``), so no orphan keeps serving.

The supervisor itself opens no database connection while it runs (it
migrates the schema once before the workers start) and runs no service.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import NodeConfig
from gateway.core.errors import ConfigurationError
from gateway.node.listeners import LISTEN_BACKLOG
from gateway.node.process import sd_notify
from gateway.node_ports import NodePorts, remove_ports_file, write_ports_file

log = Logger()

#: The descriptors a worker finds its listening sockets and its ready pipe on.
WORKER_FDS = {"api": 3, "peer": 4, "metrics": 5, "ready": 6}
#: The descriptor of the admin console's listening socket, when it is enabled.
CONSOLE_FD = 7
#: A worker that ran at least this long before it died is restarted after FIRST_RESTART_DELAY.
STABLE_SECONDS = 10.0
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
#: How long the supervisor waits for its workers' clean shutdown before SIGKILL.
STOP_TIMEOUT = 60.0
#: Exit status of a start-up problem (``imi-gateway run``).
STARTUP_FAILED_STATUS = 3


class WorkersNeedPostgreSQL(ConfigurationError):
    """More than one worker process was asked for a node whose database is SQLite (one process's database)."""

    code = "WORKERS_NEED_POSTGRESQL"


def check_workers(config: NodeConfig, workers: int) -> None:
    """Refuse ``workers`` > 1 for a node on SQLite."""
    if workers > 1 and config.database.is_sqlite:
        raise WorkersNeedPostgreSQL(
            f"--workers {workers}: several worker processes need a PostgreSQL database.url "
            "(SQLite is one process's database); see docs/operator.md"
        )


def bind_listeners(config: NodeConfig) -> dict[str, socket.socket]:
    """Bind and listen on the node's addresses; the sockets by ``api``, ``peer``, ``metrics``
    (and ``console`` when ``[console] enabled``).

    Raises ``OSError`` (a port in use) before anything is started.
    """
    bound: dict[str, socket.socket] = {}
    addresses = [
        ("api", config.api.host, config.api.port),
        ("peer", config.peer.host, config.peer.port),
        ("metrics", config.metrics.host, config.metrics.port),
    ]
    if config.console.enabled:
        addresses.append(("console", config.console.host, config.console.port))
    try:
        for key, host, port in addresses:
            family, _, _, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            bound[key] = sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def worker_fds(spec: str) -> dict[str, int]:
    """``"3,4,5,6"`` (``--worker-fds``) as descriptors by ``api``, ``peer``, ``metrics``, ``ready``
    (and a fifth, ``console``, when the supervisor bound the console's socket)."""
    values = [int(part) for part in spec.split(",")]
    if len(values) not in (len(WORKER_FDS), len(WORKER_FDS) + 1):
        raise ValueError(
            "--worker-fds takes four or five descriptors: API,PEER,METRICS,READY[,CONSOLE]"
        )
    fds = dict(zip(WORKER_FDS, values[: len(WORKER_FDS)], strict=True))
    if len(values) > len(WORKER_FDS):
        fds["console"] = values[-1]
    return fds


def exit_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies (nothing elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return


def report_ready(fd: int) -> None:
    """Tell the supervisor this worker runs (then close the pipe)."""
    try:
        os.write(fd, b"ready\n")
        os.close(fd)
    except OSError:
        return  # the supervisor is gone; PR_SET_PDEATHSIG stops this worker


@dataclass
class _Worker:
    index: int
    process: WorkerProcess | None = None
    pid: int | None = None
    ready: bool = False
    started_at: float = 0.0
    restart_delay: float = FIRST_RESTART_DELAY
    ended: list[Deferred[None]] = field(default_factory=list)


class WorkerProcess(protocol.ProcessProtocol):
    """One worker's process, as the supervisor sees it."""

    def __init__(self, supervisor: Supervisor, worker: _Worker) -> None:
        self._supervisor = supervisor
        self._worker = worker

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == WORKER_FDS["ready"] and b"ready" in data:
            self._supervisor.worker_ready(self._worker)

    def processEnded(self, reason: Failure) -> None:
        self._supervisor.worker_ended(self._worker, reason)

    def signal(self, name: str) -> None:
        if self.transport is not None:
            try:
                self.transport.signalProcess(name)
            except Exception:  # noqa: S110 - already gone: processEnded follows
                pass


class Supervisor:
    """Runs ``count`` workers of the node in ``node_dir`` on the sockets ``bound``."""

    def __init__(
        self,
        reactor: Any,
        node_dir: str | Path,
        count: int,
        bound: Mapping[str, socket.socket],
        *,
        worker_args: Sequence[str] = (),
        on_failed: Callable[[int], None],
    ) -> None:
        """``worker_args``: more arguments for each worker (log format, level);
        ``on_failed(status)``: a worker could not start; the node must stop."""
        self._reactor = reactor
        self._node_dir = Path(node_dir)
        self._bound = bound
        self._args = list(worker_args)
        self._on_failed = on_failed
        self._workers = [_Worker(i) for i in range(count)]
        self._stopping = False
        self._announced = False
        api, peer, metrics = (int(bound[k].getsockname()[1]) for k in ("api", "peer", "metrics"))
        console = int(bound["console"].getsockname()[1]) if "console" in bound else None
        self.ports = NodePorts(api, peer, metrics, os.getpid(), console)
        #: Fires once every worker runs for the first time.
        self.all_ready: Deferred[None] = Deferred()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]

    def start(self) -> None:
        for worker in self._workers:
            self._spawn(worker)

    def _spawn(self, worker: _Worker) -> None:
        if self._stopping:
            return
        fds = dict(WORKER_FDS)
        if "console" in self._bound:
            fds["console"] = CONSOLE_FD
        argv = [sys.executable, "-m", "gateway", "run", str(self._node_dir)]
        argv += ["--worker-fds", ",".join(str(fds[k]) for k in fds), *self._args]
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        child_fds: dict[int, int | str] = {0: 0, 1: 1, 2: 2, fds["ready"]: "r"}
        for key in self._bound:
            child_fds[fds[key]] = self._bound[key].fileno()
        process = WorkerProcess(self, worker)
        worker.process, worker.ready = process, False
        worker.started_at = self._reactor.seconds()
        transport = self._reactor.spawnProcess(
            process, sys.executable, argv, env=env, childFDs=child_fds
        )
        worker.pid = int(transport.pid)
        log.info("Worker {index} started (pid {pid})", index=worker.index, pid=worker.pid)

    def worker_ready(self, worker: _Worker) -> None:
        if worker.ready:
            return
        worker.ready = True
        if self._announced:
            log.info("Worker {index} (pid {pid}) runs again", index=worker.index, pid=worker.pid)
            self._write_ports()
        elif all(w.ready for w in self._workers):
            self._announced = True
            self._write_ports()
            self.all_ready.callback(None)

    def _write_ports(self) -> None:
        if self._stopping:
            return
        self.ports = NodePorts(
            self.ports.api,
            self.ports.peer,
            self.ports.metrics,
            os.getpid(),
            self.ports.console,
            tuple(self.pids),
        )
        write_ports_file(self._node_dir, self.ports)

    def worker_ended(self, worker: _Worker, reason: Failure) -> None:
        status = getattr(reason.value, "exitCode", None)
        how = f"exit status {status}" if status is not None else "killed by a signal"
        pid, ready = worker.pid, worker.ready
        worker.process, worker.pid, worker.ready = None, None, False
        ended, worker.ended = worker.ended, []
        for d in ended:
            d.callback(None)
        if self._stopping:
            log.info("Worker {index} (pid {pid}) stopped", index=worker.index, pid=pid)
            return
        if not ready and status == STARTUP_FAILED_STATUS and not self._announced:
            log.error(
                "Worker {index} (pid {pid}) could not start ({how}); stopping the node",
                index=worker.index,
                pid=pid,
                how=how,
            )
            self._on_failed(STARTUP_FAILED_STATUS)
            return
        if self._reactor.seconds() - worker.started_at >= STABLE_SECONDS:
            worker.restart_delay = FIRST_RESTART_DELAY
        delay = worker.restart_delay
        worker.restart_delay = min(delay * 2, MAX_RESTART_DELAY)
        log.warn(
            "Worker {index} (pid {pid}) ended ({how}); starting it again in {delay} s",
            index=worker.index,
            pid=pid,
            how=how,
            delay=delay,
        )
        self._reactor.callLater(delay, self._spawn, worker)

    def forward(self, name: str) -> None:
        """Send signal ``name`` (``"HUP"``) to every running worker."""
        for worker in self._workers:
            if worker.process is not None:
                worker.process.signal(name)

    def stop(self) -> Deferred[None]:
        """SIGTERM every worker; fires when all have ended (SIGKILL after STOP_TIMEOUT)."""
        self._stopping = True
        remove_ports_file(self._node_dir)
        waits: list[Deferred[None]] = []
        for worker in self._workers:
            if worker.process is None:
                continue
            d: Deferred[None] = Deferred()
            worker.ended.append(d)
            waits.append(d)
            worker.process.signal("TERM")
        killer = self._reactor.callLater(STOP_TIMEOUT, self.forward, "KILL")
        done: Deferred[None] = Deferred()
        remaining = [len(waits)]

        def one_ended(_: object) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                finish()

        def finish() -> None:
            if killer.active():
                killer.cancel()
            for sock in self._bound.values():
                sock.close()
            done.callback(None)

        if not waits:
            finish()
        for d in waits:
            d.addCallback(one_ended)
        return done


def notify_ready(config: NodeConfig, supervisor: Supervisor, count: int) -> None:
    """Log the node's running line and tell systemd READY=1 (every worker runs)."""
    ports = supervisor.ports
    log.info(
        "Node {node} running: national API https://{api_host}:{api_port}, peer API "
        "https://{peer_host}:{peer_port}, health http://{health_host}:{health_port}/health "
        "({workers} workers: pids {pids})",
        node=config.node_id,
        api_host=config.api.host,
        api_port=ports.api,
        peer_host=config.peer.host,
        peer_port=ports.peer,
        health_host=config.metrics.host,
        health_port=ports.metrics,
        workers=count,
        pids=" ".join(str(p) for p in ports.workers),
    )
    sd_notify(f"READY=1\nSTATUS=Node {config.node_id} running with {count} workers")


__all__ = [
    "WORKER_FDS",
    "Supervisor",
    "WorkerProcess",
    "WorkersNeedPostgreSQL",
    "bind_listeners",
    "check_workers",
    "exit_with_parent",
    "notify_ready",
    "report_ready",
    "worker_fds",
]
