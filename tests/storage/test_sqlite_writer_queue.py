"""SQLite write transactions of one process: a queue instead of the busy handler, group commit.

Writers of one Database take turns on an in-process lock (never meeting
SQLite's sleeping busy handler), and write transactions requested through
``run_txn`` meanwhile share one COMMIT, each in its own savepoint.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import pytest_twisted
from sqlalchemy import event, insert, select, text
from twisted.internet.defer import gatherResults

from gateway.core.errors import InvalidInput
from gateway.storage.db import Database, read_only
from gateway.storage.errors import DatabaseUnavailable, TransactionRace
from gateway.storage.tables import tracking

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _database(tmp_path, **kw) -> Database:
    from twisted.internet import reactor

    db = Database(f"sqlite:///{tmp_path / 'node.db'}", reactor=reactor, **kw)
    db.migrate()
    return db


def _insert(conn, stage: str) -> None:
    conn.execute(insert(tracking).values(exchange_id="EX", stage=stage, at=T0, node="NO"))


@read_only
def _count(conn) -> int:
    return len(conn.execute(select(tracking.c.id)).all())


def test_concurrent_writers_never_find_the_database_locked(tmp_path) -> None:
    # No busy timeout and no retries: a writer that met another's lock would fail at once.
    db = _database(tmp_path, threads=8, busy_timeout_ms=0, retries=0)
    writers, rounds = 8, 25
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        start.wait(timeout=30)
        for i in range(rounds):
            try:
                db.run_txn_sync(_insert, f"w{n}-{i}")
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert db.run_txn_sync(_count) == writers * rounds
    finally:
        db.stop()


def test_read_only_transactions_do_not_wait_for_a_writer_of_the_same_database(tmp_path) -> None:
    db = _database(tmp_path, busy_timeout_ms=0, retries=0)
    inside, release = threading.Event(), threading.Event()

    def hold(conn) -> None:
        _insert(conn, "uncommitted")
        inside.set()
        release.wait(timeout=30)

    writer = threading.Thread(target=lambda: db.run_txn_sync(hold))
    writer.start()
    try:
        assert inside.wait(timeout=30)
        assert db.run_txn_sync(_count) == 0  # the last committed state, without waiting
    finally:
        release.set()
        writer.join(timeout=30)
    try:
        assert db.run_txn_sync(_count) == 1
    finally:
        db.stop()


# --- group commit (Database.run_txn on SQLite) ---------------------------------------


@pytest.fixture
def started(tmp_path):
    db = _database(tmp_path)
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda conn: commits.append(1))
    db.start()
    yield db, commits
    db.stop()


def _stages(db: Database) -> list[str]:
    return sorted(r.stage for r in db.run_txn_sync(_rows))


@read_only
def _rows(conn):
    return conn.execute(select(tracking.c.stage)).all()


@pytest_twisted.ensureDeferred
async def test_write_transactions_requested_together_share_one_commit(started) -> None:
    db, commits = started
    results = await gatherResults([db.run_txn(_insert, f"s{i}") for i in range(10)])
    assert results == [None] * 10
    assert commits == [1]
    assert _stages(db) == sorted(f"s{i}" for i in range(10))


@pytest_twisted.ensureDeferred
async def test_a_failing_member_is_rolled_back_alone_and_gets_its_own_error(started) -> None:
    db, commits = started

    def insert_then_refuse(conn, stage: str) -> None:
        _insert(conn, stage)
        raise InvalidInput("refused after writing")

    first = db.run_txn(_insert, "a")
    refused = db.run_txn(insert_then_refuse, "b")
    last = db.run_txn(_insert, "c")
    assert await first is None
    with pytest.raises(InvalidInput, match="refused after writing"):
        await refused
    assert await last is None
    assert commits == [1]
    assert _stages(db) == ["a", "c"]


@pytest_twisted.ensureDeferred
async def test_members_are_acknowledged_only_after_the_commit(started, tmp_path) -> None:
    db, _ = started
    seen: list[list[str]] = []
    other = _database(tmp_path)  # another engine: sees committed data only
    try:
        first = db.run_txn(_insert, "x")
        first.addCallback(lambda _: seen.append(_stages(other)))
        await gatherResults([first, db.run_txn(_insert, "y")])
    finally:
        other.stop()
    assert seen == [["x", "y"]]


@pytest_twisted.ensureDeferred
async def test_a_member_that_meets_a_race_runs_again_alone(started) -> None:
    db, commits = started
    calls: list[int] = []

    def racy(conn) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TransactionRace("stored concurrently")
        _insert(conn, "racy")
        return "stored"

    results = await gatherResults([db.run_txn(_insert, "plain"), db.run_txn(racy)])
    assert results == [None, "stored"]
    assert len(calls) == 2
    assert len(commits) == 2  # the group, then the retried member alone
    assert _stages(db) == ["plain", "racy"]


@pytest_twisted.ensureDeferred
async def test_a_lone_failing_write_is_rolled_back_entirely(started) -> None:
    db, commits = started

    def insert_then_refuse(conn) -> None:
        _insert(conn, "lone")
        raise InvalidInput("refused after writing")

    with pytest.raises(InvalidInput):
        await db.run_txn(insert_then_refuse)
    assert commits == []
    assert _stages(db) == []
    assert await db.run_txn(_insert, "next") is None
    assert _stages(db) == ["next"]


@pytest_twisted.ensureDeferred
async def test_a_database_error_in_one_member_fails_the_whole_group(started) -> None:
    db, commits = started

    def broken(conn) -> None:
        conn.execute(text("SELECT * FROM no_such_table"))

    members = [db.run_txn(_insert, "a"), db.run_txn(broken), db.run_txn(_insert, "c")]
    for member in members:
        with pytest.raises(DatabaseUnavailable):
            await member
    assert commits == []
    assert _stages(db) == []
