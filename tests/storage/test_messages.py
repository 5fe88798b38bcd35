"""Submitted and received messages: one transaction each, replay protection, sealing, erasure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.core import dataprotect
from gateway.core.errors import Conflict
from gateway.storage import exchanges as ex_store
from gateway.storage import messages as msg_store
from gateway.storage import tracking as tracking_store
from gateway.storage.deliveries import pending_deliveries_txn
from gateway.storage.errors import (
    DuplicateMessage,
    EnvelopeIdReused,
    ExchangeErased,
    ExchangeMismatch,
    MessageIdReused,
    MessageNotFound,
)
from gateway.storage.exchanges import erase_exchange_txn, exchange_txn
from gateway.storage.messages import (
    load_bodies_txn,
    load_message_txn,
    store_inbound_envelope_txn,
    submit_message_txn,
    submit_messages_txn,
)
from gateway.storage.model import Accepted, Refused, Stage
from gateway.storage.outbox import claim_outbox_txn, dead_letters_txn
from gateway.storage.tables import (
    deliveries,
    envelopes_in,
    exchange_keys,
    exchanges,
    messages,
    outbox,
    tracking,
)
from gateway.storage.tracking import tracking_events_txn

from .conftest import NODE, PEER, T0, envelope, payload, submission

TABLES = (exchanges, exchange_keys, messages, outbox, envelopes_in, deliveries, tracking)


def counts(db) -> dict[str, int]:
    def txn(conn):
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES
        }

    return db.run_txn_sync(txn)


def submit(db, sealer, sub, **kw):
    return db.run_txn_sync(submit_message_txn, sub, sealer=sealer, now=T0, node=NODE, **kw)


class Lifecycle:
    """request → open, answer → answered (closed); anything else is refused."""

    def next_state(self, exchange, document_type, sender):
        current = None if exchange is None else exchange.state
        if current is None and document_type == "Request":
            return "open"
        if current == "open" and document_type == "Answer":
            return "answered"
        raise Conflict(f"{document_type} not allowed in {current}")

    def is_closed(self, state):
        return state == "answered"


def test_submission_stores_exchange_message_outbox_and_tracking_together(db, sealer) -> None:
    accepted = submit(db, sealer, submission("MSG-1"))

    assert accepted == Accepted(
        message_id="MSG-1",
        exchange_id="EX-1",
        sha256=msg_store.sha256_hex(submission("MSG-1").body),
        state="open",
        exchange_created=True,
    )
    assert counts(db) == {
        "exchanges": 1,
        "exchange_keys": 1,
        "messages": 1,
        "outbox": 1,
        "envelopes_in": 0,
        "deliveries": 0,
        "tracking": 2,
    }
    events = db.run_txn_sync(tracking_events_txn, "EX-1")
    # The default lifecycle (KeepState) records no exchange-level stage.
    assert [(e.stage, e.message_id, e.node, e.detail) for e in events] == [
        (Stage.SUBMITTED, "MSG-1", NODE, None),
        (Stage.QUEUED, "MSG-1", NODE, PEER),
    ]
    assert all(e.at == T0 for e in events)
    info = db.run_txn_sync(exchange_txn, "EX-1")
    assert (info.state, info.created_at, info.closed_at, info.erased) == ("open", T0, None, False)
    stored = db.run_txn_sync(load_message_txn, "MSG-1", sealer=sealer)
    assert stored.body == submission("MSG-1").body
    assert (stored.meta.direction, stored.meta.peer_node) == ("out", PEER)
    assert stored.meta.document_created_at == T0 - timedelta(seconds=5)


def test_second_message_reuses_the_exchange_and_its_data_key(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    second = submit(db, sealer, submission("MSG-2", body=b"<Reminder/>"))

    assert second.exchange_created is False
    assert counts(db)["exchanges"] == 1
    assert db.run_txn_sync(load_message_txn, "MSG-2", sealer=sealer).body == b"<Reminder/>"
    assert db.run_txn_sync(load_bodies_txn, ["MSG-1", "MSG-2", "NOPE"], sealer=sealer) == {
        "MSG-1": submission("MSG-1").body,
        "MSG-2": b"<Reminder/>",
    }


def test_duplicate_submission_returns_the_stored_receipt_and_stores_nothing(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    before = counts(db)

    with pytest.raises(DuplicateMessage) as caught:
        submit(db, sealer, submission("MSG-1", receipt=b"<a-new-receipt/>"))

    assert caught.value.receipt == submission("MSG-1").receipt
    assert caught.value.code == "MESSAGE_DUPLICATE"
    assert counts(db) == before


def test_reused_message_id_with_different_bytes_is_refused(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    before = counts(db)

    with pytest.raises(MessageIdReused) as caught:
        submit(db, sealer, submission("MSG-1", body=b"<Request>other bytes</Request>"))

    assert isinstance(caught.value, Conflict)
    assert caught.value.code == "MESSAGE_ID_REUSED"
    assert counts(db) == before


def test_submitting_an_id_received_from_a_peer_is_refused(db, sealer) -> None:
    db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope("ENV-1", payload("IN-1")),
        sealer=sealer,
        now=T0,
        node=NODE,
    )
    with pytest.raises(MessageIdReused):
        submit(db, sealer, submission("IN-1", body=payload("IN-1").body))


def test_group_commit_reports_each_submission_separately(db, sealer) -> None:
    submit(db, sealer, submission("OLD"))
    batch = [
        submission("A"),
        submission("OLD"),  # duplicate of an earlier commit
        submission("B", exchange_id="EX-2"),
        submission("A", body=b"<x/>"),  # same id as A in this batch, other bytes
        submission("A"),  # same id and bytes as A in this batch
        submission("C", receiver_authority="PT-OTHER"),
    ]
    results = db.run_txn_sync(submit_messages_txn, batch, sealer=sealer, now=T0, node=NODE)

    assert [type(r).__name__ for r in results] == [
        "Accepted",
        "DuplicateMessage",
        "Accepted",
        "MessageIdReused",
        "DuplicateMessage",
        "ExchangeMismatch",
    ]
    assert results[4].receipt == submission("A").receipt
    # C names another responder: not party to EX-1, so refused without naming a field.
    assert results[5].field == "authorities"
    assert counts(db)["messages"] == 3  # OLD, A, B
    assert counts(db)["outbox"] == 3


def test_a_crash_between_statements_leaves_nothing_half_written(db, sealer, monkeypatch) -> None:
    # The tracking insert comes after the exchange, message and outbox rows.
    def crash(conn, rows):
        raise RuntimeError("power cut")

    monkeypatch.setattr(msg_store, "insert_tracking", crash)
    with pytest.raises(RuntimeError):
        submit(db, sealer, submission("MSG-1"))
    with pytest.raises(RuntimeError):
        db.run_txn_sync(
            store_inbound_envelope_txn,
            envelope("ENV-1", payload()),
            sealer=sealer,
            now=T0,
            node=NODE,
        )
    monkeypatch.undo()

    assert counts(db) == dict.fromkeys((t.name for t in TABLES), 0)
    # ... and the same ids are accepted afterwards.
    submit(db, sealer, submission("MSG-1"))
    db.run_txn_sync(
        store_inbound_envelope_txn, envelope("ENV-1", payload()), sealer=sealer, now=T0, node=NODE
    )


def test_a_failure_after_a_store_function_rolls_all_of_it_back(db, sealer) -> None:
    def submit_then_fail(conn):
        submit_message_txn(conn, submission("MSG-1"), sealer=sealer, now=T0, node=NODE)
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        db.run_txn_sync(submit_then_fail)
    assert counts(db) == dict.fromkeys((t.name for t in TABLES), 0)


def test_later_document_naming_other_authorities_is_refused(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    with pytest.raises(ExchangeMismatch) as caught:
        submit(db, sealer, submission("MSG-2", sender_authority="NO-INTRUDER"))
    assert caught.value.code == "EXCHANGE_MISMATCH"


def test_lifecycle_sets_state_and_closing_time_in_the_same_transaction(db, sealer) -> None:
    life = Lifecycle()
    submit(db, sealer, submission("REQ"), lifecycle=life)
    with pytest.raises(Conflict):
        submit(db, sealer, submission("REQ-2"), lifecycle=life)  # a second request: refused
    later = T0 + timedelta(hours=1)
    accepted = db.run_txn_sync(
        submit_message_txn,
        submission("ANS", document_type="Answer"),
        sealer=sealer,
        now=later,
        node=NODE,
        lifecycle=life,
    )

    assert accepted.state == "answered"
    info = db.run_txn_sync(exchange_txn, "EX-1")
    assert (info.state, info.closed_at, info.updated_at) == ("answered", later, later)
    assert counts(db)["messages"] == 2
    states = [
        e.stage
        for e in db.run_txn_sync(tracking_events_txn, "EX-1")
        if e.message_id in ("REQ", "ANS")
    ]
    # Without stage_for, the lifecycle's new states are the exchange stages.
    assert states == [
        Stage.SUBMITTED,
        Stage.QUEUED,
        "open",
        Stage.SUBMITTED,
        Stage.QUEUED,
        "answered",
    ]


def test_sealed_bodies_are_not_plaintext_in_the_database_and_unseal_correctly(db, sealer) -> None:
    secret = b"Personnummer 01017012345 Kari Nordmann"
    submit(db, sealer, submission("MSG-1", body=b"<Request>" + secret + b"</Request>"))
    db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope("ENV-1", payload(body=b"<Request>" + secret + b" in</Request>")),
        sealer=sealer,
        now=T0,
        node=NODE,
    )

    def raw(conn):
        return conn.execute(select(messages.c.body, messages.c.message_id)).all()

    for body, _ in db.run_txn_sync(raw):
        assert secret not in body
        assert b"Kari" not in body
    if db.dialect_name == "sqlite":
        path = Path(db.engine.url.database)
        files = (path, path.with_name(path.name + "-wal"))
        on_disk = b"".join(p.read_bytes() for p in files if p.exists())
        assert len(on_disk) > 0
        assert secret not in on_disk
        assert b"Nordmann" not in on_disk
    assert db.run_txn_sync(load_message_txn, "MSG-1", sealer=sealer).body.find(secret) > 0
    assert db.run_txn_sync(load_message_txn, "IN-1", sealer=sealer).body.find(secret) > 0


def test_bodies_do_not_open_under_another_kek_or_in_another_row(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    submit(db, sealer, submission("MSG-2"))
    with pytest.raises(dataprotect.KeyUnwrapFailed) as caught:
        db.run_txn_sync(load_message_txn, "MSG-1", sealer=dataprotect.Sealer(dataprotect.new_kek()))
    assert caught.value.code == "DATA_KEY_UNWRAP_FAILED"

    def swap_bodies(conn):
        _, b2 = (
            conn.execute(select(messages.c.body).where(messages.c.message_id == m)).scalar_one()
            for m in ("MSG-1", "MSG-2")
        )
        conn.execute(messages.update().where(messages.c.message_id == "MSG-1").values(body=b2))

    db.run_txn_sync(swap_bodies)
    with pytest.raises(dataprotect.SealedDataInvalid):
        db.run_txn_sync(load_message_txn, "MSG-1", sealer=sealer)
    assert (
        db.run_txn_sync(load_message_txn, "MSG-2", sealer=sealer).body == submission("MSG-2").body
    )


def test_erasing_the_exchange_destroys_key_and_bodies(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    submit(db, sealer, submission("OTHER", exchange_id="EX-2"))
    sealed_before = db.run_txn_sync(
        lambda c: c.execute(
            select(messages.c.body).where(messages.c.message_id == "MSG-1")
        ).scalar_one()
    )
    wrapped_before = db.run_txn_sync(
        lambda c: c.execute(
            select(exchange_keys.c.wrapped_data_key).where(exchange_keys.c.exchange_id == "EX-1")
        ).scalar_one()
    )
    later = T0 + timedelta(days=190)

    assert db.run_txn_sync(erase_exchange_txn, "EX-1", now=later, node=NODE) is True
    assert db.run_txn_sync(erase_exchange_txn, "EX-1", now=later, node=NODE) is False

    with pytest.raises(ExchangeErased) as caught:
        db.run_txn_sync(load_message_txn, "MSG-1", sealer=sealer)
    assert caught.value.http_status == 410
    assert db.run_txn_sync(load_bodies_txn, ["MSG-1"], sealer=sealer) == {"MSG-1": None}
    # Even a copy of the sealed body (a backup) is useless without the wrapped key,
    # and the key cannot come from another exchange's row.
    other_wrapped = db.run_txn_sync(
        lambda c: c.execute(
            select(exchange_keys.c.wrapped_data_key).where(exchange_keys.c.exchange_id == "EX-2")
        ).scalar_one()
    )
    with pytest.raises(dataprotect.KeyUnwrapFailed):
        sealer.unwrap_key(other_wrapped, "EX-1")
    # Only the erased wrapped key ever opened it.
    key = sealer.unwrap_key(wrapped_before, "EX-1")
    assert (
        dataprotect.open_sealed(key, sealed_before, msg_store.body_aad("MSG-1"))
        == submission("MSG-1").body
    )

    info = db.run_txn_sync(exchange_txn, "EX-1")
    assert info.erased_at == later
    meta = db.run_txn_sync(msg_store.message_meta_txn, "MSG-1")
    assert meta.erased is True  # metadata stays
    with pytest.raises(DuplicateMessage):  # the id remains used forever
        submit(db, sealer, submission("MSG-1", exchange_id="EX-3"))
    with pytest.raises(MessageIdReused):
        submit(db, sealer, submission("MSG-1", exchange_id="EX-3", body=b"<new/>"))
    with pytest.raises(ExchangeErased):
        submit(db, sealer, submission("MSG-9"))
    # The unsent outbox row became a dead letter; the other exchange is untouched.
    claimed = db.run_txn_sync(claim_outbox_txn, PEER, now=later, lease=timedelta(minutes=1))
    assert [c.message_id for c in claimed] == ["OTHER"]
    dead = db.run_txn_sync(dead_letters_txn)
    assert [(d.message_id, d.dead_reason) for d in dead] == [("MSG-1", "EXCHANGE_ERASED")]
    assert (
        db.run_txn_sync(load_message_txn, "OTHER", sealer=sealer).body == submission("OTHER").body
    )
    stages = [e.stage for e in db.run_txn_sync(tracking_events_txn, "EX-1")]
    assert stages[-1] == Stage.PERSONAL_DATA_ERASED
    db.compact_sync()  # SQLite: WAL checkpointed and truncated; PostgreSQL: VACUUM
    if db.dialect_name == "sqlite":
        path = Path(db.engine.url.database)
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert wrapped_before not in path.read_bytes()  # secure_delete zeroed the old page


def test_unknown_message_and_exchange(db, sealer) -> None:
    with pytest.raises(MessageNotFound):
        db.run_txn_sync(load_message_txn, "NOPE", sealer=sealer)
    with pytest.raises(ex_store.ExchangeNotFound):
        db.run_txn_sync(exchange_txn, "NOPE")


# --- the receiving side ------------------------------------------------------


def store_env(db, sealer, env, **kw):
    return db.run_txn_sync(store_inbound_envelope_txn, env, sealer=sealer, now=T0, node=NODE, **kw)


def test_envelope_stores_messages_deliveries_tracking_and_receipt_together(db, sealer) -> None:
    env = envelope(
        "ENV-1", payload("IN-1"), payload("IN-2", exchange_id="EX-8", receiver="NO-UDIR")
    )
    result = store_env(db, sealer, env)

    assert (result.receipt, result.replayed, result.stored, result.duplicates) == (
        env.receipt,
        False,
        ("IN-1", "IN-2"),
        (),
    )
    assert counts(db) == {
        "exchanges": 2,
        "exchange_keys": 2,
        "messages": 2,
        "outbox": 0,
        "envelopes_in": 1,
        "deliveries": 2,
        "tracking": 2,
    }
    assert [d.message_id for d in db.run_txn_sync(pending_deliveries_txn, "NO-HELSEDIR")] == [
        "IN-1"
    ]
    assert [d.message_id for d in db.run_txn_sync(pending_deliveries_txn, "NO-UDIR")] == ["IN-2"]
    stored = db.run_txn_sync(load_message_txn, "IN-2", sealer=sealer)
    assert (stored.meta.direction, stored.meta.peer_node, stored.body) == (
        "in",
        PEER,
        payload("IN-2").body,
    )
    events = db.run_txn_sync(tracking_events_txn, "EX-9")
    assert [(e.stage, e.detail) for e in events] == [
        (Stage.RECEIVED, PEER),
    ]


def test_replayed_envelope_returns_the_stored_receipt_and_creates_nothing(db, sealer) -> None:
    env = envelope("ENV-1", payload("IN-1"))
    store_env(db, sealer, env)
    before = counts(db)

    replay = envelope("ENV-1", payload("IN-1"))
    replay = replay.__class__(**{**replay.__dict__, "receipt": b"<fresh-receipt/>"})
    result = store_env(db, sealer, replay)

    assert (result.receipt, result.replayed, result.stored) == (env.receipt, True, ())
    assert counts(db) == before


def test_envelope_id_reused_for_other_bytes_is_refused(db, sealer) -> None:
    store_env(db, sealer, envelope("ENV-1", payload("IN-1")))
    with pytest.raises(EnvelopeIdReused) as caught:
        store_env(db, sealer, envelope("ENV-1", payload("IN-1"), sha256="ab" * 32))
    assert caught.value.code == "ENVELOPE_ID_REUSED"


def test_message_seen_in_an_earlier_envelope_is_stored_and_delivered_once(db, sealer) -> None:
    store_env(db, sealer, envelope("ENV-1", payload("IN-1")))
    result = store_env(db, sealer, envelope("ENV-2", payload("IN-1"), payload("IN-2")))

    assert (result.stored, result.duplicates) == (("IN-2",), ("IN-1",))
    assert counts(db)["deliveries"] == 2
    assert counts(db)["envelopes_in"] == 2


def test_envelope_reusing_a_message_id_for_other_bytes_is_refused_whole(db, sealer) -> None:
    store_env(db, sealer, envelope("ENV-1", payload("IN-1")))
    before = counts(db)
    refused = store_env(
        db, sealer, envelope("ENV-2", payload("IN-2"), payload("IN-1", body=b"<evil/>"))
    )
    assert isinstance(refused, Refused) and refused.message_id == "IN-1"
    assert isinstance(refused.error, MessageIdReused)
    assert counts(db) == before
    refused = store_env(
        db, sealer, envelope("ENV-3", payload("IN-3"), payload("IN-3", body=b"<other/>"))
    )
    assert isinstance(refused, Refused) and refused.message_id == "IN-3"
    assert isinstance(refused.error, MessageIdReused)
    assert counts(db) == before


def test_envelope_cannot_extend_an_exchange_of_other_authorities(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1", exchange_id="EX-1"))
    # A peer document naming EX-1 with other parties.
    refused = store_env(
        db, sealer, envelope("ENV-1", payload("IN-1", exchange_id="EX-1", receiver="NO-UDIR"))
    )
    assert isinstance(refused, Refused) and isinstance(refused.error, ExchangeMismatch)
    assert counts(db)["envelopes_in"] == 0


def test_peer_answer_joins_the_exchange_submitted_here(db, sealer) -> None:
    life = Lifecycle()
    submit(db, sealer, submission("REQ", exchange_id="EX-1"), lifecycle=life)
    answer = payload("ANS", exchange_id="EX-1", document_type="Answer")
    answer = answer.__class__(
        **{
            **answer.__dict__,
            "exchange": submission().exchange,
            "sender_authority": "PT-OMD",
            "receiver_authority": "NO-HELSEDIR",
        }
    )
    store_env(db, sealer, envelope("ENV-1", answer), lifecycle=life)

    info = db.run_txn_sync(exchange_txn, "EX-1")
    assert (info.state, info.closed_at) == ("answered", T0)
    assert db.run_txn_sync(load_message_txn, "ANS", sealer=sealer).body == answer.body


def test_record_tracking_of_a_peer_report(db, sealer) -> None:
    submit(db, sealer, submission("MSG-1"))
    event_id = db.run_txn_sync(
        tracking_store.record_tracking_txn,
        "EX-1",
        Stage.DELIVERED,
        at=T0 + timedelta(minutes=3),
        node=PEER,
        message_id="MSG-1",
        detail="PT-OMD",
    )
    events = db.run_txn_sync(tracking_events_txn, "EX-1")
    assert events[-1].id == event_id
    assert (events[-1].stage, events[-1].node, events[-1].at) == (
        "delivered",
        PEER,
        T0 + timedelta(minutes=3),
    )
    assert [e.id for e in db.run_txn_sync(tracking_events_txn, "EX-1", after_id=events[0].id)] == [
        e.id for e in events[1:]
    ]


def test_core_lifecycle_drives_state_stages_and_closing_on_both_sides(db, sealer) -> None:
    """gateway.core.lifecycle.ExchangeLifecycle plugs into the stores as is."""
    from gateway.core.lifecycle import ExchangeLifecycle, LifecycleViolation, State

    life = ExchangeLifecycle()  # the sender's role follows from the stored exchange
    submit(db, sealer, submission("REQ", document_type="Request"), lifecycle=life)

    def answer(message_id: str, document_type: str, env_id: str, at):
        doc = payload(message_id, exchange_id="EX-1", document_type=document_type)
        doc = doc.__class__(**{**doc.__dict__, "exchange": submission().exchange})
        return db.run_txn_sync(
            store_inbound_envelope_txn,
            envelope(env_id, doc),
            sealer=sealer,
            now=at,
            node=NODE,
            lifecycle=life,
        )

    answer("ACC", "Acceptance", "ENV-1", T0 + timedelta(hours=1))
    # a second acceptance is not in the table
    refused = answer("ACC-2", "Acceptance", "ENV-2", T0 + timedelta(hours=2))
    assert isinstance(refused, Refused) and isinstance(refused.error, LifecycleViolation)
    answer("ANS", "Answer", "ENV-3", T0 + timedelta(days=3))
    closed_at = T0 + timedelta(days=4)
    db.run_txn_sync(
        submit_message_txn,
        submission("CLO", document_type="Closure"),
        sealer=sealer,
        now=closed_at,
        node=NODE,
        lifecycle=life,
    )

    info = db.run_txn_sync(exchange_txn, "EX-1")
    assert (info.state, info.closed_at) == (State.CLOSED, closed_at)
    stages = [(e.stage, e.message_id) for e in db.run_txn_sync(tracking_events_txn, "EX-1")]
    assert stages == [
        (Stage.SUBMITTED, "REQ"),
        (Stage.QUEUED, "REQ"),
        (Stage.REQUESTED, "REQ"),
        (Stage.RECEIVED, "ACC"),
        (Stage.ACCEPTED, "ACC"),
        (Stage.RECEIVED, "ANS"),
        (Stage.ANSWERED, "ANS"),
        (Stage.SUBMITTED, "CLO"),
        (Stage.QUEUED, "CLO"),
        (Stage.CLOSED, "CLO"),
    ]
    assert counts(db)["envelopes_in"] == 2  # the refused envelope left nothing
