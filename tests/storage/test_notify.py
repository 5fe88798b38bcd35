"""Database notifications between processes sharing one PostgreSQL database.

Two :class:`Database` objects on one database stand for two worker
processes: what one commits wakes the :class:`NotificationListener` of the
other, a rolled-back transaction wakes nobody, and a listener whose
connection the server kills reconnects, looks again (``resync``) and hears
what follows. The tests run on the real reactor and wait with
``tests.waiting.until``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import text
from twisted.internet import reactor
from twisted.logger import LogLevel, globalLogPublisher

from gateway.core.retry import Backoff
from gateway.storage.db import Database
from gateway.storage.messages import store_inbound_envelope_txn, submit_message_txn
from gateway.storage.notify import (
    DELIVERIES_CHANNEL,
    OUTBOX_CHANNEL,
    NotificationListener,
    notify_txn,
)
from gateway.storage.outbox import claim_outbox_txn, mark_outbox_dead_txn, retry_dead_letters_txn
from tests.waiting import until

from .conftest import NODE, PEER, T0, envelope, payload, submission

ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
FAST = Backoff(initial_seconds=0.05, max_seconds=0.2)


class Heard:
    """What a listener passed on: (channel, id) in order, and how often it resynced."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []
        self.resyncs = 0

    def listener(self, db: Database, **kw: Any) -> NotificationListener:
        return NotificationListener(
            db.engine,
            reactor=reactor,
            handlers={
                DELIVERIES_CHANNEL: lambda key: self.notes.append((DELIVERIES_CHANNEL, key)),
                OUTBOX_CHANNEL: lambda key: self.notes.append((OUTBOX_CHANNEL, key)),
            },
            resync=self.resync,
            **kw,
        )

    def resync(self) -> None:
        self.resyncs += 1


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
def warnings() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") == LogLevel.warn:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def _marker(conn: Any) -> None:
    notify_txn(conn, OUTBOX_CHANNEL, ["MARKER"])


@ON_POSTGRESQL
@pytest_twisted.ensureDeferred
async def test_what_one_database_commits_wakes_the_listener_of_another(
    db, make_database, sealer, heard
) -> None:
    other = make_database()  # another process on the same database
    listener = heard.listener(other)
    listener.startService()
    try:
        await until(lambda: heard.resyncs == 1, timeout=10)
        db.run_txn_sync(submit_message_txn, submission("MSG-1"), sealer=sealer, now=T0, node=NODE)
        await until(lambda: heard.notes, timeout=10)
        assert heard.notes == [(OUTBOX_CHANNEL, PEER)]

        stored = envelope("ENV-1", payload("IN-1"), payload("IN-2", exchange_id="EX-8"))
        db.run_txn_sync(store_inbound_envelope_txn, stored, sealer=sealer, now=T0, node=NODE)
        await until(lambda: len(heard.notes) > 1, timeout=10)
        # One notification per authority and transaction, whatever it stored for it.
        assert heard.notes[1:] == [(DELIVERIES_CHANNEL, "NO-HELSEDIR")]
    finally:
        await listener.stopService()


@ON_POSTGRESQL
@pytest_twisted.ensureDeferred
async def test_dead_letters_requeued_elsewhere_wake_the_peers_queue(
    db, make_database, sealer, heard
) -> None:
    # ``imi-gateway queue --retry`` runs in a process of its own, beside the running node.
    db.run_txn_sync(submit_message_txn, submission("MSG-9"), sealer=sealer, now=T0, node=NODE)
    items = db.run_txn_sync(claim_outbox_txn, PEER, now=T0, lease=timedelta(seconds=30), limit=5)
    db.run_txn_sync(mark_outbox_dead_txn, items, reason="PEER_REFUSED", now=T0, node=NODE)
    listener = heard.listener(make_database())
    listener.startService()
    try:
        await until(lambda: heard.resyncs == 1, timeout=10)
        assert db.run_txn_sync(retry_dead_letters_txn, peer_node=PEER, now=T0, node=NODE) == 1
        await until(lambda: heard.notes, timeout=10)
        assert heard.notes == [(OUTBOX_CHANNEL, PEER)]
    finally:
        await listener.stopService()


@ON_POSTGRESQL
@pytest_twisted.ensureDeferred
async def test_a_rolled_back_transaction_notifies_nothing(db, make_database, sealer, heard) -> None:
    listener = heard.listener(make_database())
    listener.startService()
    try:
        await until(lambda: heard.resyncs == 1, timeout=10)

        def stored_then_failed(conn: Any) -> None:
            stored = envelope("ENV-2", payload("IN-3"))
            store_inbound_envelope_txn(conn, stored, sealer=sealer, now=T0, node=NODE)
            raise RuntimeError("rolled back after storing")

        with pytest.raises(RuntimeError):
            db.run_txn_sync(stored_then_failed)
        # Notifications arrive in commit order: once the marker committed after it is
        # heard, the rolled-back transaction's would have been heard before it.
        db.run_txn_sync(_marker)
        await until(lambda: heard.notes, timeout=10)
        assert heard.notes == [(OUTBOX_CHANNEL, "MARKER")]
    finally:
        await listener.stopService()


@ON_POSTGRESQL
@pytest_twisted.ensureDeferred
async def test_a_listener_whose_connection_is_killed_reconnects_and_looks_again(
    db, make_database, heard, warnings
) -> None:
    listener = heard.listener(make_database(), backoff=FAST)
    listener.startService()
    try:
        await until(lambda: heard.resyncs == 1, timeout=10)
        killed = listener.backend_pid
        with db.engine.connect() as conn:
            ended = conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
            assert ended.scalar() is True
        # Back on a new connection, it looks again (what was notified meanwhile is lost).
        await until(lambda: heard.resyncs == 2, timeout=20)
        assert listener.backend_pid not in (None, killed)
        assert [e["log_format"] for e in warnings if "notifications" in e["log_format"]]
        db.run_txn_sync(_marker)
        await until(lambda: heard.notes, timeout=10)
        assert heard.notes == [(OUTBOX_CHANNEL, "MARKER")]
    finally:
        await listener.stopService()


def test_sqlite_has_no_listener_and_notifies_nothing(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'node.db'}", reactor=reactor)
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            NotificationListener(db.engine, reactor=reactor, handlers={}, resync=lambda: None)
        db.run_txn_sync(_marker)  # no pg_notify on SQLite: nothing to fail
    finally:
        db.stop()
