"""``imi-gateway retention``: which exchanges' personal data is due for erasure, and when.

Reads the node's database (the node may be running) and applies the node's
``[retention]`` limits to every exchange whose personal data is still held:
exchange id, legislation area, state, closed or opened time, due time, and
whether it is overdue (a running node erases overdue exchanges within
``interval_seconds``). Shows metadata only, never personal data.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from gateway.commands.queue import _database
from gateway.config import load_config
from gateway.core.retention import erasure_due_at


def _rows(node_dir: str, limit: int) -> list[dict[str, Any]]:
    from gateway.storage.exchanges import unerased_exchanges_txn  # imported when run

    retention = load_config(node_dir).retention
    db, _node_id = _database(node_dir)
    try:
        exchanges = db.run_txn_sync(unerased_exchanges_txn, limit=limit)
    finally:
        db.engine.dispose()
    now = datetime.now(UTC)
    rows = []
    for ex in exchanges:
        due = erasure_due_at(
            retention.policy(ex.area), opened_at=ex.created_at, closed_at=ex.closed_at
        )
        rows.append(
            {
                "exchange_id": ex.exchange_id,
                "area": ex.area,
                "state": ex.state,
                "opened_at": ex.created_at.isoformat(),
                "closed_at": ex.closed_at.isoformat() if ex.closed_at else None,
                "due_at": due.isoformat(),
                "overdue": due <= now,
            }
        )
    rows.sort(key=lambda r: (r["due_at"], r["exchange_id"]))
    return rows


def _run(args: argparse.Namespace) -> int:
    rows = _rows(args.node_dir, args.limit)
    if args.due_only:
        rows = [r for r in rows if r["overdue"]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no personal data held" if not args.due_only else "nothing is due")
    for r in rows:
        since = f"closed {r['closed_at']}" if r["closed_at"] else f"opened {r['opened_at']}"
        mark = "OVERDUE" if r["overdue"] else "due"
        print(f"{r['exchange_id']}  {r['area']}  {r['state']}  {since}  {mark} {r['due_at']}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "retention",
        help="which exchanges' personal data is due for erasure, and when",
        description=(
            "List the exchanges whose personal data is still held, with the time the node's "
            "[retention] limits make it due for erasure, soonest first. Metadata only."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR")
    parser.add_argument("--due-only", action="store_true", help="only exchanges already due")
    parser.add_argument(
        "--limit", type=int, default=1000, help="look at the oldest this many exchanges"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
