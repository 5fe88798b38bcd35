"""``imi-gateway db status|upgrade NODE_DIR``: the node database's schema (Alembic migrations).

``status`` prints the revision the database is at, the newest revision this
gateway ships and the migrations still to apply; ``upgrade`` applies them
(what ``imi-gateway run`` also does at start, with a log line). Both name
the database by ``host:port`` (or its file), never with its credentials.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.config import load_config


class _NoReactor:
    """The CLI runs transactions synchronously; Database only needs these for its pool."""

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:  # pragma: no cover
        f(*args, **kw)

    def callLater(self, delay: float, f: Any, *args: Any) -> None:  # pragma: no cover
        f(*args)

    def addSystemEventTrigger(self, *args: Any, **kw: Any) -> None:  # pragma: no cover
        return None

    def removeSystemEventTrigger(self, trigger: Any) -> None:  # pragma: no cover
        return None


def _database(node_dir: str) -> Any:
    from gateway.config.secrets import database_url
    from gateway.storage.db import Database

    config = load_config(node_dir)
    return Database(database_url(config), reactor=_NoReactor(), threads=1)


def _status(args: argparse.Namespace) -> int:
    db = _database(args.node_dir)
    try:
        status = db.schema_status()
    finally:
        db.engine.dispose()
    if args.json:
        print(
            json.dumps(
                {
                    "database": db.server,
                    "current": status.current,
                    "head": status.head,
                    "pending": list(status.pending),
                }
            )
        )
    else:
        print(f"database: {db.dialect_name} {db.server}")
        print(f"current revision: {status.current or 'none (empty database)'}")
        print(f"newest revision:  {status.head}")
        if status.pending:
            print(f"pending migrations: {' '.join(status.pending)} (run: imi-gateway db upgrade)")
        else:
            print("pending migrations: none (the schema is current)")
    return 1 if status.pending else 0


def _upgrade(args: argparse.Namespace) -> int:
    db = _database(args.node_dir)
    try:
        applied = db.migrate()
    finally:
        db.engine.dispose()
    if applied:
        print(f"applied {len(applied)} migration(s): {' '.join(applied)}; now at {applied[-1]}")
    else:
        print("the schema is current; nothing to apply")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "db",
        help="show or upgrade the node database's schema",
        description=(
            "The schema of the node's database (database.url in NODE_DIR/gateway.toml, with "
            "database.url_file, password_file or password_env). 'imi-gateway run' migrates "
            "the schema at start; run 'db upgrade' yourself to migrate before a start (e.g. "
            "once, when several processes share a PostgreSQL database). Exit status: "
            "status: 0 when the schema is current, 1 when migrations are pending; upgrade: 0; "
            "both: 3 for a configuration or database problem (DATABASE_DRIVER_MISSING, "
            "DATABASE_UNAVAILABLE, DATABASE_SCHEMA_TOO_NEW...)."
        ),
    )
    commands = parser.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="current revision, newest revision, pending migrations",
        description=(
            "Print the revision the database is at, the newest one this gateway ships and "
            "the migrations still to apply. Exit status 0 when current, 1 when migrations "
            "are pending, 3 for a configuration or database problem."
        ),
    )
    status.add_argument("node_dir", metavar="NODE_DIR", help="the node directory")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=_status)
    upgrade = commands.add_parser(
        "upgrade",
        help="apply the pending migrations",
        description=(
            "Apply the pending migrations in one transaction (safe while other processes of "
            "the node start: they wait for it). Refuses a schema newer than this gateway "
            "(DATABASE_SCHEMA_TOO_NEW). Exit status 0, or 3 for a configuration or "
            "database problem."
        ),
    )
    upgrade.add_argument("node_dir", metavar="NODE_DIR", help="the node directory")
    upgrade.set_defaults(func=_upgrade)
