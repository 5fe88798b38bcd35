"""``imi-gateway backup NODE_DIR DEST``: a copy of everything a node needs (gateway/node/backup.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _backup(args: argparse.Namespace) -> int:
    from gateway.node.backup import backup  # imported when run: keeps CLI start-up fast

    manifest = backup(Path(args.node_dir), Path(args.dest))
    files = manifest["files"]
    assert isinstance(files, dict)
    print(f"backed up node {manifest['node']} to {args.dest}: {len(files)} file(s)")
    if manifest["database"] != "sqlite":
        print(
            "the database is PostgreSQL: back it up with pg_dump (see docs/backup.md)",
            file=sys.stderr,
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="back up a node directory (and its SQLite database) while the node runs",
        description=(
            "Copy everything the node in NODE_DIR needs into the new directory DEST (mode "
            "0700): configuration, keys and key-encryption key, certificates, trust, "
            "directory files, and a consistent online copy of a SQLite database. A "
            "PostgreSQL database is backed up with pg_dump (docs/backup.md). DEST holds "
            "private keys: keep it like the node directory. Exit status 0, or 3 "
            "(BACKUP_DESTINATION_EXISTS, a configuration problem)."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR", help="the node directory")
    parser.add_argument("dest", metavar="DEST", help="a new (or empty) directory for the backup")
    parser.set_defaults(func=_backup)
