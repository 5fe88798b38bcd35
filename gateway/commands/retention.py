"""``imi-gateway retention``: which exchanges' personal data is due for erasure, and when.

Reads the node's database (the node may be running) and applies the node's
``[retention]`` limits to every exchange whose personal data is still held:
exchange id, legislation area, state, closed or opened time, due time, and
whether it is overdue (a running node erases overdue exchanges within
``interval_seconds``); with the optional blocked stage, when the personal
data was (or will be) blocked. Shows metadata only, never personal data.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from gateway.commands.queue import _database
from gateway.config import load_config
from gateway.core.retention import blocking_due_at, erasure_due_at


def _rows(node_dir: str, limit: int) -> list[dict[str, Any]]:
    from gateway.storage.exchanges import unerased_exchanges_txn  # keeps CLI start-up fast

    retention = load_config(node_dir).retention
    db, _node_id = _database(node_dir)
    try:
        exchanges = db.run_txn_sync(unerased_exchanges_txn, limit=limit)
    finally:
        db.engine.dispose()
    now = datetime.now(UTC)
    rows = []
    for ex in exchanges:
        policy = retention.policy(ex.area)
        due = erasure_due_at(policy, opened_at=ex.created_at, closed_at=ex.closed_at)
        block = blocking_due_at(policy, closed_at=ex.closed_at)
        rows.append(
            {
                "exchange_id": ex.exchange_id,
                "area": ex.area,
                "state": ex.state,
                "opened_at": ex.created_at.isoformat(),
                "closed_at": ex.closed_at.isoformat() if ex.closed_at else None,
                "due_at": due.isoformat(),
                "overdue": due <= now,
                "blocked_at": ex.blocked_at.isoformat() if ex.blocked_at else None,
                "blocking_due_at": block.isoformat() if block and not ex.blocked_at else None,
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
        blocked = ""
        if r["blocked_at"]:
            blocked = f"  blocked {r['blocked_at']}"
        elif r["blocking_due_at"]:
            blocked = f"  blocking due {r['blocking_due_at']}"
        print(
            f"{r['exchange_id']}  {r['area']}  {r['state']}  {since}  {mark} {r['due_at']}{blocked}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "retention",
        help="which exchanges' personal data is due for erasure, and when",
        description=(
            "List the exchanges whose personal data is still held, with the time the node's "
            "[retention] limits make it due for erasure, soonest first, and with "
            "blocked_after set, when it was or will be blocked. Metadata only."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR")
    parser.add_argument("--due-only", action="store_true", help="only exchanges already due")
    parser.add_argument(
        "--limit", type=int, default=1000, help="look at the oldest this many exchanges"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
