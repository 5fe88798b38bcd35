"""Outbox claims, leases, fencing, retries and dead letters."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from gateway.storage.errors import DatabaseBusy
from gateway.storage.messages import submit_messages_txn
from gateway.storage.model import OutboxItem, QueueDepth, Stage
from gateway.storage.outbox import (
    claim_outbox_txn,
    dead_letters_txn,
    mark_outbox_dead_txn,
    mark_outbox_failed_txn,
    mark_outbox_sent_txn,
    outbox_depth_txn,
    outbox_next_due_txn,
    outbox_peers_txn,
    retry_dead_letters_txn,
)
from gateway.storage.tracking import tracking_events_txn

from .conftest import NODE, PEER, T0, submission

LEASE = timedelta(seconds=30)


def queue(db, sealer, count: int, *, peer: str = PEER, prefix: str = "M", now=T0) -> list[str]:
    subs = [
        submission(f"{prefix}{i:03}", exchange_id=f"EX-{prefix}{i:03}", peer_node=peer)
        for i in range(count)
    ]
    db.run_txn_sync(submit_messages_txn, subs, sealer=sealer, now=now, node=NODE)
    return [s.message_id for s in subs]


def claim(db, *, now=T0, limit=50, peer=PEER):
    return db.run_txn_sync(claim_outbox_txn, peer, now=now, lease=LEASE, limit=limit)


def test_claim_takes_due_rows_of_one_peer_oldest_first_and_leases_them(db, sealer) -> None:
    early = queue(db, sealer, 3, prefix="A", now=T0 - timedelta(minutes=1))
    late = queue(db, sealer, 2, prefix="B", now=T0)
    queue(db, sealer, 2, peer="EE", prefix="C")
    future = queue(db, sealer, 1, prefix="F", now=T0 + timedelta(seconds=20))

    items = claim(db, limit=4)

    assert [i.message_id for i in items] == early + late[:1]
    assert all(
        i.attempts == 1 and i.lease_until == T0 + LEASE and i.peer_node == PEER for i in items
    )
    assert [i.created_at for i in items] == [T0 - timedelta(minutes=1)] * 3 + [T0]
    rest = claim(db)
    assert [i.message_id for i in rest] == late[1:]  # the future row is not due
    assert claim(db) == []
    # Due now; the others are still leased (until T0 + 30 s).
    assert [i.message_id for i in claim(db, now=T0 + timedelta(seconds=20))] == future


def test_expired_lease_makes_a_row_claimable_again_and_fences_the_old_claim(db, sealer) -> None:
    queue(db, sealer, 1)
    (first,) = claim(db)
    assert claim(db, now=T0 + LEASE - timedelta(seconds=1)) == []

    (second,) = claim(db, now=T0 + LEASE)

    assert (second.id, second.attempts) == (first.id, 2)
    # The first worker comes back late: its failure report no longer applies.
    assert (
        db.run_txn_sync(mark_outbox_failed_txn, [first], error_code="TIMEOUT", next_attempt_at=T0)
        == 0
    )
    assert db.run_txn_sync(mark_outbox_dead_txn, [first], reason="X", now=T0, node=NODE) == 0
    assert (
        db.run_txn_sync(
            mark_outbox_failed_txn,
            [second],
            error_code="PEER_UNAVAILABLE",
            next_attempt_at=T0 + timedelta(minutes=2),
        )
        == 1
    )
    assert claim(db, now=T0 + timedelta(minutes=1)) == []
    (third,) = claim(db, now=T0 + timedelta(minutes=2))
    assert third.attempts == 3


def test_mark_sent_records_the_peer_receipt_and_tracking(db, sealer) -> None:
    queue(db, sealer, 2)
    items = claim(db)
    sent_at = T0 + timedelta(seconds=2)

    marked = db.run_txn_sync(
        mark_outbox_sent_txn,
        [items[0].id, items[1]],  # row ids or the claimed items
        peer_receipt_sha256="cd" * 32,
        now=sent_at,
        node=NODE,
    )

    assert marked == 2
    assert claim(db, now=T0 + timedelta(hours=1)) == []  # never sent again
    assert db.run_txn_sync(outbox_depth_txn) == []
    events = db.run_txn_sync(tracking_events_txn, "EX-M000")
    assert (events[-1].stage, events[-1].at, events[-1].detail) == (
        Stage.RECEIVED_BY_PEER,
        sent_at,
        PEER,
    )
    # A late report for the same rows changes nothing.
    assert (
        db.run_txn_sync(
            mark_outbox_sent_txn,
            [i.id for i in items],
            peer_receipt_sha256="ee" * 32,
            now=sent_at,
            node=NODE,
        )
        == 0
    )


def test_dead_letters_are_listed_and_can_be_retried(db, sealer) -> None:
    queue(db, sealer, 2)
    items = claim(db)
    assert (
        db.run_txn_sync(mark_outbox_dead_txn, items, reason="PEER_REFUSED", now=T0, node=NODE) == 2
    )
    assert claim(db, now=T0 + timedelta(days=1)) == []

    dead = db.run_txn_sync(dead_letters_txn)
    assert [(d.message_id, d.dead_reason, d.attempts, d.exchange_id) for d in dead] == [
        ("M000", "PEER_REFUSED", 1, "EX-M000"),
        ("M001", "PEER_REFUSED", 1, "EX-M001"),
    ]
    assert db.run_txn_sync(dead_letters_txn, peer_node="EE") == []
    assert [d.message_id for d in db.run_txn_sync(dead_letters_txn, after_id=dead[0].id)] == [
        "M001"
    ]

    later = T0 + timedelta(hours=1)
    assert db.run_txn_sync(retry_dead_letters_txn, [dead[0].id], now=later, node=NODE) == 1
    again = claim(db, now=later)
    assert [(i.message_id, i.attempts) for i in again] == [("M000", 1)]
    assert db.run_txn_sync(retry_dead_letters_txn, peer_node=PEER, now=later, node=NODE) == 1
    assert db.run_txn_sync(retry_dead_letters_txn, [], now=later, node=NODE) == 0
    stages = [e.stage for e in db.run_txn_sync(tracking_events_txn, "EX-M000")]
    assert stages[-2:] == [Stage.DEAD_LETTER, Stage.REQUEUED]


def test_queue_depth_next_due_and_peers(db, sealer) -> None:
    queue(db, sealer, 3, now=T0 - timedelta(minutes=1))
    queue(db, sealer, 1, peer="EE", prefix="E")
    claim(db, limit=1)

    assert db.run_txn_sync(outbox_depth_txn) == [
        QueueDepth("EE", "pending", 1, T0),
        QueueDepth(PEER, "inflight", 1, T0 - timedelta(minutes=1)),
        QueueDepth(PEER, "pending", 2, T0 - timedelta(minutes=1)),
    ]
    assert db.run_txn_sync(outbox_peers_txn) == ["EE", PEER]
    assert db.run_txn_sync(outbox_next_due_txn, "EE") == T0
    assert db.run_txn_sync(outbox_next_due_txn, PEER) == T0 - timedelta(minutes=1)
    assert db.run_txn_sync(outbox_next_due_txn, "LV") is None


def test_concurrent_claimers_never_get_the_same_row(db, make_database, sealer) -> None:
    ids = queue(db, sealer, 60)
    workers = [make_database(threads=1) for _ in range(4)]  # like four processes
    start = threading.Barrier(len(workers))
    claimed: list[list[OutboxItem]] = [[] for _ in workers]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait(timeout=30)
            while batch := workers[index].run_txn_sync(
                claim_outbox_txn, PEER, now=T0, lease=LEASE, limit=3
            ):
                claimed[index].extend(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert errors == []
    got = [item.message_id for batch in claimed for item in batch]
    assert sorted(got) == ids  # every row claimed exactly once


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_claim_skips_rows_locked_by_an_open_claim(db, make_database, sealer) -> None:
    queue(db, sealer, 4)
    other = make_database(threads=1)
    first_claimed = threading.Event()
    second_done = threading.Event()
    result: dict[str, object] = {}

    def first(conn):
        items = claim_outbox_txn(conn, PEER, now=T0, lease=LEASE, limit=2)
        first_claimed.set()
        # Keep the transaction (and its row locks) open until the other claimer finished.
        if not second_done.wait(timeout=30):
            raise AssertionError("the second claimer blocked on our locked rows")
        return items

    def run_first() -> None:
        result["first"] = db.run_txn_sync(first)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert first_claimed.wait(timeout=30)
    result["second"] = other.run_txn_sync(claim_outbox_txn, PEER, now=T0, lease=LEASE, limit=10)
    second_done.set()
    thread.join(timeout=30)

    first_ids = [i.message_id for i in result["first"]]
    second_ids = [i.message_id for i in result["second"]]
    assert first_ids == ["M000", "M001"]
    assert second_ids == ["M002", "M003"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_claims_are_serialised_by_the_write_lock(db, make_database, sealer) -> None:
    queue(db, sealer, 4)
    impatient = make_database(threads=1, busy_timeout_ms=0, retries=0)
    inside = threading.Event()
    release = threading.Event()
    result: dict[str, object] = {}

    def first(conn):
        items = claim_outbox_txn(conn, PEER, now=T0, lease=LEASE, limit=2)
        inside.set()
        release.wait(timeout=30)
        return items

    thread = threading.Thread(target=lambda: result.setdefault("first", db.run_txn_sync(first)))
    thread.start()
    assert inside.wait(timeout=30)
    # BEGIN IMMEDIATE: a second claimer cannot even start while the first holds the lock.
    with pytest.raises(DatabaseBusy):
        impatient.run_txn_sync(claim_outbox_txn, PEER, now=T0, lease=LEASE)
    release.set()
    thread.join(timeout=30)
    second = impatient.run_txn_sync(claim_outbox_txn, PEER, now=T0, lease=LEASE)
    assert [i.message_id for i in result["first"]] == ["M000", "M001"]
    assert [i.message_id for i in second] == ["M002", "M003"]
