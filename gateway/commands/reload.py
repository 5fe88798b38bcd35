"""``imi-gateway reload NODE_DIR``: make a running node re-read its trust store.

A running node (``imi-gateway run``) records its process id in
``NODE_DIR/ports.json`` once it listens, and removes the file at a clean
stop (gateway.node_ports: the one record of the running process). ``reload`` (and the
commands that change trust: ``keys issue-national``, ``keys import-peer``,
``keys revoke``, ``authorities add/update/remove``) send that process SIGHUP;
the node then re-reads revocations, national systems, peers and directory
listings, gives its TLS listeners and its HTTPS client the new trust for new
connections, and closes open connections whose certificate is no longer
trusted. Nothing is restarted. The node logs each reload (counts only).

A recorded pid whose process is gone, or is not an imi-gateway process, is
ignored (nothing is signalled): there is nothing to reload, and a reused pid
must never receive the signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from gateway.config import load_config
from gateway.node_ports import PORTS_FILE, read_ports_file


def _is_gateway_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs: the liveness check is all we have
        return True
    try:
        return b"gateway" in cmdline.read_bytes()
    except OSError:
        return False


def running_node_pid(node_dir: str | Path) -> int | None:
    """The pid of the node running in ``node_dir``, or None if none runs."""
    ports = read_ports_file(node_dir)
    if ports is None or not _is_gateway_process(ports.pid):
        return None
    return ports.pid


def signal_reload(node_dir: str | Path) -> int | None:
    """Send SIGHUP to the node running in ``node_dir``; its pid, or None if none runs."""
    pid = running_node_pid(node_dir)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
    return pid


def notify_running_node(node_dir: str | Path) -> None:
    """After a trust change: tell a running node to reload, and say what happened."""
    pid = signal_reload(node_dir)
    if pid is None:
        print("No node is running in this directory; it reads the change when it starts.")
    else:
        print(f"Told the running node (pid {pid}) to reload its trust store.")


def _reload(args: argparse.Namespace) -> int:
    load_config(args.node_dir)  # not a node directory: CONFIG_NOT_FOUND, exit status 3
    pid = signal_reload(args.node_dir)
    if pid is None:
        print(
            f"error: no node is running in {args.node_dir} (no live process in {PORTS_FILE})",
            file=sys.stderr,
        )
        return 1
    print(f"Sent SIGHUP to the node (pid {pid}); it logs what the reload changed.")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reload",
        help="make a running node re-read its trust store",
        description=(
            "Make the node running in NODE_DIR re-read its trust store (revocations, national "
            "systems, peers, directory listings) without a restart, by sending it SIGHUP. "
            "New connections use the new trust; open connections whose certificate is no "
            "longer trusted are closed. Exit status: 0 when signalled, 1 when no node runs."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR", help="the node directory")
    parser.set_defaults(func=_reload)
