"""Exchange metadata, state changes, retention queries and the data-key helper."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.core import dataprotect
from gateway.storage.errors import ExchangeErased, ExchangeNotFound, ExchangeStateChanged
from gateway.storage.exchanges import (
    erase_exchange_txn,
    exchange_data_key_txn,
    exchange_txn,
    exchanges_due_for_erasure_txn,
    list_exchanges_txn,
    set_exchange_state_txn,
    unerased_exchanges_txn,
)
from gateway.storage.messages import (
    exchange_messages_txn,
    purge_envelope_receipts_txn,
    store_inbound_envelope_txn,
    submit_message_txn,
)
from gateway.storage.model import Stage
from gateway.storage.retention import erase_exchanges_txn
from gateway.storage.tracking import tracking_events_txn

from .conftest import NODE, PEER, T0, envelope, payload, submission

DAY = timedelta(days=1)


def submit(db, sealer, message_id, exchange_id, now=T0, **kw):
    return db.run_txn_sync(
        submit_message_txn,
        submission(message_id, exchange_id=exchange_id, **kw),
        sealer=sealer,
        now=now,
        node=NODE,
    )


def test_exchange_metadata_has_no_key_and_knows_its_authorities(db, sealer) -> None:
    submit(db, sealer, "M1", "EX-1")
    info = db.run_txn_sync(exchange_txn, "EX-1")
    assert (
        info.requester_authority,
        info.responder_authority,
        info.requester_node,
        info.responder_node,
    ) == (
        "NO-HELSEDIR",
        "PT-OMD",
        NODE,
        PEER,
    )
    assert (info.area, info.question_set, info.catalogue_version) == ("PQ", "doctors", "1")
    assert info.involves("PT-OMD") and not info.involves("NO-UDIR")
    assert not hasattr(info, "wrapped_data_key")


def test_state_changes_are_tracked_and_can_require_the_current_state(db, sealer) -> None:
    submit(db, sealer, "M1", "EX-1")
    closed_at = T0 + DAY

    info = db.run_txn_sync(
        set_exchange_state_txn,
        "EX-1",
        "closed",
        now=closed_at,
        node=NODE,
        expected="open",
        closed=True,
    )
    assert (info.state, info.closed_at, info.updated_at) == ("closed", closed_at, closed_at)
    with pytest.raises(ExchangeStateChanged) as caught:
        db.run_txn_sync(
            set_exchange_state_txn, "EX-1", "answered", now=closed_at, node=NODE, expected="open"
        )
    assert caught.value.code == "EXCHANGE_STATE_CHANGED"
    # Closing again keeps the first closing time; reopening clears it.
    again = db.run_txn_sync(
        set_exchange_state_txn, "EX-1", "closed", now=closed_at + DAY, node=NODE, closed=True
    )
    assert again.closed_at == closed_at
    reopened = db.run_txn_sync(
        set_exchange_state_txn, "EX-1", "disputed", now=closed_at + DAY, node=NODE, closed=False
    )
    assert reopened.closed_at is None
    stages = [e.stage for e in db.run_txn_sync(tracking_events_txn, "EX-1")]
    assert stages == [Stage.SUBMITTED, Stage.QUEUED, "closed", "closed", "disputed"]
    with pytest.raises(ExchangeNotFound):
        db.run_txn_sync(set_exchange_state_txn, "NOPE", "x", now=T0, node=NODE)


def test_list_exchanges_filters_by_authority_state_and_age(db, sealer) -> None:
    submit(db, sealer, "M1", "EX-1", now=T0)
    submit(db, sealer, "M2", "EX-2", now=T0 + DAY)
    db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope("E", payload("I1", exchange_id="EX-3")),
        sealer=sealer,
        now=T0 + 2 * DAY,
        node=NODE,
    )
    db.run_txn_sync(set_exchange_state_txn, "EX-1", "answered", now=T0 + 3 * DAY, node=NODE)

    def ids(**kw):
        return [e.exchange_id for e in db.run_txn_sync(list_exchanges_txn, **kw)]

    assert ids() == ["EX-1", "EX-3", "EX-2"]  # most recently updated first
    assert ids(state="open") == ["EX-3", "EX-2"]
    assert ids(authority_id="NO-HELSEDIR", updated_before=T0 + 3 * DAY) == ["EX-3", "EX-2"]
    assert ids(authority_id="PT-OMD", limit=1) == ["EX-1"]
    assert ids(authority_id="LV-NOBODY") == []


def test_exchanges_due_for_erasure_after_closing_or_when_never_closed(db, sealer) -> None:
    submit(db, sealer, "M1", "CLOSED-OLD", now=T0)
    submit(db, sealer, "M2", "CLOSED-NEW", now=T0)
    submit(db, sealer, "M3", "OPEN-OLD", now=T0 - 400 * DAY)
    submit(db, sealer, "M4", "OPEN-NEW", now=T0)
    db.run_txn_sync(
        set_exchange_state_txn, "CLOSED-OLD", "closed", now=T0 + DAY, node=NODE, closed=True
    )
    db.run_txn_sync(
        set_exchange_state_txn, "CLOSED-NEW", "closed", now=T0 + 100 * DAY, node=NODE, closed=True
    )
    now = T0 + 200 * DAY
    due = db.run_txn_sync(
        exchanges_due_for_erasure_txn, closed_before=now - 180 * DAY, created_before=now - 365 * DAY
    )
    assert due == ["OPEN-OLD", "CLOSED-OLD"]  # oldest first
    assert (
        db.run_txn_sync(
            exchanges_due_for_erasure_txn,
            closed_before=now,
            created_before=now,
            exclude_areas=["PQ"],
        )
        == []
    )
    assert (
        db.run_txn_sync(
            exchanges_due_for_erasure_txn,
            closed_before=now,
            created_before=now,
            area="SD",
            limit=10,
        )
        == []
    )

    for exchange_id in due:
        assert db.run_txn_sync(erase_exchange_txn, exchange_id, now=now, node=NODE)
    assert (
        db.run_txn_sync(
            exchanges_due_for_erasure_txn,
            closed_before=now - 180 * DAY,
            created_before=now - 365 * DAY,
        )
        == []
    )
    with pytest.raises(ExchangeNotFound):
        db.run_txn_sync(erase_exchange_txn, "NOPE", now=now, node=NODE)


def test_data_key_helper_lets_other_stores_seal_for_the_exchange(db, sealer) -> None:
    submit(db, sealer, "M1", "EX-1")
    key = db.run_txn_sync(exchange_data_key_txn, "EX-1", sealer=sealer)
    rendering = dataprotect.seal(
        key, b"<Rendering lang='nn'/>", dataprotect.aad_for("rendering", "M1")
    )
    assert (
        dataprotect.open_sealed(
            db.run_txn_sync(exchange_data_key_txn, "EX-1", sealer=sealer),
            rendering,
            dataprotect.aad_for("rendering", "M1"),
        )
        == b"<Rendering lang='nn'/>"
    )

    db.run_txn_sync(erase_exchange_txn, "EX-1", now=T0, node=NODE)
    with pytest.raises(ExchangeErased):
        db.run_txn_sync(exchange_data_key_txn, "EX-1", sealer=sealer)
    with pytest.raises(ExchangeNotFound):
        db.run_txn_sync(exchange_data_key_txn, "NOPE", sealer=sealer)


def test_messages_of_an_exchange_in_order(db, sealer) -> None:
    submit(db, sealer, "M1", "EX-1", now=T0)
    submit(db, sealer, "M2", "EX-1", now=T0 + DAY, body=b"<Reminder/>")
    metas = db.run_txn_sync(exchange_messages_txn, "EX-1")
    assert [(m.message_id, m.direction, m.stored_at, m.erased) for m in metas] == [
        ("M1", "out", T0, False),
        ("M2", "out", T0 + DAY, False),
    ]


def test_old_envelope_receipts_can_be_purged(db, sealer) -> None:
    db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope("OLD", payload("I1", exchange_id="X1")),
        sealer=sealer,
        now=T0,
        node=NODE,
    )
    db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope("NEW", payload("I2", exchange_id="X2")),
        sealer=sealer,
        now=T0 + 40 * DAY,
        node=NODE,
    )
    assert db.run_txn_sync(purge_envelope_receipts_txn, received_before=T0 + 30 * DAY) == 1
    replay = db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope("NEW", payload("I2", exchange_id="X2")),
        sealer=sealer,
        now=T0 + 41 * DAY,
        node=NODE,
    )
    assert replay.replayed


def test_erasing_a_batch_returns_counts_and_bodies_once_and_skips_erased_ones(db, sealer) -> None:
    submit(db, sealer, "M1", "EX-A", now=T0, body=b"<doc>canary-A</doc>")
    submit(db, sealer, "M2", "EX-B", now=T0)
    db.run_txn_sync(erase_exchange_txn, "EX-B", now=T0 + DAY, node=NODE)

    erased = db.run_txn_sync(
        erase_exchanges_txn, ["EX-A", "EX-B"], now=T0 + 2 * DAY, node=NODE, sealer=sealer
    )
    assert [(e.exchange_id, e.messages, e.bodies) for e in erased] == [
        ("EX-A", 1, (b"<doc>canary-A</doc>",))
    ]
    assert db.run_txn_sync(exchange_txn, "EX-A").erased_at == T0 + 2 * DAY
    again = db.run_txn_sync(erase_exchanges_txn, ["EX-A", "EX-B"], now=T0 + 3 * DAY, node=NODE)
    assert again == []
    assert [e.exchange_id for e in db.run_txn_sync(unerased_exchanges_txn)] == []
