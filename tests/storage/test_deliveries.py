"""Deliveries to national systems: the pull cursor, acknowledgements and push claims."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from gateway.storage.deliveries import (
    ack_deliveries_txn,
    claim_push_deliveries_txn,
    delivery_backlog_txn,
    mark_push_dead_txn,
    mark_push_delivered_txn,
    mark_push_failed_txn,
    pending_deliveries_txn,
)
from gateway.storage.exchanges import erase_exchange_txn
from gateway.storage.messages import delivery_lock_key, store_inbound_envelope_txn
from gateway.storage.model import DeliveryBacklog, Stage
from gateway.storage.tracking import tracking_events_txn

from .conftest import NODE, T0, envelope, payload

AUTH = "NO-HELSEDIR"
LEASE = timedelta(seconds=60)


def receive(db, sealer, env_id: str, *payloads, now=T0) -> None:
    db.run_txn_sync(
        store_inbound_envelope_txn, envelope(env_id, *payloads), sealer=sealer, now=now, node=NODE
    )


def pending(db, authority=AUTH, **kw) -> list[tuple[int, str]]:
    return [(d.seq, d.message_id) for d in db.run_txn_sync(pending_deliveries_txn, authority, **kw)]


def test_pull_cursor_pages_in_seq_order_and_ack_moves_it(db, sealer) -> None:
    receive(db, sealer, "E1", payload("A", exchange_id="X1"), payload("B", exchange_id="X2"))
    receive(db, sealer, "E2", payload("OTHER", exchange_id="X3", receiver="NO-UDIR"))
    receive(db, sealer, "E3", payload("C", exchange_id="X4"), payload("D", exchange_id="X5"))

    page = pending(db, limit=2)
    assert [m for _, m in page] == ["A", "B"]
    seqs = [s for s, _ in page]
    assert seqs == sorted(seqs)
    rest = pending(db, after=seqs[-1])
    assert [m for _, m in rest] == ["C", "D"]
    assert all(s > seqs[-1] for s, _ in rest)

    # Acknowledge the first page: it disappears, the rest stays.
    acked_at = T0 + timedelta(minutes=1)
    assert db.run_txn_sync(ack_deliveries_txn, AUTH, seqs[-1], now=acked_at, node=NODE) == 2
    assert [m for _, m in pending(db)] == ["C", "D"]
    assert db.run_txn_sync(ack_deliveries_txn, AUTH, seqs[-1], now=acked_at, node=NODE) == 0
    # Another authority's stream is separate.
    assert [m for _, m in pending(db, "NO-UDIR")] == ["OTHER"]
    assert db.run_txn_sync(ack_deliveries_txn, "NO-UDIR", 0, now=acked_at, node=NODE) == 0
    assert db.run_txn_sync(ack_deliveries_txn, AUTH, rest[-1][0], now=acked_at, node=NODE) == 2
    assert pending(db) == []
    assert [m for _, m in pending(db, "NO-UDIR")] == ["OTHER"]

    events = db.run_txn_sync(tracking_events_txn, "X1")
    assert (events[-1].stage, events[-1].at, events[-1].detail, events[-1].message_id) == (
        Stage.DELIVERED,
        acked_at,
        AUTH,
        "A",
    )


def test_deliveries_carry_message_metadata(db, sealer) -> None:
    receive(db, sealer, "E1", payload("A", exchange_id="X1"))
    (delivery,) = db.run_txn_sync(pending_deliveries_txn, AUTH)
    assert (
        delivery.exchange_id,
        delivery.document_type,
        delivery.sender_authority,
        delivery.created_at,
        delivery.delivered_at,
        delivery.push_state,
        delivery.erased,
    ) == ("X1", "Request", "PT-OMD", T0, None, None, False)
    assert len(delivery.sha256) == 64


def test_push_deliveries_are_claimed_with_a_lease_and_fenced(db, sealer) -> None:
    receive(
        db,
        sealer,
        "E1",
        payload("P1", exchange_id="X1", push=True),
        payload("P2", exchange_id="X2", push=True),
    )
    receive(db, sealer, "E2", payload("PULL", exchange_id="X3"))

    first = db.run_txn_sync(claim_push_deliveries_txn, AUTH, now=T0, lease=LEASE)
    assert [(i.message_id, i.attempts) for i in first] == [("P1", 1), ("P2", 1)]
    assert db.run_txn_sync(claim_push_deliveries_txn, now=T0, lease=LEASE) == []

    # The worker died; the lease expires and another claims them.
    second = db.run_txn_sync(claim_push_deliveries_txn, None, now=T0 + LEASE, lease=LEASE)
    assert [(i.message_id, i.attempts) for i in second] == [("P1", 2), ("P2", 2)]
    assert db.run_txn_sync(mark_push_failed_txn, first, error_code="X", next_attempt_at=T0) == 0

    done_at = T0 + timedelta(minutes=2)
    assert db.run_txn_sync(mark_push_delivered_txn, [second[0]], now=done_at, node=NODE) == 1
    assert (
        db.run_txn_sync(
            mark_push_failed_txn,
            second[1:],
            error_code="CALLBACK_UNAVAILABLE",
            next_attempt_at=T0 + timedelta(minutes=10),
        )
        == 1
    )
    assert (
        db.run_txn_sync(claim_push_deliveries_txn, AUTH, now=T0 + timedelta(minutes=9), lease=LEASE)
        == []
    )
    (third,) = db.run_txn_sync(
        claim_push_deliveries_txn, AUTH, now=T0 + timedelta(minutes=10), lease=LEASE
    )
    assert (third.message_id, third.attempts) == ("P2", 3)
    assert db.run_txn_sync(mark_push_dead_txn, [third], reason="CALLBACK_REFUSED") == 1

    # A dead push is still there to pull; a delivered one is not.
    assert [m for _, m in pending(db)] == ["P2", "PULL"]
    events = db.run_txn_sync(tracking_events_txn, "X1")
    assert (events[-1].stage, events[-1].at) == (Stage.DELIVERED, done_at)


def test_acknowledging_by_pull_stops_the_push(db, sealer) -> None:
    receive(db, sealer, "E1", payload("P1", exchange_id="X1", push=True))
    ((seq, _),) = pending(db)
    assert db.run_txn_sync(ack_deliveries_txn, AUTH, seq, now=T0, node=NODE) == 1
    assert (
        db.run_txn_sync(claim_push_deliveries_txn, AUTH, now=T0 + timedelta(hours=1), lease=LEASE)
        == []
    )
    assert db.run_txn_sync(mark_push_delivered_txn, [seq], now=T0, node=NODE) == 0


def test_backlog_per_authority(db, sealer) -> None:
    receive(db, sealer, "E1", payload("A", exchange_id="X1"), now=T0 - timedelta(hours=1))
    receive(
        db,
        sealer,
        "E2",
        payload("B", exchange_id="X2"),
        payload("C", exchange_id="X3", receiver="NO-UDIR"),
    )
    assert db.run_txn_sync(delivery_backlog_txn) == [
        DeliveryBacklog(AUTH, 2, T0 - timedelta(hours=1)),
        DeliveryBacklog("NO-UDIR", 1, T0),
    ]


def test_erasure_stops_pending_pushes_and_marks_deliveries_erased(db, sealer) -> None:
    receive(db, sealer, "E1", payload("P1", exchange_id="X1", push=True))
    db.run_txn_sync(erase_exchange_txn, "X1", now=T0, node=NODE)
    assert db.run_txn_sync(claim_push_deliveries_txn, AUTH, now=T0, lease=LEASE) == []
    (delivery,) = db.run_txn_sync(pending_deliveries_txn, AUTH)
    assert delivery.erased is True


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_delivery_stream_lock_is_held_until_commit(db, make_database, sealer) -> None:
    """Seqs of one authority become visible in order: inserts wait for the previous commit."""
    other = make_database(threads=1)
    inserted = threading.Event()
    checked = threading.Event()
    seen: dict[str, bool] = {}

    def receive_and_hold(conn):
        store_inbound_envelope_txn(
            conn, envelope("E1", payload("A", exchange_id="X1")), sealer=sealer, now=T0, node=NODE
        )
        inserted.set()
        checked.wait(timeout=30)

    def try_lock(conn, authority):
        # A non-blocking probe of the stream's advisory lock.
        key = delivery_lock_key(authority)
        return conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()

    thread = threading.Thread(target=lambda: db.run_txn_sync(receive_and_hold))
    thread.start()
    assert inserted.wait(timeout=30)
    seen["same"] = other.run_txn_sync(try_lock, AUTH)
    seen["other"] = other.run_txn_sync(try_lock, "NO-UDIR")
    checked.set()
    thread.join(timeout=30)
    seen["after"] = other.run_txn_sync(try_lock, AUTH)

    assert seen == {"same": False, "other": True, "after": True}
