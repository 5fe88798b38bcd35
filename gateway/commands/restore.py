"""``imi-gateway restore BACKUP NODE_DIR``: a backup checked and restored (gateway/node/backup.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _restore(args: argparse.Namespace) -> int:
    from gateway.node.backup import restore  # imported when run: keeps CLI start-up fast

    manifest = restore(Path(args.backup), Path(args.node_dir))
    print(f"restored node {manifest['node']} from the backup of {manifest['created']}")
    if manifest["database"] != "sqlite":
        print("restore its PostgreSQL database with pg_restore (see docs/backup.md)")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore a backup into an empty node directory",
        description=(
            "Check every file of BACKUP against its backup.json digest, then restore it "
            "into NODE_DIR, which must be empty or new (no node may run there). Start the "
            "node afterwards with 'imi-gateway run'; see docs/backup.md for what to do about "
            "documents accepted after the backup. Exit status 0, or 3 (BACKUP_INVALID, "
            "RESTORE_TARGET_NOT_EMPTY)."
        ),
    )
    parser.add_argument("backup", metavar="BACKUP", help="a directory written by 'backup'")
    parser.add_argument("node_dir", metavar="NODE_DIR", help="the node directory to restore into")
    parser.set_defaults(func=_restore)
