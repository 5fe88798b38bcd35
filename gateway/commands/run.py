"""``imi-gateway run NODE_DIR``: run a node until SIGTERM or SIGINT.

This is the composition root of a running node: the only place (with the
demo and the benchmark) that imports the global reactor. Checks come first,
and a failed one stops the start before anything runs: the configuration,
the node directory's lock (a second ``run`` on the same directory stops with
NODE_ALREADY_RUNNING; see gateway.node.process), the keys, the database
(driver, connection, schema: migrated with a log line, refused when newer
than this gateway), then every listener's port is bound, and only then do
the services start (directory sync, senders, retention...). Problems are
reported as ``error: CODE: message`` with exit status 3.

While it runs, the node's pid and ports are in NODE_DIR/ports.json (the one
record of the running process), SIGHUP reloads its trust store
(``imi-gateway reload``; see gateway.commands.reload), and under systemd it
reports READY=1, RELOADING=1 and STOPPING=1 (``Type=notify``). On SIGTERM the
listeners stop accepting first, requests and envelopes in flight finish (or
are retried later by their senders, who have no receipt yet), then the
thread pools and the database close.

With ``--workers N`` (or ``[node] workers = N``; PostgreSQL only) this
process is the supervisor of N worker processes (gateway.node.workers): it
checks, migrates the database once, binds the listeners, then starts the
workers on them, writes one ports.json (its pid and theirs), restarts a
worker that dies, and forwards SIGHUP and SIGTERM. A worker is this same
command with the internal ``--worker-fds``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from twisted.logger import Logger, globalLogBeginner

from gateway.commands._logs import log_observer
from gateway.config import NodeConfig, load_config
from gateway.node.process import NodeLock, sd_notify

log = Logger()

__all__ = ["log_observer", "register"]


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.node_dir)
    if args.worker_fds is not None:  # a worker: its supervisor holds the lock
        return _serve(args, config)
    workers = args.workers if args.workers is not None else config.node.workers
    if workers > 1:
        from gateway.node.workers import check_workers

        check_workers(config, workers)
    lock = NodeLock(args.node_dir, shared=config.node.processes == "shared")
    try:
        if workers > 1:
            return _supervise(args, config, workers)
        return _serve(args, config)
    finally:
        lock.release()


def _begin_logging(args: argparse.Namespace, config: NodeConfig) -> None:
    fmt = args.log_format or config.logging.format
    level = args.log_level or config.logging.level
    globalLogBeginner.beginLoggingTo(
        [log_observer(fmt, level, sys.stdout)], redirectStandardIO=False
    )


def _supervise(args: argparse.Namespace, config: NodeConfig, workers: int) -> int:
    """Run the node as ``workers`` worker processes (see gateway.node.workers)."""
    from twisted.internet import reactor

    from gateway.config.secrets import database_url
    from gateway.keystore import ensure_audit_key, load_node_keys
    from gateway.node.workers import Supervisor, bind_listeners, notify_ready
    from gateway.storage.db import Database

    _begin_logging(args, config)
    # Checks before anything starts, once for every worker: keys, the audit key, the schema.
    load_node_keys(args.node_dir)
    ensure_audit_key(args.node_dir)
    db = Database(database_url(config), reactor=reactor, threads=1)
    try:
        db.migrate()
    finally:
        db.engine.dispose()
    try:
        bound = bind_listeners(config)
    except OSError as exc:  # a port in use, most often
        print(f"error: STARTUP_FAILED: {exc}", file=sys.stderr)
        return 3
    exit_status = [0]

    def failed(status: int) -> None:
        exit_status[0] = status
        reactor.stop()  # type: ignore[attr-defined]

    worker_args = [f"--log-format={args.log_format}"] if args.log_format else []
    worker_args += [f"--log-level={args.log_level}"] if args.log_level else []
    supervisor = Supervisor(
        reactor, args.node_dir, workers, bound, worker_args=worker_args, on_failed=failed
    )
    supervisor.all_ready.addCallback(lambda _: notify_ready(config, supervisor, workers))

    def reload() -> None:
        sd_notify(f"RELOADING=1\nMONOTONIC_USEC={_monotonic_usec()}")
        supervisor.forward("HUP")
        sd_notify("READY=1")

    signal.signal(
        signal.SIGHUP,
        lambda signum, frame: reactor.callFromThread(reload),  # type: ignore[attr-defined]
    )

    def stop() -> Any:
        sd_notify("STOPPING=1")
        return supervisor.stop()

    reactor.callWhenRunning(supervisor.start)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return exit_status[0]


def _serve(args: argparse.Namespace, config: NodeConfig) -> int:
    from twisted.internet import reactor

    from gateway.core.catalogue import load_catalogues
    from gateway.node import build_node
    from gateway.node.workers import exit_with_parent, report_ready, worker_fds

    fds = worker_fds(args.worker_fds) if args.worker_fds is not None else None
    if fds is not None:
        exit_with_parent()
    _begin_logging(args, config)
    adopted = None if fds is None else {k: fds[k] for k in ("api", "peer", "metrics")}
    service, parts = build_node(
        args.node_dir, reactor, catalogues=load_catalogues(), adopted=adopted
    )
    exit_status = [0]

    def start() -> None:
        try:
            # Bind every listener first: a port in use stops the start before any service
            # (directory sync, senders, retention) has run.
            service.privilegedStartService()
            service.startService()
        except Exception as exc:  # a port in use, most often
            print(f"error: STARTUP_FAILED: {exc}", file=sys.stderr)
            exit_status[0] = 3
            reactor.stop()  # type: ignore[attr-defined]  # stops what did start
            return
        if fds is not None:
            log.info("Worker {pid} of node {node} serves", pid=os.getpid(), node=config.node_id)
            report_ready(fds["ready"])
            return
        log.info(
            "Node {node} running: national API https://{api_host}:{api_port}, peer API "
            "https://{peer_host}:{peer_port}, health http://{health_host}:{health_port}/health",
            node=config.node_id,
            api_host=config.api.host,
            api_port=parts.api.port,
            peer_host=config.peer.host,
            peer_port=parts.peer.port,
            health_host=config.metrics.host,
            health_port=parts.health.port,
        )
        sd_notify(f"READY=1\nSTATUS=Node {config.node_id} running")

    def reload() -> None:
        sd_notify(f"RELOADING=1\nMONOTONIC_USEC={_monotonic_usec()}")
        try:
            parts.reload_trust()
        except Exception:  # a half-written or invalid trust file: keep the current trust
            log.failure("Trust reload failed; the node keeps its current trust")
        sd_notify("READY=1")

    # Python runs the handler on the main thread between bytecodes; the reload runs
    # on the reactor.
    signal.signal(
        signal.SIGHUP,
        lambda signum, frame: reactor.callFromThread(reload),  # type: ignore[attr-defined]
    )

    def stop() -> Any:
        sd_notify("STOPPING=1")
        if service.running:
            return service.stopService()
        return None

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return exit_status[0]


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("N must be 1 to 64")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a node",
        description=(
            "Run the node in NODE_DIR (created by 'imi-gateway init') until SIGTERM or "
            "SIGINT; SIGHUP (or 'imi-gateway reload NODE_DIR') reloads its trust store. "
            "Settings come from NODE_DIR/gateway.toml (see docs/configuration.md). One "
            'process per node directory unless [node] processes = "shared" (PostgreSQL). '
            "Under systemd (Type=notify) it reports READY=1 once every listener is up. "
            "Exit status: 0 after a clean shutdown, 3 for a configuration, key, database or "
            "start-up problem (NODE_ALREADY_RUNNING, DATABASE_UNAVAILABLE, STARTUP_FAILED...). "
            "With --workers N (PostgreSQL) it supervises N worker processes sharing the "
            "listeners and the database; see docs/operator.md."
        ),
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="run N worker processes sharing the listeners (default [node] workers, 1); "
        "more than 1 needs PostgreSQL; the supervisor restarts a worker that dies",
    )
    # Internal: a worker started by the supervisor (listening sockets and ready pipe).
    parser.add_argument("--worker-fds", help=argparse.SUPPRESS)
    parser.add_argument("node_dir", metavar="NODE_DIR", help="the node directory")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="override [logging] format (json: one JSON object a line, see docs/operator.md)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warn", "error", "critical"),
        help="override [logging] level",
    )
    parser.set_defaults(func=_run)
