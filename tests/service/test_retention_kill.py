"""A node process killed with SIGKILL in the middle of a retention purge finishes it after restart.

The node directory's database is filled with many exchanges closed long
enough ago to be due; the node (``python -m gateway run``) starts its purge
at once and is killed with SIGKILL once it has logged some erasures. Started
again from the same directory, it erases the rest. The test waits on log
events and process exit, and on the database through ``until``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from gateway.config import load_config
from gateway.core.dataprotect import Sealer
from gateway.keystore import load_data_kek
from gateway.storage.db import Database
from gateway.storage.exchanges import set_exchange_state_txn
from gateway.storage.messages import submit_message_txn
from gateway.testbed import setup_nodes
from tests.nodes import AUTHORITIES
from tests.service.test_kill_restart import STARTUP_TIMEOUT, NodeProcess
from tests.storage.conftest import exchange_info, submission
from tests.waiting import until

EXCHANGES = 3000
KILL_AFTER_ERASURES = 60
RETENTION = """
[retention]
after_closure = "1 minute"
batch_size = 20
"""


class PurgingNode(NodeProcess):
    """A node process killed (SIGKILL) after ``kill_after`` logged erasures, if set."""

    def __init__(self, *args: object, kill_after: int | None = None) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.kill_after = kill_after
        self.erasures = 0

    def outReceived(self, data: bytes) -> None:
        seen = len(self.events)
        super().outReceived(data)
        for event in self.events[seen:]:
            if "Erased the personal data" in event.get("message", ""):
                self.erasures += 1
                if self.erasures == self.kill_after:
                    self.kill()


def seed_due_exchanges(node_dir: Path, count: int) -> None:
    config = load_config(node_dir)
    sealer = Sealer(load_data_kek(node_dir))
    db = Database(config.database.url, reactor=None, inline=True)
    db.migrate()
    opened = datetime.now(UTC) - timedelta(minutes=10)

    def seed(conn: object) -> None:
        for i in range(count):
            exchange_id = f"EX-PURGE-{i:05d}"
            sub = replace(
                submission(f"M-PURGE-{i:05d}", exchange_id=exchange_id),
                exchange=exchange_info(exchange_id),
            )
            submit_message_txn(conn, sub, sealer=sealer, now=opened, node=config.node_id)  # type: ignore[arg-type]
            set_exchange_state_txn(
                conn,  # type: ignore[arg-type]
                exchange_id,
                "closed",
                now=opened + timedelta(minutes=1),
                node=config.node_id,
                closed=True,
            )

    db.run_txn_sync(seed)
    db.engine.dispose()


def erased_count(node_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(node_dir / "gateway.sqlite3")) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM exchanges WHERE erased_at IS NOT NULL"
        ).fetchone()
    return int(count)


@pytest_twisted.ensureDeferred
async def test_a_node_killed_mid_purge_finishes_the_purge_after_restart(tmp_path: Path) -> None:
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config={"NO": RETENTION})
    node_dir = setups["NO"].node_dir
    seed_due_exchanges(node_dir, EXCHANGES)
    first = PurgingNode(setups["NO"], kill_after=KILL_AFTER_ERASURES)
    second = PurgingNode(setups["NO"])
    try:
        first.start(tmp_path).addErrback(lambda _: None)  # killed, maybe before "running"
        await first.ended.addTimeout(STARTUP_TIMEOUT * 2, reactor)  # a bound, not a wait
        assert first.erasures >= KILL_AFTER_ERASURES
        assert KILL_AFTER_ERASURES <= erased_count(node_dir) < EXCHANGES  # killed mid-purge

        await second.start(tmp_path)
        await until(lambda: erased_count(node_dir) == EXCHANGES, timeout=120, step=0.2)
        await second.stop()
        with contextlib.closing(sqlite3.connect(node_dir / "gateway.sqlite3")) as db:
            held = db.execute("SELECT count(*) FROM messages WHERE body IS NOT NULL").fetchone()[0]
            keys = db.execute("SELECT count(*) FROM exchange_keys").fetchone()[0]
            twice = db.execute(
                "SELECT count(*) FROM (SELECT exchange_id FROM tracking"
                " WHERE stage = 'personal_data_erased' GROUP BY exchange_id HAVING count(*) > 1)"
            ).fetchone()[0]
        assert (held, keys, twice) == (0, 0, 0)
    finally:
        await first.stop()
        await second.stop()
