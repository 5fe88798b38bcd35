"""Deadlines, reminders and escalation across two real nodes on a moved clock (no sleeps).

The requester's node NO reminds PT-OMD before the acceptance deadline and
when it passes, then escalates; each action is a node-signed document the
peer node PT verifies against NO's pinned signing certificate, stores,
tracks and delivers (the escalation also to PT-OMD's responsible
coordinator, and on NO to NO-KOORD). Each happens once, however often the
service runs. Both nodes store the same deadlines.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer

from gateway.core.deadlines import end_of_day
from gateway.core.documents import Acceptance, read_exchange_document
from gateway.core.lifecycle import Stage
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.storage.messages import exchange_messages_txn
from gateway.storage.tracking import tracking_events_txn
from gateway.testbed import doctor_request
from tests.service.bed import postgres_database
from tests.service.coordinated import RESPONDER, Bed, coordinated_nodes

DAY = timedelta(days=1)


async def _messages(bed: Bed, country: str, exchange_id: str, document_type: str) -> list[Any]:
    found = await bed.db(country).run_txn(exchange_messages_txn, exchange_id)
    return [m for m in found if m.document_type == document_type]


async def _stages(bed: Bed, country: str, exchange_id: str) -> list[str]:
    events = await bed.db(country).run_txn(tracking_events_txn, exchange_id)
    return [e.stage for e in events if e.node == country]


async def _pulled(bed: Bed, who: str) -> list[Any]:
    pulled = await bed.systems[who].pull()
    return [read_exchange_document(parse_xml(d.document)) for d in pulled.deliveries]


async def _request(bed: Bed, local: str) -> str:
    request = doctor_request(local, "NO-HELSEDIR", RESPONDER, bed.clock.now())
    assert await bed.submit("NO-HELSEDIR", request) == (200, None)
    await bed.on_both(request.header.document_id)
    return request.header.exchange_id


@pytest_twisted.ensureDeferred
async def test_reminders_and_escalation_follow_the_acceptance_deadline_once_each(
    tmp_path: Path,
) -> None:
    async with coordinated_nodes(tmp_path) as bed:
        opened = bed.clock.now()
        exchange_id = await _request(bed, "DL-1")
        no = await bed.exchange("NO", exchange_id)
        pt = await bed.exchange("PT", exchange_id)
        # the same deadlines on both nodes, from the signed Request
        assert no.acceptance_due_at == pt.acceptance_due_at
        assert abs(no.acceptance_due_at - (opened + 7 * DAY)) < timedelta(seconds=5)
        assert no.reply_due_at == pt.reply_due_at == end_of_day((opened + 14 * DAY).date())
        assert no.reply_date_agreed is pt.reply_date_agreed is False
        service = bed.nodes["NO"].parts.deadlines
        assert service is not None
        assert await service.run_once() == 0  # nothing due yet

        # 48 hours before the deadline: one reminder, to PT-OMD
        bed.clock.advance(5 * DAY + timedelta(hours=1))
        assert await service.run_once() == 1
        assert await service.run_once() == 0  # once per deadline
        (reminder,) = await _messages(bed, "NO", exchange_id, "Reminder")
        await bed.on_both(reminder.message_id)
        assert [d.document_type for d in await _pulled(bed, RESPONDER)] == ["Request", "Reminder"]
        peer_service = bed.nodes["PT"].parts.deadlines
        assert peer_service is not None and await peer_service.run_once() == 0  # only NO acts

        # the deadline passes: the second reminder
        bed.clock.advance(2 * DAY)
        assert await service.run_once() == 1
        assert len(await _messages(bed, "NO", exchange_id, "Reminder")) == 2

        # overdue by the grace period (3 days): escalation, on both nodes
        bed.clock.advance(3 * DAY)
        assert await service.run_once() == 1
        assert await service.run_once() == 0
        (escalation,) = await _messages(bed, "NO", exchange_id, "Escalation")
        await bed.on_both(escalation.message_id)
        for country in ("NO", "PT"):
            stages = await _stages(bed, country, exchange_id)
            assert stages.count(Stage.REMINDED) == 2 and stages.count(Stage.ESCALATED) == 1
            assert (await bed.exchange(country, exchange_id)).state == "requested"
        # the escalation reaches the responsible coordinators of both countries
        (on_pt,) = [d for d in await _pulled(bed, "PT-KOORD-OMD")]
        assert on_pt.document_type == "Escalation" and on_pt.reason == "ANSWER_OVERDUE"
        assert on_pt.coordinator == "NO-KOORD"
        assert [d.document_type for d in await _pulled(bed, "NO-KOORD")] == ["Escalation"]
        assert await _pulled(bed, "PT-KOORD") == []  # not the responsible one for PT-OMD

        # nothing more for this deadline, however often the service runs
        bed.clock.advance(30 * DAY)
        assert await service.run_once() == 0


@pytest_twisted.ensureDeferred
async def test_the_agreed_reply_date_replaces_the_requested_one_on_both_nodes(
    tmp_path: Path,
) -> None:
    async with coordinated_nodes(tmp_path) as bed:
        exchange_id = await _request(bed, "DL-2")
        agreed = (bed.clock.now() + 21 * DAY).date()
        header = bed.header(exchange_id, RESPONDER, "NO-HELSEDIR")
        acceptance = Acceptance(
            replace(header, in_reply_to=f"{exchange_id}-1"), agreed_reply_date=agreed
        )
        assert await bed.submit(RESPONDER, acceptance) == (200, None)
        await bed.on_both(acceptance.header.document_id)
        for country in ("NO", "PT"):
            exchange = await bed.exchange(country, exchange_id)
            assert exchange.reply_due_at == end_of_day(agreed)
            assert exchange.reply_date_agreed is True
            assert exchange.accepted_at == acceptance.header.created

        # tracking shows both nodes' deadlines, and they agree
        system = bed.systems["NO-HELSEDIR"]
        await system.tracking(exchange_id)
        root = system.last_tracking
        assert root is not None
        found = {
            e.get("node"): (e.get("acceptanceDue"), e.get("replyDue"), e.get("replyDateAgreed"))
            for e in root.iter(f"{{{DOC_NS}}}Deadlines")
        }
        assert set(found) == {"NO", "PT"} and found["NO"] == found["PT"]
        assert found["NO"][2] == "true"

        # the reply deadline runs now: a reminder 48 hours before the agreed date
        service = bed.nodes["NO"].parts.deadlines
        assert service is not None
        bed.clock.advance(20 * DAY)
        assert await service.run_once() == 1
        (reminder,) = await _messages(bed, "NO", exchange_id, "Reminder")
        await bed.on_both(reminder.message_id)


@pytest_twisted.ensureDeferred
async def test_two_deadline_workers_on_one_postgresql_database_send_each_action_once(
    tmp_path: Path,
) -> None:
    """Two processes sharing the node's database: the action's unique id is the lock."""
    with postgres_database() as no_url, postgres_database() as pt_url:
        config = {c: f'[database]\nurl = "{u}"\n' for c, u in (("NO", no_url), ("PT", pt_url))}
        async with coordinated_nodes(tmp_path, config) as bed:
            assert bed.db("NO").dialect_name == "postgresql"
            exchange_id = await _request(bed, "DL-PG")
            first = bed.nodes["NO"].parts.deadlines
            assert first is not None
            second = copy.copy(first)  # another worker: same database, no shared memory
            second._running = None
            bed.clock.advance(11 * DAY)
            sent = await defer.gatherResults([first.run_once(), second.run_once()])
            assert sorted(sent) == [0, 1]
            assert await first.run_once() == await second.run_once() == 0
            (escalation,) = await _messages(bed, "NO", exchange_id, "Escalation")
            await bed.on_both(escalation.message_id)
            assert await _messages(bed, "NO", exchange_id, "Reminder") == []
