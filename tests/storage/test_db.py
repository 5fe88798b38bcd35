"""The transaction runner: engines, transactions, retries, UTC timestamps, the thread pool."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
import pytest_twisted
from sqlalchemy import insert, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError, StatementError

from gateway.core.errors import Unavailable
from gateway.storage.db import Database, read_only
from gateway.storage.engine import create_engine_for, normalise_url
from gateway.storage.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    DuplicateMessage,
    UnsupportedDatabase,
)
from gateway.storage.messages import load_message_txn, submit_message_txn
from gateway.storage.tables import tracking
from gateway.storage.tracking import tracking_events_txn

from .conftest import NODE, T0, submission


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg2://u@h/db",
    ],
)
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedDatabase) as caught:
        create_engine_for(url)
    assert caught.value.code == "DATABASE_URL_UNSUPPORTED"


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:////var/lib/imi/node.db").drivername == "sqlite"


def test_timestamps_round_trip_as_aware_utc(db) -> None:
    oslo = timezone(timedelta(hours=2))
    local = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=oslo)

    def write(conn):
        conn.execute(insert(tracking).values(exchange_id="EX", stage="s", at=local, node=NODE))

    db.run_txn_sync(write)
    (event,) = db.run_txn_sync(tracking_events_txn, "EX")
    assert event.at == local
    assert event.at.tzinfo == UTC
    assert event.at.hour == 12

    def naive(conn):
        conn.execute(
            insert(tracking).values(exchange_id="EX", stage="s", at=datetime(2025, 1, 1), node=NODE)
        )

    with pytest.raises(StatementError, match="naive datetime"):
        db.run_txn_sync(naive)


def test_timestamps_compare_in_time_order_across_offsets(db) -> None:
    # 10:00+02:00 is before 09:30Z; both must compare as instants.
    early = datetime(2025, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    late = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)

    def write(conn):
        conn.execute(
            insert(tracking),
            [
                {"exchange_id": "EX", "stage": "late", "at": late, "node": NODE},
                {"exchange_id": "EX", "stage": "early", "at": early, "node": NODE},
            ],
        )

    db.run_txn_sync(write)
    found = db.run_txn_sync(
        lambda conn: list(
            conn.execute(select(tracking.c.stage).where(tracking.c.at < late)).scalars()
        )
    )
    assert found == ["early"]


def _locked_error() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


def _serialization_error() -> OperationalError:
    return OperationalError(
        "UPDATE", {}, psycopg.errors.SerializationFailure("could not serialize")
    )


@pytest.mark.parametrize("make_error", [_locked_error, _serialization_error])
def test_lock_and_serialization_failures_are_retried(db, make_error) -> None:
    calls: list[int] = []

    def flaky(conn, value):
        calls.append(1)
        conn.execute(
            insert(tracking).values(exchange_id="EX", stage=f"try{len(calls)}", at=T0, node=NODE)
        )
        if len(calls) < 3:
            raise make_error()
        return value

    assert db.run_txn_sync(flaky, "done") == "done"
    assert len(calls) == 3
    # The failed attempts were rolled back; only the last one's row is there.
    assert [e.stage for e in db.run_txn_sync(tracking_events_txn, "EX")] == ["try3"]


def test_retries_give_up_with_database_busy(make_database) -> None:
    db = make_database(retries=2)
    calls: list[int] = []

    def always_locked(conn):
        calls.append(1)
        raise _locked_error()

    with pytest.raises(DatabaseBusy) as caught:
        db.run_txn_sync(always_locked)
    assert len(calls) == 3
    assert isinstance(caught.value, Unavailable)
    assert caught.value.http_status == 503
    assert "always_locked" in str(caught.value)


def test_other_operational_errors_become_database_unavailable_without_sql(db) -> None:
    def broken(conn):
        conn.execute(text("SELECT * FROM no_such_table WHERE secret = :s"), {"s": "Kari Nordmann"})

    with pytest.raises(Exception) as caught:
        db.run_txn_sync(broken)
    assert "Kari Nordmann" not in str(caught.value)
    if db.dialect_name == "sqlite":  # sqlite3 reports this as an OperationalError
        assert isinstance(caught.value, DatabaseUnavailable)
        assert "no such table: no_such_table" in str(caught.value)
    else:  # a programming error: passes through, with its parameters hidden
        assert isinstance(caught.value, ProgrammingError)


def test_gateway_errors_from_a_transaction_pass_through_unretried(db, sealer) -> None:
    db.run_txn_sync(submit_message_txn, submission(), sealer=sealer, now=T0, node=NODE)
    calls: list[int] = []

    def again(conn):
        calls.append(1)
        return submit_message_txn(conn, submission(), sealer=sealer, now=T0, node=NODE)

    with pytest.raises(DuplicateMessage):
        db.run_txn_sync(again)
    assert calls == [1]


def test_unreachable_server_is_database_unavailable() -> None:
    from twisted.internet import reactor

    db = Database("postgresql://nobody@127.0.0.1:1/none", reactor=reactor, retries=0)
    try:
        with pytest.raises(DatabaseUnavailable):
            db.run_txn_sync(lambda conn: conn.execute(select(1)).scalar())
    finally:
        db.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_read_only_transactions_run_beside_a_writer(db, make_database) -> None:
    impatient = make_database(busy_timeout_ms=0, retries=0)
    inside = threading.Event()
    release = threading.Event()

    def hold_write_lock(conn):
        conn.execute(
            insert(tracking).values(exchange_id="EX", stage="uncommitted", at=T0, node=NODE)
        )
        inside.set()
        release.wait(timeout=30)

    @read_only
    def count_rows(conn):
        return len(conn.execute(select(tracking.c.id)).all())

    def count_rows_for_write(conn):
        return len(conn.execute(select(tracking.c.id)).all())

    writer = threading.Thread(target=lambda: db.run_txn_sync(hold_write_lock))
    writer.start()
    try:
        assert inside.wait(timeout=30)
        assert impatient.run_txn_sync(count_rows) == 0  # sees the last commit, does not wait
        with pytest.raises(DatabaseBusy):
            impatient.run_txn_sync(count_rows_for_write)  # BEGIN IMMEDIATE waits for the lock
    finally:
        release.set()
        writer.join(timeout=30)
    assert impatient.run_txn_sync(count_rows) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_deadlock_victim_is_retried(db, make_database) -> None:
    other = make_database()

    def setup(conn):
        conn.execute(
            insert(tracking),
            [{"exchange_id": "EX", "stage": s, "at": T0, "node": NODE} for s in ("r1", "r2")],
        )

    db.run_txn_sync(setup)
    locked = {"a": threading.Event(), "b": threading.Event()}
    attempts = {"a": 0, "b": 0}

    def lock_both(conn, me, first, second, peer):
        attempts[me] += 1
        conn.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
        conn.execute(tracking.update().where(tracking.c.stage == first).values(detail=me))
        locked[me].set()
        locked[peer].wait(timeout=30)
        conn.execute(tracking.update().where(tracking.c.stage == second).values(detail=me))
        return me

    results: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: results.setdefault("a", db.run_txn_sync(lock_both, "a", "r1", "r2", "b"))
    )
    thread.start()
    results["b"] = other.run_txn_sync(lock_both, "b", "r2", "r1", "a")
    thread.join(timeout=60)

    assert results == {"a": "a", "b": "b"}
    assert sorted(attempts.values()) == [1, 2]  # one transaction was the victim and ran again


def test_run_txn_before_start_fails_with_unavailable(db) -> None:
    failures: list = []
    db.run_txn(lambda conn: 1).addErrback(failures.append)
    assert failures[0].check(DatabaseUnavailable)


@pytest_twisted.inlineCallbacks
def test_run_txn_runs_on_the_dedicated_pool_and_answers_in_the_reactor_thread(db, sealer):
    db.start()
    caller = threading.current_thread()

    accepted = yield db.run_txn(submit_message_txn, submission(), sealer=sealer, now=T0, node=NODE)
    stored = yield db.run_txn(load_message_txn, "MSG-1", sealer=sealer)
    worker = yield db.run_txn(lambda conn: threading.current_thread().name)

    assert accepted.message_id == "MSG-1"
    assert stored.body == submission().body
    assert "imi-gateway-db" in worker
    assert threading.current_thread() is caller
    with pytest.raises(DuplicateMessage):
        yield db.run_txn(submit_message_txn, submission(), sealer=sealer, now=T0, node=NODE)
    db.stop()
    db.stop()  # idempotent


def test_database_is_a_twisted_service(db) -> None:
    from twisted.application.service import IService

    assert IService.providedBy(db)
    db.startService()
    assert db.running
    db.stopService()
    assert not db.running
