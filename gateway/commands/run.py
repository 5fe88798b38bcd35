"""``imi-gateway run NODE_DIR``: run a node until SIGTERM or SIGINT.

This is the composition root of a running node: the only place (with the
demo and the benchmark) that imports the global reactor. Start-up problems
(configuration, keys, database) are reported with their error code before
any port is opened. While it runs, the node's pid is in NODE_DIR/gateway.pid
and SIGHUP reloads its trust store (``imi-gateway reload``; see
gateway.commands.reload). On SIGTERM the listeners stop accepting first, requests
and envelopes in flight finish (or are retried later by their senders, who
have no receipt yet), then the thread pools and the database close.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, TextIO

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    jsonFileLogObserver,
    textFileLogObserver,
)

from gateway.commands.reload import remove_pid_file, write_pid_file
from gateway.config import load_config

log = Logger()


def log_observer(fmt: str, level: str, stream: TextIO) -> ILogObserver:
    """A twisted.logger observer writing ``fmt`` ("text" or "json") at ``level`` and above."""
    # JSON: one event per line (JSON Lines), what log shippers expect.
    base = (
        jsonFileLogObserver(stream, recordSeparator="")
        if fmt == "json"
        else textFileLogObserver(stream)
    )
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(base, [predicate])


def _run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from gateway.core.catalogue import load_catalogues
    from gateway.node import build_node

    config = load_config(args.node_dir)
    fmt = args.log_format or config.logging.format
    level = args.log_level or config.logging.level
    globalLogBeginner.beginLoggingTo(
        [log_observer(fmt, level, sys.stdout)], redirectStandardIO=False
    )
    service, parts = build_node(args.node_dir, reactor, catalogues=load_catalogues())
    exit_status = [0]

    def start() -> None:
        try:
            service.startService()
        except Exception as exc:  # a port in use, most often
            print(f"error: STARTUP_FAILED: {exc}", file=sys.stderr)
            exit_status[0] = 3
            reactor.stop()  # type: ignore[attr-defined]
            return
        write_pid_file(args.node_dir)
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

    def reload() -> None:
        try:
            parts.reload_trust()
        except Exception:  # a half-written or invalid trust file: keep the current trust
            log.failure("Trust reload failed; the node keeps its current trust")

    # Python runs the handler on the main thread between bytecodes; the reload runs
    # on the reactor.
    signal.signal(
        signal.SIGHUP,
        lambda signum, frame: reactor.callFromThread(reload),  # type: ignore[attr-defined]
    )

    def stop() -> Any:
        remove_pid_file(args.node_dir)
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
            "Settings come from NODE_DIR/gateway.toml (see docs/configuration.md). "
            "Exit status: 0 after a clean shutdown, 3 for a configuration, key or start-up "
            "problem."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR", help="the node directory")
    parser.add_argument("--log-format", choices=("text", "json"), help="override [logging] format")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warn", "error", "critical"),
        help="override [logging] level",
    )
    parser.set_defaults(func=_run)
