"""The retention service on a deterministic clock: due exchanges are erased, nothing else, once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from gateway.config import RetentionAreaConfig, RetentionConfig
from gateway.core.audit import Event
from gateway.service.retention import RetentionService
from gateway.storage.audit import audit_log_txn
from gateway.storage.exchanges import exchange_txn, set_exchange_state_txn
from gateway.storage.messages import load_bodies_txn, submit_message_txn
from gateway.storage.model import Stage
from gateway.storage.personal_data import read_personal_data_txn
from gateway.storage.retention import erase_exchanges_txn
from gateway.storage.tables import envelopes_in
from gateway.storage.tracking import tracking_events_txn
from tests.service.clocked import ClockedNode, clocked_node, fired
from tests.storage.conftest import NODE, exchange_info, submission

MINUTE = 60.0


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ClockedNode]:
    node = clocked_node(tmp_path)
    yield node
    node.stop()


def open_exchange(node: ClockedNode, exchange_id: str, *, area: str = "PQ") -> None:
    sub = replace(
        submission(f"M-{exchange_id}", exchange_id=exchange_id),
        exchange=exchange_info(exchange_id, area=area),
    )
    node.db.run_txn_sync(
        submit_message_txn, sub, sealer=node.runtime.sealer, now=node.runtime.clock.now(), node=NODE
    )


def close(node: ClockedNode, exchange_id: str) -> None:
    node.db.run_txn_sync(
        set_exchange_state_txn,
        exchange_id,
        "closed",
        now=node.runtime.clock.now(),
        node=NODE,
        closed=True,
    )


def erased(node: ClockedNode, exchange_id: str) -> bool:
    return node.db.run_txn_sync(exchange_txn, exchange_id).erased


def test_an_exchange_closed_at_t_is_untouched_before_the_period_and_erased_after(
    node: ClockedNode,
) -> None:
    forgotten: list[bytes] = []

    async def forget(body: bytes) -> None:
        forgotten.append(body)

    settings = RetentionConfig(after_closure="30 minutes", interval_seconds=MINUTE)
    service = RetentionService(node.runtime, settings, forget=forget)
    open_exchange(node, "EX-1")
    close(node, "EX-1")
    service.startService()
    try:
        node.clock.pump([MINUTE] * 29)
        assert not erased(node, "EX-1")
        node.clock.pump([MINUTE] * 2)
        assert erased(node, "EX-1")
    finally:
        assert service.stopService() is None
    bodies = node.db.run_txn_sync(load_bodies_txn, ["M-EX-1"], sealer=node.runtime.sealer)
    assert bodies == {"M-EX-1": None}
    assert forgotten == [b"<Request id='M-EX-1'>Kari Nordmann</Request>"]
    stages = [e.stage for e in node.db.run_txn_sync(tracking_events_txn, "EX-1")]
    assert stages.count(Stage.PERSONAL_DATA_ERASED) == 1
    # The erasure is in the audit log, written by the erasing transaction: no data, one entry.
    entries = node.db.run_txn_sync(audit_log_txn)
    assert [(e.event, e.exchange_id, e.actor) for e in entries if e.event == Event.ERASED] == [
        (Event.ERASED, "EX-1", f"node:{NODE}")
    ]


def test_an_exchange_never_closed_is_erased_after_the_never_closed_limit(
    node: ClockedNode,
) -> None:
    settings = RetentionConfig(after_closure="10 minutes", if_never_closed="2 hours")
    service = RetentionService(node.runtime, settings)
    open_exchange(node, "EX-OPEN")
    node.clock.advance(119 * MINUTE)
    assert fired(service.run_once()) == 0
    assert not erased(node, "EX-OPEN")
    node.clock.advance(2 * MINUTE)
    assert fired(service.run_once()) == 1
    assert erased(node, "EX-OPEN")


def test_each_legislation_area_keeps_its_own_period(node: ClockedNode) -> None:
    settings = RetentionConfig(
        after_closure="2 hours",
        areas={"services": RetentionAreaConfig(after_closure="10 minutes")},
    )
    service = RetentionService(node.runtime, settings)
    open_exchange(node, "EX-SERVICES", area="services")
    open_exchange(node, "EX-PQ", area="PQ")
    close(node, "EX-SERVICES")
    close(node, "EX-PQ")
    node.clock.advance(11 * MINUTE)
    assert fired(service.run_once()) == 1
    assert (erased(node, "EX-SERVICES"), erased(node, "EX-PQ")) == (True, False)
    node.clock.advance(2 * 60 * MINUTE)
    assert fired(service.run_once()) == 1
    assert erased(node, "EX-PQ")


def test_a_purge_runs_in_batches_oldest_first_and_a_second_run_changes_nothing(
    node: ClockedNode,
) -> None:
    settings = RetentionConfig(after_closure="1 minute", batch_size=2)
    service = RetentionService(node.runtime, settings)
    for i in range(5):
        open_exchange(node, f"EX-{i}")
        close(node, f"EX-{i}")
        node.clock.advance(1)
    node.clock.advance(2 * MINUTE)
    assert fired(service.run_once()) == 5
    assert all(erased(node, f"EX-{i}") for i in range(5))
    before = [node.db.run_txn_sync(exchange_txn, f"EX-{i}") for i in range(5)]
    node.clock.advance(MINUTE)
    assert fired(service.run_once()) == 0
    assert [node.db.run_txn_sync(exchange_txn, f"EX-{i}") for i in range(5)] == before


def test_the_blocked_stage_makes_personal_data_unreadable_before_erasure_and_once(
    node: ClockedNode,
) -> None:
    forgotten: list[bytes] = []

    async def forget(body: bytes) -> None:
        forgotten.append(body)

    settings = RetentionConfig(after_closure="30 minutes", blocked_after="10 minutes")
    service = RetentionService(node.runtime, settings, forget=forget)
    open_exchange(node, "EX-B")
    close(node, "EX-B")
    sealer = node.runtime.sealer
    requester = node.db.run_txn_sync(exchange_txn, "EX-B").requester_authority

    def read() -> object:
        return node.db.run_txn_sync(
            read_personal_data_txn,
            requester,
            ["M-EX-B"],
            sealer=sealer,
            now=node.runtime.clock.now(),
            audit_key=node.runtime.audit_key,
        )

    assert read().bodies["M-EX-B"]  # type: ignore[attr-defined]
    node.clock.advance(9 * MINUTE)
    assert fired(service.run_once()) == 0
    assert node.db.run_txn_sync(exchange_txn, "EX-B").blocked_at is None

    node.clock.advance(2 * MINUTE)
    assert fired(service.run_once()) == 0  # blocked, not erased
    assert fired(service.run_once()) == 0  # a second run blocks nothing again
    exchange = node.db.run_txn_sync(exchange_txn, "EX-B")
    assert exchange.blocked_at == node.runtime.clock.now() and not exchange.erased
    # Unreadable for the read paths (deliveries, tracking), still held for the purge.
    blocked = read()
    assert not blocked.bodies and blocked.erased == {"M-EX-B"}  # type: ignore[attr-defined]
    assert node.db.run_txn_sync(load_bodies_txn, ["M-EX-B"], sealer=sealer)["M-EX-B"]
    stages = [e.stage for e in node.db.run_txn_sync(tracking_events_txn, "EX-B")]
    assert stages.count(Stage.PERSONAL_DATA_BLOCKED) == 1

    node.clock.advance(20 * MINUTE)
    assert fired(service.run_once()) == 1
    assert erased(node, "EX-B")
    assert forgotten == [b"<Request id='M-EX-B'>Kari Nordmann</Request>"]
    retention = {Event.BLOCKED, Event.ERASED}
    entries = node.db.run_txn_sync(audit_log_txn)
    events = [(e.event, e.exchange_id) for e in entries if e.event in retention]
    assert events == [(Event.BLOCKED, "EX-B"), (Event.ERASED, "EX-B")]
    # The one read before blocking was audited; the blocked read unsealed nothing.
    reads = [e for e in entries if e.event == Event.PERSONAL_DATA_READ]
    assert [(e.actor, e.message_id) for e in reads] == [(requester, "M-EX-B")]


def test_an_exchange_due_for_erasure_is_erased_without_a_blocked_stage_first(
    node: ClockedNode,
) -> None:
    settings = RetentionConfig(after_closure="30 minutes", blocked_after="10 minutes")
    service = RetentionService(node.runtime, settings)
    open_exchange(node, "EX-LATE")
    close(node, "EX-LATE")
    node.clock.advance(31 * MINUTE)  # the node was down while the blocked stage began
    assert fired(service.run_once()) == 1
    stages = [e.stage for e in node.db.run_txn_sync(tracking_events_txn, "EX-LATE")]
    assert Stage.PERSONAL_DATA_BLOCKED not in stages and Stage.PERSONAL_DATA_ERASED in stages


def test_envelope_receipts_older_than_the_kept_time_are_forgotten(node: ClockedNode) -> None:
    def add(conn: Connection, envelope_id: str, received_at: datetime) -> None:
        conn.execute(
            insert(envelopes_in).values(
                envelope_id=envelope_id,
                peer_node="PT",
                received_at=received_at,
                sha256="0" * 64,
                receipt=b"<Receipt/>",
            )
        )

    now = node.runtime.clock.now()
    node.db.run_txn_sync(add, "ENV-OLD", now - timedelta(seconds=601))
    node.db.run_txn_sync(add, "ENV-NEW", now - timedelta(seconds=599))
    service = RetentionService(node.runtime, RetentionConfig(), keep_envelope_receipts_seconds=600)
    assert fired(service.run_once()) == 0
    kept = node.db.run_txn_sync(
        lambda conn: list(conn.execute(select(envelopes_in.c.envelope_id)).scalars())
    )
    assert kept == ["ENV-NEW"]


def test_a_purge_yielding_between_batches_lets_the_clock_run_and_still_erases_everything(
    node: ClockedNode,
) -> None:
    settings = RetentionConfig(after_closure="1 minute", batch_size=2)
    service = RetentionService(node.runtime, settings, pause_seconds=0.5)
    for i in range(5):
        open_exchange(node, f"EX-Y{i}")
        close(node, f"EX-Y{i}")
    node.clock.advance(2 * MINUTE)
    running = service.run_once()
    assert not running.called  # paused after the first batch of two
    assert sum(erased(node, f"EX-Y{i}") for i in range(5)) == 2
    node.clock.pump([0.5, 0.5])
    assert fired(running) == 5


def test_a_purge_pauses_between_batches_so_it_works_at_most_its_share_of_the_time(
    node: ClockedNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RetentionConfig(after_closure="1 minute", batch_size=2, purge_share=0.2)
    service = RetentionService(node.runtime, settings, pause_seconds=0.0)
    for i in range(5):
        open_exchange(node, f"EX-S{i}")
        close(node, f"EX-S{i}")
    node.clock.advance(2 * MINUTE)
    run_txn = node.db.run_txn

    def slow_erasure(func, *args, **kwargs):  # each batch takes one second on the clock
        if func is erase_exchanges_txn:
            node.clock.advance(1.0)
        return run_txn(func, *args, **kwargs)

    monkeypatch.setattr(node.db, "run_txn", slow_erasure)
    running = service.run_once()
    assert sum(erased(node, f"EX-S{i}") for i in range(5)) == 2
    node.clock.advance(3.9)  # busy 1 s at a share of 0.2: a pause of 4 s
    assert sum(erased(node, f"EX-S{i}") for i in range(5)) == 2
    node.clock.advance(0.1)
    assert sum(erased(node, f"EX-S{i}") for i in range(5)) == 4
    node.clock.advance(4.0)
    assert fired(running) == 5
