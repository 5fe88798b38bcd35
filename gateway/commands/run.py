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
"""

from __future__ import annotations

import argparse
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
    lock = NodeLock(args.node_dir, shared=config.node.processes == "shared")
    try:
        return _serve(args, config)
    finally:
        lock.release()


def _serve(args: argparse.Namespace, config: NodeConfig) -> int:
    from twisted.internet import reactor

    from gateway.core.catalogue import load_catalogues
    from gateway.node import build_node

    fmt = args.log_format or config.logging.format
    level = args.log_level or config.logging.level
    globalLogBeginner.beginLoggingTo(
        [log_observer(fmt, level, sys.stdout)], redirectStandardIO=False
    )
    service, parts = build_node(args.node_dir, reactor, catalogues=load_catalogues())
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
            "start-up problem (NODE_ALREADY_RUNNING, DATABASE_UNAVAILABLE, STARTUP_FAILED...)."
        ),
    )
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
