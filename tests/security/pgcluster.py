"""A throwaway PostgreSQL cluster for tests that must read the server's own files.

:func:`throwaway_cluster` runs ``initdb`` and ``pg_ctl`` (from
``/usr/lib/postgresql/*/bin``) as an unprivileged user (``initdb`` refuses
root), in a fresh directory under the system temporary directory that this
user owns. The server listens on a unix socket in its data directory only
(``listen_addresses=''``: no TCP port is picked), and the cluster is stopped
and deleted afterwards. Without the binaries the test skips, which fails in
CI (``tests.conftest``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI

#: The unprivileged account the server runs as when the tests run as root.
SERVER_USER = "nobody"


@dataclass(frozen=True)
class Cluster:
    data_dir: Path
    socket_dir: Path

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` over the cluster's unix socket."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        message = "initdb is not installed (apt-get install postgresql)"
        if IN_CI:
            pytest.fail(f"CI must provide this tool: {message}")
        pytest.skip(message)
    return Path(found[-1]).parent


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    assert runuser is not None, "running as root needs runuser or setpriv to drop privileges"
    if runuser.endswith("runuser"):
        return [runuser, "-u", SERVER_USER, "--", *argv]
    user = pwd.getpwnam(SERVER_USER)
    return [
        runuser,
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        *argv,
    ]


def _run(argv: list[str]) -> None:
    subprocess.run(_as_server_user(argv), check=True, capture_output=True, timeout=120, cwd="/")


@contextlib.contextmanager
def throwaway_cluster(*databases: str) -> Iterator[Cluster]:
    """A running cluster with ``databases`` created; stopped and removed afterwards."""
    bin_dir = _bin_dir()
    base = Path(tempfile.mkdtemp(prefix="imi-pg-"))
    data_dir = base / "data"
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(base, user.pw_uid, user.pw_gid)
        _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres"])
        options = f"-c listen_addresses='' -c unix_socket_directories={data_dir} -c wal_recycle=off"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "start",
            ]
        )
        try:
            cluster = Cluster(data_dir, data_dir)
            for name in databases:
                _run([str(bin_dir / "createdb"), "-h", str(data_dir), "-U", "postgres", name])
            yield cluster
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def stop_and_start(cluster: Cluster) -> None:
    """Restart the server (a shutdown checkpoint), keeping its files."""
    bin_dir = _bin_dir()
    _run([str(bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "fast", "-w", "restart"])
