"""``NODE_DIR/ports.json``: the ports a running node bound, for whoever started it.

A listener configured with port 0 binds any free port, so only the node
knows the port once it listens (no port is picked beforehand and released,
which another process could take in between). When all its listeners are up
the node writes, atomically::

    {"api": 40123, "peer": 40124, "metrics": 40125, "pid": 5678}

and removes the file at a clean stop. A node run by several worker processes
(``imi-gateway run --workers N``, :mod:`gateway.node.workers`) has one file,
written by its supervisor: ``pid`` is the supervisor's (the process that
``imi-gateway reload`` signals; it forwards the signal) and ``workers`` lists
the workers' pids. The test bed, the demo and the
benchmark read it for nodes running in other processes (in-process callers
read ``Listener.port``). The ``pid`` tells a fresh file from one a killed
process left behind.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from twisted.application.service import Service

from gateway.core.errors import GatewayError

#: The file's name inside the node directory.
PORTS_FILE = "ports.json"


class PortsFileMissing(GatewayError):
    """The node did not report its ports in time (it did not start, or it died)."""

    code = "PORTS_FILE_MISSING"


class _Bound(Protocol):
    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class NodePorts:
    """The ports a running node listens on, and its process id."""

    api: int
    peer: int
    metrics: int
    pid: int
    #: The admin console's port, when it is enabled.
    console: int | None = None
    #: The worker processes' pids when a supervisor runs the node (``run --workers N``).
    workers: tuple[int, ...] = ()


def ports_path(node_dir: str | Path) -> Path:
    return Path(node_dir) / PORTS_FILE


class PortsFile(Service):
    """Writes the ports file when started (after the listeners), removes it when stopped."""

    name = "ports-file"

    def __init__(
        self,
        node_dir: str | Path,
        api: _Bound,
        peer: _Bound,
        metrics: _Bound,
        console: _Bound | None = None,
    ) -> None:
        self._path = ports_path(node_dir)
        self._listeners = {"api": api, "peer": peer, "metrics": metrics}
        if console is not None:
            self._listeners["console"] = console

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        ports = {name: lst.port for name, lst in self._listeners.items()}
        write_ports_file(
            self._path.parent,
            NodePorts(
                ports["api"], ports["peer"], ports["metrics"], os.getpid(), ports.get("console")
            ),
        )

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        remove_ports_file(self._path.parent)


def write_ports_file(node_dir: str | Path, ports: NodePorts) -> None:
    """Write ``ports`` atomically (readers see the old file or the whole new one)."""
    path = ports_path(node_dir)
    record: dict[str, object] = {
        "api": ports.api,
        "peer": ports.peer,
        "metrics": ports.metrics,
        "pid": ports.pid,
    }
    if ports.console is not None:
        record["console"] = ports.console
    if ports.workers:
        record["workers"] = list(ports.workers)
    tmp = path.with_name(f".{PORTS_FILE}.{os.getpid()}.tmp")
    tmp.write_bytes(json.dumps(record).encode())
    tmp.replace(path)


def remove_ports_file(node_dir: str | Path) -> None:
    """Remove the ports file if this process wrote it (a newer process's file stays)."""
    if (read_ports_file(node_dir) or _NOBODY).pid == os.getpid():
        ports_path(node_dir).unlink(missing_ok=True)


_NOBODY = NodePorts(0, 0, 0, 0)


def read_ports_file(node_dir: str | Path) -> NodePorts | None:
    """The ports file of ``node_dir``, or None if there is none (or it is not a ports file)."""
    try:
        data = json.loads(ports_path(node_dir).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, Mapping):
        return None
    values = [data.get(k) for k in ("api", "peer", "metrics", "pid")]
    workers = data.get("workers", [])
    if not isinstance(workers, list):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in [*values, *workers]):
        return None
    console = data.get("console")
    if not isinstance(console, int) or isinstance(console, bool):
        console = None
    api, peer, metrics, pid = values
    return NodePorts(api, peer, metrics, pid, console, tuple(workers))  # type: ignore[arg-type]


def wait_for_ports_file(
    node_dir: str | Path,
    pid: int,
    *,
    timeout: float = 60.0,
    alive: Callable[[], bool] = lambda: True,
) -> NodePorts:
    """The ports the node process ``pid`` reported in ``node_dir``; waits at most ``timeout``.

    Blocking (for benchmark drivers and other synchronous callers). Gives up
    at once when ``alive()`` turns false (the process exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        ports = read_ports_file(node_dir)
        if ports is not None and ports.pid == pid:
            return ports
        if not alive():
            raise PortsFileMissing(f"node process {pid} exited before it reported its ports")
        if time.monotonic() >= deadline:
            raise PortsFileMissing(f"node process {pid} reported no ports in {timeout:g} s")
        time.sleep(0.05)


__all__ = [
    "PORTS_FILE",
    "NodePorts",
    "PortsFile",
    "PortsFileMissing",
    "read_ports_file",
    "remove_ports_file",
    "wait_for_ports_file",
    "write_ports_file",
]
