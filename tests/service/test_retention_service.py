"""The retention service on a deterministic clock: due exchanges are erased, nothing else, once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import RetentionAreaConfig, RetentionConfig
from gateway.core.audit import Event
from gateway.service.retention import RetentionService
from gateway.storage.audit import audit_log_txn
from gateway.storage.exchanges import exchange_txn, set_exchange_state_txn
from gateway.storage.messages import load_bodies_txn, submit_message_txn
from gateway.storage.model import Stage
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
