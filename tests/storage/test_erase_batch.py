"""Set-based erasure of a batch: statements per batch not per exchange, one audit insert."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select

from gateway.core import audit
from gateway.core.audit import Event
from gateway.storage.audit import audit_log_txn, stored_hashes_txn
from gateway.storage.messages import submit_message_txn
from gateway.storage.model import Stage
from gateway.storage.retention import erase_exchanges_txn
from gateway.storage.tables import exchange_keys, messages, outbox, tracking

from .conftest import NODE, T0, submission

LATER = T0 + timedelta(days=200)


def open_exchanges(db, sealer, prefix: str, count: int) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(count)]
    for exchange_id in ids:
        db.run_txn_sync(
            submit_message_txn,
            submission(f"M-{exchange_id}", exchange_id=exchange_id),
            sealer=sealer,
            now=T0,
            node=NODE,
        )
    return ids


@contextmanager
def counted_statements(db) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_erasing_40_exchanges_runs_the_same_statements_as_erasing_2(db, sealer) -> None:
    small = open_exchanges(db, sealer, "EX-S", 2)
    large = open_exchanges(db, sealer, "EX-L", 40)
    with counted_statements(db) as for_small:
        erased = db.run_txn_sync(erase_exchanges_txn, small, now=LATER, node=NODE, sealer=sealer)
        assert len(erased) == 2
    with counted_statements(db) as for_large:
        erased = db.run_txn_sync(erase_exchanges_txn, large, now=LATER, node=NODE, sealer=sealer)
    assert [e.exchange_id for e in erased] == large
    assert all(e.messages == 1 and len(e.bodies) == 1 for e in erased)
    assert for_large == for_small, "a statement per exchange crept in"
    assert len(for_large) <= 12


def test_a_batch_erasure_erases_everything_of_each_exchange_and_records_each_once(
    db, sealer
) -> None:
    ids = open_exchanges(db, sealer, "EX-B", 5)
    keep = open_exchanges(db, sealer, "EX-K", 1)
    before = len(db.run_txn_sync(audit_log_txn))
    erased = db.run_txn_sync(erase_exchanges_txn, [*ids, "NO-SUCH"], now=LATER, node=NODE)
    assert [e.exchange_id for e in erased] == ids

    def state(conn):
        return (
            conn.execute(select(exchange_keys.c.exchange_id).order_by(exchange_keys.c.exchange_id))
            .scalars()
            .all(),
            conn.execute(select(messages.c.exchange_id).where(messages.c.body.is_not(None)))
            .scalars()
            .all(),
            sorted(tuple(r) for r in conn.execute(select(outbox.c.state, outbox.c.dead_reason))),
            conn.execute(
                select(tracking.c.exchange_id)
                .where(tracking.c.stage == str(Stage.PERSONAL_DATA_ERASED))
                .order_by(tracking.c.exchange_id)
            )
            .scalars()
            .all(),
        )

    keys, bodies, copies, stages = db.run_txn_sync(state)
    assert keys == keep and bodies == keep
    assert copies == [("dead", "EXCHANGE_ERASED")] * 5 + [("pending", None)]
    assert stages == ids
    entries = db.run_txn_sync(audit_log_txn)
    new = entries[before:]
    assert [(e.event, e.actor, e.exchange_id) for e in new] == [
        (Event.ERASED, f"node:{NODE}", i) for i in ids
    ]
    hashes = db.run_txn_sync(stored_hashes_txn)
    for previous, entry, stored in zip(entries, entries[1:], hashes[1:], strict=False):
        assert entry.prev == audit.entry_hash(previous) and stored == audit.entry_hash(entry)
    assert db.run_txn_sync(erase_exchanges_txn, ids, now=LATER, node=NODE) == []
    assert len(db.run_txn_sync(audit_log_txn)) == len(entries)
