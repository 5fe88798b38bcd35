"""The node directory's layout, and the rules every file operation in it follows.

:class:`NodePaths` says where everything lives (the layout is drawn in the
:mod:`gateway.keystore` docstring). The file primitives enforce the rules:
:func:`atomic_write` (temporary file, fsync, rename, fsync of the
directory), ``_locked`` (an exclusive lock on ``NODE_DIR/.lock`` around a
read-modify-write of the trust store or configuration) and ``_read_private``
(a private key file, or its directory, readable by group or others or owned
by another user is refused: :class:`KeyPermissionsTooOpen`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway import config as config_mod
from gateway.keystore.errors import KeyFileMissing, KeyPermissionsTooOpen

KEYS_DIR = "keys"
CERTS_DIR = "certs"
PEERS_DIR = "trust/peers"
NATIONAL_DIR = "national"
REVOKED_FILE = "revoked.txt"
LOCK_FILE = ".lock"
DATA_KEK_FILE = "data.kek"
DATA_KEK_BYTES = 32
NODE_KEY_NAMES = ("ca", "signing", "tls")


REVOKED_HEADER = (
    "# Certificates this node has revoked or unbound: one SHA-256 fingerprint\n"
    "# (hex of the DER encoding) per line; text after '#' is a comment.\n"
    "# Maintained by `imi-gateway keys revoke`.\n"
)


@dataclass(frozen=True)
class NodePaths:
    """Where everything lives in a node directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / config_mod.CONFIG_FILE

    @property
    def keys_dir(self) -> Path:
        return self.root / KEYS_DIR

    @property
    def certs_dir(self) -> Path:
        return self.root / CERTS_DIR

    @property
    def peers_dir(self) -> Path:
        return self.root / PEERS_DIR

    @property
    def national_dir(self) -> Path:
        return self.root / NATIONAL_DIR

    @property
    def revoked(self) -> Path:
        return self.root / REVOKED_FILE

    @property
    def data_kek(self) -> Path:
        return self.keys_dir / DATA_KEK_FILE

    @property
    def database(self) -> Path:
        return self.root / config_mod.DATABASE_FILE

    def key(self, name: str) -> Path:
        """Private key file of ``name`` (``ca``, ``signing`` or ``tls``)."""
        return self.keys_dir / f"{name}.key"

    def cert(self, name: str) -> Path:
        """Certificate file of ``name`` (``ca``, ``signing`` or ``tls``)."""
        return self.certs_dir / f"{name}.pem"

    def peer_dir(self, node_id: str) -> Path:
        return self.peers_dir / node_id

    def national_cert(self, authority_id: str) -> Path:
        return self.national_dir / f"{authority_id}.pem"


def node_paths(node_dir: str | Path) -> NodePaths:
    """The paths of the node directory ``node_dir`` (made absolute)."""
    return NodePaths(Path(node_dir).absolute())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically, the new file having ``mode``.

    The bytes go to a temporary file in the same directory (created with
    ``mode`` from the start, so a private key is never readable by others even
    for a moment), which is fsynced, renamed over ``path``, and the directory
    fsynced: after a crash the file is either the old one or the new one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _require_node_dir(paths: NodePaths) -> None:
    if not paths.config.exists():
        raise config_mod.ConfigNotFound(
            f"{paths.root} is not a node directory (no {config_mod.CONFIG_FILE}); "
            "create one with: imi-gateway init"
        )


@contextlib.contextmanager
def _locked(paths: NodePaths) -> Iterator[None]:
    """Exclusive lock on the node directory for a read-modify-write."""
    _require_node_dir(paths)
    fd = os.open(paths.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_checked(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: {what} is missing") from None


def _read_private(path: Path, what: str) -> bytes:
    """Read a private file, refusing it when others could read it too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: {what} is missing") from None
    try:
        st = os.fstat(fd)
        _check_private_mode(path, st, "file", "600")
        dir_st = os.stat(path.parent)
        _check_private_mode(path.parent, dir_st, "directory", "700")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_private_mode(path: Path, st: os.stat_result, kind: str, fix: str) -> None:
    if st.st_mode & 0o077:
        raise KeyPermissionsTooOpen(
            f"permissions {stat.S_IMODE(st.st_mode):04o} for {kind} {path} are too open: "
            f"private keys must not be accessible to group or others (chmod {fix} {path})"
        )
    if st.st_uid not in (os.geteuid(), 0):
        raise KeyPermissionsTooOpen(
            f"{kind} {path} is owned by uid {st.st_uid}, not by this user ({os.geteuid()})"
        )


def _file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
