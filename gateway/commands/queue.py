"""``imi-gateway queue``: outbound queues per peer, dead letters, and their retry.

Works on the node's database directly, while the node runs or not; a
running node picks requeued documents up within seconds (its senders look
at the queue at least every few seconds).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.config import load_config
from gateway.core.retry import ABANDON_REASONS

if TYPE_CHECKING:
    from gateway.storage.db import Database


class _NoReactor:
    """The CLI runs transactions synchronously; Database only needs these for its pool."""

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:  # pragma: no cover
        f(*args, **kw)

    def callLater(self, delay: float, f: Any, *args: Any) -> None:  # pragma: no cover
        # Only the asynchronous writer queue schedules; the CLI uses run_txn_sync.
        raise RuntimeError("the CLI runs its transactions synchronously (run_txn_sync)")

    def addSystemEventTrigger(self, *args: Any, **kw: Any) -> None:  # pragma: no cover
        return None

    def removeSystemEventTrigger(self, trigger: Any) -> None:  # pragma: no cover
        return None


def _database(node_dir: str) -> tuple[Database, str]:
    from gateway.config.secrets import database_url
    from gateway.storage.db import Database  # imported when run: keeps CLI start-up fast

    config = load_config(node_dir)
    db = Database(database_url(config), reactor=_NoReactor(), threads=1)
    db.migrate()  # idempotent; a node that never ran gets its (empty) schema
    return db, config.node_id


def _run(args: argparse.Namespace) -> int:
    from gateway.storage.outbox import (
        abandon_dead_letters_txn,
        dead_letters_txn,
        outbox_depth_txn,
        retry_dead_letters_txn,
    )

    db, node_id = _database(args.node_dir)
    try:
        if args.abandon:
            if not args.reason:
                args.parser.error("--abandon needs --reason")
            count = db.run_txn_sync(
                abandon_dead_letters_txn,
                [int(i) for i in args.abandon],
                reason=args.reason,
                now=datetime.now(UTC),
                node=node_id,
            )
            print(f"abandoned {count} dead letter(s)")
            return 0
        if args.retry or args.retry_all:
            ids = None if args.retry_all else [int(i) for i in args.retry]
            count = db.run_txn_sync(
                retry_dead_letters_txn,
                ids,
                peer_node=args.peer,
                now=datetime.now(UTC),
                node=node_id,
            )
            print(f"requeued {count} dead letter(s)")
            return 0
        if args.dead:
            rows = db.run_txn_sync(dead_letters_txn, peer_node=args.peer, limit=args.limit)
            if args.json:
                print(json.dumps([_dead_json(r) for r in rows], indent=2))
                return 0
            if not rows:
                print("no dead letters")
            for r in rows:
                print(
                    f"{r.id:>8}  {r.peer_node}  {r.document_type:22} {r.message_id}  "
                    f"attempts {r.attempts}  reason {r.dead_reason or r.last_error or '-'}"
                )
            return 0
        depth = db.run_txn_sync(outbox_depth_txn)
        if args.peer:
            depth = [d for d in depth if d.peer_node == args.peer]
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "peer": d.peer_node,
                            "state": d.state,
                            "count": d.count,
                            "oldest": d.oldest_created_at.isoformat()
                            if d.oldest_created_at
                            else None,
                        }
                        for d in depth
                    ],
                    indent=2,
                )
            )
            return 0
        if not depth:
            print("outbound queues are empty")
        for d in depth:
            oldest = d.oldest_created_at.isoformat() if d.oldest_created_at else "-"
            print(f"{d.peer_node}  {d.state:9} {d.count:>8}  oldest {oldest}")
        return 0
    finally:
        db.engine.dispose()


def _dead_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "peer": r.peer_node,
        "message_id": r.message_id,
        "exchange_id": r.exchange_id,
        "document_type": r.document_type,
        "attempts": r.attempts,
        "reason": r.dead_reason,
        "last_error": r.last_error,
        "created_at": r.created_at.isoformat(),
    }


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "queue",
        help="outbound queues per peer, dead letters and their retry",
        description=(
            "Show the outbound queue of each peer (pending, in flight, sent, dead), list dead "
            "letters with their reason codes, or requeue them. Document bodies are never shown."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR")
    parser.add_argument("--peer", metavar="CC", help="only this peer node")
    parser.add_argument("--dead", action="store_true", help="list dead letters")
    parser.add_argument("--limit", type=int, default=100, help="at most this many dead letters")
    parser.add_argument(
        "--retry", nargs="+", metavar="ID", default=[], help="requeue these dead letters"
    )
    parser.add_argument(
        "--retry-all", action="store_true", help="requeue every dead letter (of --peer)"
    )
    parser.add_argument(
        "--abandon",
        nargs="+",
        metavar="ID",
        default=[],
        help="give up on these dead letters for good (with --reason)",
    )
    parser.add_argument(
        "--reason", choices=ABANDON_REASONS, help="why the dead letters are abandoned"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run, parser=parser)
