"""The audit log store on SQLite and PostgreSQL: the chain, concurrent writers, selection, checkpoints."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from gateway.core import audit
from gateway.storage.audit import (
    append_audit_txn,
    audit_log_txn,
    checkpoints_txn,
    record_erasure_txn,
    select_audit_txn,
    write_checkpoint_txn,
)
from gateway.storage.tables import audit_log, tracking
from tests.storage.conftest import T0


def append(db, i: int, exchange_id: str = "EX-1", event: str = "SUBMITTED"):
    return db.run_txn_sync(
        append_audit_txn,
        at=T0 + timedelta(minutes=i),
        event=event,
        actor="auth-1",
        exchange_id=exchange_id,
        message_id=f"m-{i}",
        digest=audit.document_digest(b"key", f"doc {i}".encode()),
    )


def assert_chain(entries: list[audit.Entry]) -> None:
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    prev = audit.GENESIS
    for e in entries:
        assert e.prev == prev
        prev = audit.entry_hash(e)


def test_appended_entries_form_a_hash_chain_with_stored_hashes(db) -> None:
    written = [append(db, i) for i in range(5)]
    stored = db.run_txn_sync(audit_log_txn)
    assert stored == written
    assert_chain(stored)
    hashes = db.run_txn_sync(lambda conn: [r.hash for r in conn.execute(select(audit_log))])
    assert hashes == [audit.entry_hash(e) for e in stored]


def test_an_entry_is_rolled_back_with_the_action_it_records(db) -> None:
    append(db, 0)

    def action_then_crash(conn) -> None:
        conn.execute(
            insert(tracking).values(exchange_id="EX", stage="x", at=T0, node="NO", detail=None)
        )
        append_audit_txn(conn, at=T0, event="STATE_CHANGED", actor="NO", exchange_id="EX")
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        db.run_txn_sync(action_then_crash)
    assert [e.seq for e in db.run_txn_sync(audit_log_txn)] == [1]
    append(db, 1)
    assert_chain(db.run_txn_sync(audit_log_txn))


def test_concurrent_writers_from_two_processes_keep_one_unbroken_chain(make_database) -> None:
    # No retries: writers must wait for each other, not fail and start over.
    first = make_database(retries=0)
    first.migrate()
    second = make_database(retries=0)
    errors: list[BaseException] = []

    def work(db, base: int) -> None:
        try:
            for i in range(15):
                append(db, base + i, exchange_id=f"EX-{base}")
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(db, base))
        for base, db in ((0, first), (100, second), (200, first), (300, second))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = first.run_txn_sync(audit_log_txn)
    assert len(entries) == 60
    assert_chain(entries)


def test_select_by_time_range_and_by_exchange(db) -> None:
    for i in range(6):
        append(db, i, exchange_id=f"EX-{i % 2}")
    in_range = db.run_txn_sync(
        select_audit_txn, start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=4)
    )
    assert in_range == [2, 3, 4]
    assert db.run_txn_sync(select_audit_txn, exchange_id="EX-1") == [2, 4, 6]


def test_erasure_entry_names_the_exchange_and_holds_no_document(db) -> None:
    append(db, 0)
    entry = db.run_txn_sync(record_erasure_txn, "EX-1", at=T0, actor="NO")
    assert (entry.seq, entry.event, entry.exchange_id, entry.digest) == (2, "ERASED", "EX-1", "")


def test_checkpoints_are_recorded_once_per_size(db) -> None:
    for i in range(3):
        append(db, i)
    cp = db.run_txn_sync(write_checkpoint_txn, at=T0)
    again = db.run_txn_sync(write_checkpoint_txn, at=T0 + timedelta(hours=1))
    assert cp.root == again.root == audit.checkpoint(db.run_txn_sync(audit_log_txn), T0).root
    assert db.run_txn_sync(checkpoints_txn) == [cp]
