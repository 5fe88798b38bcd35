"""Audit entries and the actions they record commit together or not at all (SQLite, PostgreSQL).

Each action that the audit log records (a submission stored, an envelope
stored, a peer's receipt recorded, a delivery acknowledged) appends its
entries inside its own transaction. A failure injected into that transaction,
either while the entries are appended (the action's rows are written, the
entries not yet) or right after they were (everything written, not yet
committed), leaves the database exactly as it was: no action without its
entry, no entry without its action. Without a failure both are stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from gateway.core import audit
from gateway.core.lifecycle import EXCHANGE_LIFECYCLE
from gateway.storage import audit as audit_store
from gateway.storage import deliveries as deliveries_store
from gateway.storage import messages as messages_store
from gateway.storage import outbox as outbox_store
from gateway.storage.audit import audit_log_txn
from gateway.storage.db import Database
from gateway.storage.deliveries import ack_deliveries_txn
from gateway.storage.messages import store_inbound_envelope_txn, submit_messages_txn
from gateway.storage.model import InboundEnvelope
from gateway.storage.outbox import claim_outbox_txn, mark_outbox_sent_txn
from gateway.storage.tables import metadata
from tests.storage.conftest import NODE, PEER, T0, payload, submission


class Injected(Exception):
    """The failure injected into a transaction."""


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""

    def read(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for table in metadata.sorted_tables
        }

    result: dict[str, list[tuple[Any, ...]]] = db.run_txn_sync(read)
    return result


def envelope(*payloads: Any) -> InboundEnvelope:
    return InboundEnvelope(
        envelope_id="ENV-1", peer_node=PEER, sha256="0" * 64, receipt=b"<R/>", payloads=payloads
    )


def submit(db: Database, sealer: Any) -> Callable[[], object]:
    sub = submission(digest="d" * 64)
    return lambda: db.run_txn_sync(
        submit_messages_txn, [sub], sealer=sealer, now=T0, node=NODE, lifecycle=EXCHANGE_LIFECYCLE
    )


def receive(db: Database, sealer: Any) -> Callable[[], object]:
    env = envelope(replace(payload(), digest="e" * 64))
    return lambda: db.run_txn_sync(
        store_inbound_envelope_txn,
        env,
        sealer=sealer,
        now=T0,
        node=NODE,
        lifecycle=EXCHANGE_LIFECYCLE,
    )


def transfer(db: Database, sealer: Any) -> Callable[[], object]:
    submit(db, sealer)()
    (item,) = db.run_txn_sync(claim_outbox_txn, PEER, now=T0)
    return lambda: db.run_txn_sync(
        mark_outbox_sent_txn,
        [item],
        peer_receipt_sha256="1" * 64,
        now=T0,
        node=NODE,
        digests={item.message_id: "d" * 64},
        receipt_digest="f" * 64,
    )


def deliver(db: Database, sealer: Any) -> Callable[[], object]:
    receive(db, sealer)()
    return lambda: db.run_txn_sync(ack_deliveries_txn, "NO-HELSEDIR", 10, now=T0, node=NODE)


ACTIONS = {
    # action: (its module, the set-up returning the action, the events it records)
    "submission": (messages_store, submit, ["SUBMITTED", "STATE_CHANGED"]),
    "envelope": (messages_store, receive, ["RECEIVED", "STATE_CHANGED"]),
    "peer-receipt": (outbox_store, transfer, ["TRANSFERRED", "RECEIPT"]),
    "delivery": (deliveries_store, deliver, ["DELIVERED"]),
}


def failing_append(when: str) -> Callable[..., list[audit.Entry]]:
    real = audit_store.append_audit_records_txn

    def append(conn: Any, records: Any, *, at: Any) -> list[audit.Entry]:
        if when == "while-appending":
            raise Injected("the append fails: the action's rows are written, its entries not")
        entries = real(conn, records, at=at)
        raise Injected("after the append: everything is written, nothing committed")
        return entries  # pragma: no cover

    return append


@pytest.mark.parametrize("when", ["while-appending", "after-appending"])
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_failure_before_commit_leaves_neither_the_action_nor_its_entry(
    db: Database, sealer: Any, monkeypatch: pytest.MonkeyPatch, action: str, when: str
) -> None:
    module, setup, _events = ACTIONS[action]
    run = setup(db, sealer)
    before = snapshot(db)
    monkeypatch.setattr(module, "append_audit_records_txn", failing_append(when))
    with pytest.raises(Injected):
        run()
    assert snapshot(db) == before


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_without_a_failure_the_action_and_its_entries_commit_together(
    db: Database, sealer: Any, action: str
) -> None:
    _module, setup, events = ACTIONS[action]
    run = setup(db, sealer)
    before = snapshot(db)
    run()
    after = snapshot(db)
    added = len(after["audit_log"]) - len(before["audit_log"])
    assert [e.event for e in db.run_txn_sync(audit_log_txn)[-added:]] == events
    changed = [t for t in after if t != "audit_log" and after[t] != before[t]]
    assert changed, "the action stored nothing"
