"""A peer sender on its own: ``task.Clock``, a file-backed SQLite database run inline, a fake peer.

No real reactor, no threads, no sleeps: the test advances the clock and the
sender's retries, backoff and dead letter follow it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from gateway.core.dataprotect import Sealer, new_kek
from gateway.core.retry import Backoff
from gateway.service.metrics import NodeMetrics
from gateway.service.outbound import PeerSender
from gateway.service.runtime import ReactorClock, Runtime, inline
from gateway.storage.db import Database
from gateway.storage.messages import submit_message_txn
from gateway.storage.tables import outbox
from gateway.transport.client import HTTPAnswer, PeerUnreachable
from tests.storage.conftest import NODE, PEER, T0, submission
from tests.test_directory_store import make_node, signer


class UnreachablePeer:
    """An HTTPS client whose every POST fails as an unreachable peer would."""

    def __init__(self) -> None:
        self.posts = 0

    def post(self, url: str, body: bytes) -> Deferred[HTTPAnswer]:
        self.posts += 1
        return fail(PeerUnreachable("peer PT is unreachable"))


def outbox_rows(db: Database) -> list[tuple[str, int, str | None, str | None]]:
    def read(conn):  # type: ignore[no-untyped-def]
        query = outbox.select().order_by(outbox.c.id)
        return [(r.state, r.attempts, r.last_error, r.dead_reason) for r in conn.execute(query)]

    return db.run_txn_sync(read)


def test_a_failing_peer_is_retried_after_the_backoff_on_the_clock_then_dead_lettered(
    tmp_path: Path,
) -> None:
    clock = Clock()
    clock.advance(T0.timestamp())
    sealer = Sealer(new_kek())
    db = Database(f"sqlite:///{tmp_path / 'node.db'}", reactor=clock, inline=True)
    db.migrate()
    db.run_txn_sync(submit_message_txn, submission(), sealer=sealer, now=T0, node=NODE)
    runtime = Runtime(
        node_id=NODE,
        clock=ReactorClock(clock),
        db=db,
        cpu=inline,
        signer=signer(make_node(tmp_path, "NO")),
        sealer=sealer,
        metrics=NodeMetrics(),
    )
    peer = UnreachablePeer()
    sender = PeerSender(
        PEER,
        "https://pt.example",
        runtime=runtime,
        client=peer,  # type: ignore[arg-type]
        receipt_trust=lambda: None,  # type: ignore[arg-type,return-value]
        backoff=Backoff(10.0, 10.0, 0.0),
        batch_size=10,
        dead_letter_after=timedelta(days=1),
        max_attempts=2,
    )
    sender.startService()
    clock.advance(0)
    assert peer.posts == 1
    assert outbox_rows(db) == [("pending", 1, "PEER_UNREACHABLE", None)]

    sender.wake()  # backing off: a wake-up does not skip the backoff
    clock.advance(9.9)
    assert peer.posts == 1

    clock.advance(0.1)
    assert peer.posts == 2
    assert outbox_rows(db) == [("dead", 2, "PEER_UNREACHABLE", "PEER_UNREACHABLE")]

    clock.advance(3600)
    assert peer.posts == 2  # nothing left to send
    sender.stopService()
    assert not clock.getDelayedCalls()
