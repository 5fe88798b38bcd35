"""A peer sender on its own: ``task.Clock``, a file-backed SQLite database run inline, a fake peer.

No real reactor, no threads, no sleeps: the test advances the clock and the
sender's retries, backoff and dead letter follow it (set-up: :mod:`tests.service.clocked`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.core.retry import Backoff
from gateway.service.outbound import PeerSender
from gateway.storage.db import Database
from gateway.storage.messages import submit_message_txn
from gateway.storage.tables import outbox
from gateway.transport.client import PeerUnreachable
from tests.service.clocked import ScriptedClient, clocked_node
from tests.storage.conftest import NODE, PEER, T0, submission


def outbox_rows(db: Database) -> list[tuple[str, int, str | None, str | None]]:
    def read(conn):  # type: ignore[no-untyped-def]
        query = outbox.select().order_by(outbox.c.id)
        return [(r.state, r.attempts, r.last_error, r.dead_reason) for r in conn.execute(query)]

    return db.run_txn_sync(read)


def test_a_failing_peer_is_retried_after_the_backoff_on_the_clock_then_dead_lettered(
    tmp_path: Path,
) -> None:
    node = clocked_node(tmp_path)
    clock, db = node.clock, node.db
    db.run_txn_sync(submit_message_txn, submission(), sealer=node.runtime.sealer, now=T0, node=NODE)
    peer = ScriptedClient([PeerUnreachable("peer PT is unreachable")])
    sender = PeerSender(
        PEER,
        "https://pt.example",
        runtime=node.runtime,
        client=peer,  # type: ignore[arg-type]
        receipt_trust=lambda: None,  # type: ignore[arg-type,return-value]
        backoff=Backoff(10.0, 10.0, 0.0),
        batch_size=10,
        dead_letter_after=timedelta(days=1),
        max_attempts=2,
    )
    sender.startService()
    clock.advance(0)
    assert len(peer.posts) == 1
    assert outbox_rows(db) == [("pending", 1, "PEER_UNREACHABLE", None)]

    sender.wake()  # backing off: a wake-up does not skip the backoff
    clock.advance(9.9)
    assert len(peer.posts) == 1

    clock.advance(0.1)
    assert len(peer.posts) == 2
    assert outbox_rows(db) == [("dead", 2, "PEER_UNREACHABLE", "PEER_UNREACHABLE")]

    clock.advance(3600)
    assert len(peer.posts) == 2  # nothing left to send
    sender.stopService()
    node.stop()
