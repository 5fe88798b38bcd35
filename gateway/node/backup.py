"""A backup of a node directory and its restore (``imi-gateway backup`` and ``imi-gateway restore``).

A backup holds everything a node needs (docs/backup.md): its configuration,
keys and key-encryption key, certificates, trust (peers, national systems,
revocations), directory files, and, on SQLite, a consistent copy of the
database taken with SQLite's online backup while the node runs. A
PostgreSQL database is backed up with the server's tools (``pg_dump``); the
backup says so. ``backup.json`` lists every file with its SHA-256, which
``restore`` checks before it writes anything.

The backup holds private keys and the key-encryption key: DEST is created
with mode 0700 and must be kept like the node directory itself.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway.config import load_config
from gateway.config.secrets import database_url
from gateway.core.docxml import sha256_hex
from gateway.core.errors import ConfigurationError
from gateway.node.process import LOCK_FILE, node_running
from gateway.node_ports import PORTS_FILE

MANIFEST = "backup.json"
DATABASE_COPY = "database.sqlite3"
FILES_DIR = "node"
FORMAT = 1

#: Files of a running node that are not state (its lock, its ports) or are copied apart.
_SKIPPED_NAMES = frozenset({LOCK_FILE, PORTS_FILE, ".lock"})


class BackupDestinationExists(ConfigurationError):
    """The backup destination exists and is not empty; choose a new directory."""

    code = "BACKUP_DESTINATION_EXISTS"


class BackupInvalid(ConfigurationError):
    """The backup is incomplete or altered (a file is missing or its SHA-256 differs from backup.json)."""

    code = "BACKUP_INVALID"


class RestoreTargetNotEmpty(ConfigurationError):
    """The node directory to restore into exists and is not empty; restore into an empty one."""

    code = "RESTORE_TARGET_NOT_EMPTY"


def _sqlite_file(node_dir: Path) -> Path | None:
    url = make_url(database_url(load_config(node_dir)))
    return Path(str(url.database)) if url.get_backend_name() == "sqlite" else None


def _state_files(node_dir: Path, database: Path | None) -> list[Path]:
    skipped = set()
    if database is not None:
        skipped = {database, Path(f"{database}-wal"), Path(f"{database}-shm")}
        skipped |= {Path(f"{database}-journal")}
    files = []
    for path in sorted(node_dir.rglob("*")):
        if not path.is_file() or path in skipped or path.name in _SKIPPED_NAMES:
            continue
        if path.name.endswith(".tmp"):  # an atomic write in progress
            continue
        files.append(path)
    return files


def _new_private_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise BackupDestinationExists(f"{path}: exists and is not empty")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def backup(node_dir: Path, dest: Path) -> dict[str, object]:
    """Write a backup of ``node_dir`` into the new directory ``dest``; its manifest."""
    config = load_config(node_dir)
    node_dir = config.node_dir
    database = _sqlite_file(node_dir)
    _new_private_dir(dest)
    digests: dict[str, str] = {}
    if database is not None:
        copy = dest / DATABASE_COPY
        if not database.is_file():
            raise BackupInvalid(f"{database}: the node's database does not exist (never run?)")
        # SQLite's online backup: a consistent snapshot while the node keeps writing.
        with (
            contextlib.closing(sqlite3.connect(database, timeout=30)) as source,
            contextlib.closing(sqlite3.connect(copy)) as target,
        ):
            source.backup(target)
        copy.chmod(0o600)
        digests[DATABASE_COPY] = sha256_hex(copy.read_bytes())
    for path in _state_files(node_dir, database):
        relative = path.relative_to(node_dir)
        target_path = dest / FILES_DIR / relative
        target_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(path, target_path)
        digests[f"{FILES_DIR}/{relative.as_posix()}"] = sha256_hex(target_path.read_bytes())
    manifest: dict[str, object] = {
        "format": FORMAT,
        "node": config.node_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "database": "sqlite" if database is not None else "postgresql: not included (pg_dump)",
        "files": digests,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _checked_manifest(source: Path) -> dict[str, object]:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BackupInvalid(f"{source}: no readable {MANIFEST}: not a backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupInvalid(f"{source}/{MANIFEST}: unknown backup format")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BackupInvalid(f"{source}/{MANIFEST}: no file list")
    for name, digest in sorted(files.items()):
        path = source / name
        if not path.is_file():
            raise BackupInvalid(f"{name}: missing from the backup")
        if sha256_hex(path.read_bytes()) != digest:
            raise BackupInvalid(f"{name}: its SHA-256 differs from {MANIFEST}")
    return manifest


def restore(source: Path, node_dir: Path) -> dict[str, object]:
    """Restore the backup in ``source`` into the empty (or new) ``node_dir``; the manifest."""
    manifest = _checked_manifest(source)
    if node_running(node_dir):
        raise RestoreTargetNotEmpty(f"{node_dir}: a node is running there")
    if node_dir.exists() and any(node_dir.iterdir()):
        raise RestoreTargetNotEmpty(f"{node_dir}: exists and is not empty")
    node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copytree(source / FILES_DIR, node_dir, dirs_exist_ok=True)
    if manifest.get("database") == "sqlite":
        database = _sqlite_file(node_dir)
        if database is None:
            raise BackupInvalid(
                "the backup holds a SQLite database, the configuration names another"
            )
        if database.exists():
            raise RestoreTargetNotEmpty(f"{database}: a database file is already there")
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / DATABASE_COPY, database)
    return manifest
