"""Process hygiene of ``imi-gateway run``: the node directory's lock and systemd notifications.

* **One process per node directory.** A running node holds an ``flock`` on
  ``NODE_DIR/gateway.lock`` for its whole life (the kernel releases it when
  the process ends, however it ends, so a killed node leaves no stale lock).
  ``[node] processes = "single"`` (the default) takes it exclusively: a
  second ``imi-gateway run`` on the directory stops at once with
  ``NODE_ALREADY_RUNNING``. ``processes = "shared"`` (PostgreSQL only) takes
  it shared: several processes of one node may run together, but never
  alongside a "single" one. The lock file holds nothing; the running node's
  process id is recorded in one place, ``NODE_DIR/ports.json``
  (:mod:`gateway.node_ports`).
* **systemd readiness.** :func:`sd_notify` sends ``READY=1``, ``RELOADING=1``,
  ``STOPPING=1`` and ``STATUS=...`` to the socket in ``$NOTIFY_SOCKET`` (the
  protocol of sd_notify(3): one datagram on a Unix socket, a leading ``@``
  meaning the abstract namespace). Without ``$NOTIFY_SOCKET`` it does nothing.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from gateway.core.errors import ConfigurationError

#: The lock file's name inside the node directory.
LOCK_FILE = "gateway.lock"


class NodeAlreadyRunning(ConfigurationError):
    """Another imi-gateway process runs on this node directory (set [node] processes = "shared" to run several on PostgreSQL)."""

    code = "NODE_ALREADY_RUNNING"


class NodeLock:
    """The ``flock`` a running node holds on ``NODE_DIR/gateway.lock`` until :meth:`release`."""

    def __init__(self, node_dir: str | Path, *, shared: bool = False) -> None:
        self.path = Path(node_dir) / LOCK_FILE
        self.shared = shared
        # Not inherited by child processes (Python opens files non-inheritable).
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise NodeAlreadyRunning(
                f"{Path(node_dir)}: another imi-gateway process is running on this node "
                f"directory (it holds {LOCK_FILE}); stop it first, or, with PostgreSQL, set "
                '[node] processes = "shared" for every process of the node'
            ) from None

    def release(self) -> None:
        """Let go of the lock (idempotent); the file stays (removing it would race)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def node_running(node_dir: str | Path) -> bool:
    """True while some process holds the lock of ``node_dir`` (a node runs there)."""
    path = Path(node_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return False


def sd_notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd's notification socket; True if sent.

    Never raises: a supervisor that went away must not stop the node.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "@/":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


__all__ = ["LOCK_FILE", "NodeAlreadyRunning", "NodeLock", "node_running", "sd_notify"]
