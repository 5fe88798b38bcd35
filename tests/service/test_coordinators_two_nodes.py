"""Coordinators and disputes across two real nodes: every action signed, tracked on both.

PT-KOORD-OMD (scope: PT-OMD) and NO-KOORD (national) list, remind, mediate,
forward and settle or end disputes over the national-system API with their
own certificates; the peer node verifies each document against the sending
node's CA and the coordinator mark. A coordinator outside the scope is
refused with COORDINATOR_OUT_OF_SCOPE, and neither side can pass off one
kind of signer as the other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest_twisted
from lxml import etree

from gateway.core.documents import (
    Acceptance,
    CoordinatorForward,
    CoordinatorReminder,
    Dispute,
    DisputeEnded,
    DisputeSettled,
    MediationNote,
    Reminder,
    read_exchange_document,
    to_xml,
)
from gateway.core.docxml import LocalizedText
from gateway.core.lifecycle import Stage
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.storage.tracking import tracking_events_txn
from gateway.testbed import doctor_request
from tests.service.coordinated import REQUESTER, RESPONDER, Bed, coordinated_nodes
from tests.transport.test_peer_security import refusal

NOTE = LocalizedText("Vi meiner spørsmåla er naudsynte for godkjenninga.", "nn")
LIST = "/api/v1/coordination/exchanges"


async def _open(bed: Bed, local: str) -> str:
    request = doctor_request(local, REQUESTER, RESPONDER, bed.clock.now())
    assert await bed.submit(REQUESTER, request) == (200, None)
    await bed.on_both(request.header.document_id)
    return request.header.exchange_id


async def _stage_on_both(bed: Bed, exchange_id: str, stage: str) -> None:
    for country in ("NO", "PT"):
        events = await bed.db(country).run_txn(tracking_events_txn, exchange_id)
        assert stage in [e.stage for e in events if e.node == country], (country, stage)


async def _listed(bed: Bed, who: str, view: str = "all") -> dict[str, dict[str, str]]:
    answer = await bed.get(who, f"{LIST}?view={view}")
    assert answer.status == 200, answer.body
    root = etree.fromstring(answer.body)
    return {e.get("id"): dict(e.attrib) for e in root.iter(f"{{{DOC_NS}}}Exchange")}


async def _pulled_types(bed: Bed, who: str) -> list[str]:
    pulled = await bed.systems[who].pull()
    return [read_exchange_document(parse_xml(d.document)).document_type for d in pulled.deliveries]


@pytest_twisted.ensureDeferred
async def test_a_dispute_waits_for_the_coordinators_who_mediate_and_settle_it(
    tmp_path: Path,
) -> None:
    async with coordinated_nodes(tmp_path) as bed:
        exchange_id = await _open(bed, "CO-1")
        # the responder disputes the request: both nodes wait for the coordinators
        dispute = Dispute(bed.header(exchange_id, RESPONDER, REQUESTER), "QUESTION_NOT_JUSTIFIED")
        assert await bed.submit(RESPONDER, dispute) == (200, None)
        await bed.on_both(dispute.header.document_id)
        assert await bed.states(exchange_id) == {"NO": "disputed", "PT": "disputed"}
        for country in ("NO", "PT"):
            assert (await bed.exchange(country, exchange_id)).resumes_to == "requested"
        # both countries' responsible coordinators see it (metadata only) and got the Dispute
        for who in ("NO-KOORD", "PT-KOORD-OMD"):
            listed = await _listed(bed, who, "disputed")
            assert listed[exchange_id]["state"] == "disputed"
            assert listed[exchange_id]["disputedIn"] == "requested"
            assert set(listed[exchange_id]) <= {
                "id", "state", "requester", "responder", "area", "updated", "escalations",
                "acceptanceDue", "replyDue", "replyDateAgreed", "overdue", "disputedIn",
            }  # fmt: skip
            assert "Dispute" in await _pulled_types(bed, who)
        assert exchange_id not in await _listed(bed, "PT-KOORD-ACSS")  # out of its scope

        # the parties wait: the responder cannot accept now
        accept = Acceptance(
            replace(bed.header(exchange_id, RESPONDER, REQUESTER), in_reply_to=f"{exchange_id}-1"),
            agreed_reply_date=bed.clock.now().date(),
        )
        assert await bed.submit(RESPONDER, accept) == (409, "EXCHANGE_STATE_CONFLICT")
        # the Norwegian coordinator adds a mediation note; PT's coordinator receives it
        note = MediationNote(
            bed.header(exchange_id, REQUESTER, RESPONDER, owner="NO-KOORD"), "NO-KOORD", NOTE
        )
        assert await bed.coordinate("NO-KOORD", note) == (200, None)
        await bed.on_both(note.header.document_id)
        assert "MediationNote" in await _pulled_types(bed, "PT-KOORD-OMD")
        await _stage_on_both(bed, exchange_id, Stage.MEDIATION_NOTE_ADDED)

        # PT's coordinator records the outcome: the exchange continues where it was
        settled = DisputeSettled(
            bed.header(exchange_id, RESPONDER, REQUESTER, owner="PT-KOORD-OMD"),
            "PT-KOORD-OMD",
            "REQUEST_JUSTIFIED",
        )
        assert await bed.coordinate("PT-KOORD-OMD", settled) == (200, None)
        await bed.on_both(settled.header.document_id)
        assert await bed.states(exchange_id) == {"NO": "requested", "PT": "requested"}
        await _stage_on_both(bed, exchange_id, Stage.DISPUTE_SETTLED)
        assert "DisputeSettled" in await _pulled_types(bed, "NO-KOORD")


@pytest_twisted.ensureDeferred
async def test_coordinators_remind_forward_and_end_disputes_within_their_scope(
    tmp_path: Path,
) -> None:
    async with coordinated_nodes(tmp_path) as bed:
        exchange_id = await _open(bed, "CO-2")
        # out of scope: refused with a clear code, nothing stored
        outsider = CoordinatorReminder(
            bed.header(exchange_id, RESPONDER, REQUESTER, owner="PT-KOORD-ACSS"), "PT-KOORD-ACSS"
        )
        assert await bed.coordinate("PT-KOORD-ACSS", outsider) == (403, "COORDINATOR_OUT_OF_SCOPE")
        unknown = CoordinatorReminder(
            bed.header("NO-HELSEDIR:NOPE", RESPONDER, REQUESTER, owner="PT-KOORD"), "PT-KOORD"
        )
        assert await bed.coordinate("PT-KOORD", unknown) == (403, "COORDINATOR_OUT_OF_SCOPE")
        assert not await bed.stored("PT", outsider.header.document_id)
        # an authority is no coordinator
        assert (await bed.get(RESPONDER, LIST)).status == 403

        # the Norwegian coordinator reminds the Portuguese responder
        reminder = CoordinatorReminder(
            bed.header(exchange_id, REQUESTER, RESPONDER, owner="NO-KOORD"), "NO-KOORD", NOTE
        )
        assert await bed.coordinate("NO-KOORD", reminder) == (200, None)
        await bed.on_both(reminder.header.document_id)
        await _stage_on_both(bed, exchange_id, Stage.REMINDED)
        assert "CoordinatorReminder" in await _pulled_types(bed, RESPONDER)

        # only the responder's coordinator forwards, to another authority of its country
        wrong_side = CoordinatorForward(
            bed.header(exchange_id, REQUESTER, RESPONDER, owner="NO-KOORD"),
            "NO-KOORD",
            "NO-LEGEFORENINGEN",
        )
        assert await bed.coordinate("NO-KOORD", wrong_side) == (400, "FORWARD_TARGET_INVALID")
        forward = CoordinatorForward(
            bed.header(exchange_id, RESPONDER, REQUESTER, owner="PT-KOORD-OMD"),
            "PT-KOORD-OMD",
            "PT-ACSS",
        )
        assert await bed.coordinate("PT-KOORD-OMD", forward) == (200, None)
        await bed.on_both(forward.header.document_id)
        assert await bed.states(exchange_id) == {"NO": "forwarded", "PT": "forwarded"}

        # PT-ACSS is the responder now (the forward handed the exchange over): the requester
        # disputes with it; the coordinators end the exchange (terminal on both)
        forwarded_to = "PT-ACSS"
        dispute = Dispute(bed.header(exchange_id, REQUESTER, forwarded_to), "OTHER")
        assert await bed.submit(REQUESTER, dispute) == (200, None)
        await bed.on_both(dispute.header.document_id)
        ended = DisputeEnded(
            bed.header(exchange_id, forwarded_to, REQUESTER, owner="PT-KOORD-ACSS"),
            "PT-KOORD-ACSS",
            "REQUEST_NOT_JUSTIFIED",
        )
        assert await bed.coordinate("PT-KOORD-ACSS", ended) == (200, None)
        await bed.on_both(ended.header.document_id)
        assert await bed.states(exchange_id) == {"NO": "dispute_ended", "PT": "dispute_ended"}
        for country in ("NO", "PT"):
            assert (await bed.exchange(country, exchange_id)).closed_at is not None  # retention
        late = MediationNote(
            bed.header(exchange_id, REQUESTER, forwarded_to, owner="NO-KOORD"), "NO-KOORD", NOTE
        )
        assert await bed.coordinate("NO-KOORD", late) == (409, "EXCHANGE_STATE_CONFLICT")


@pytest_twisted.ensureDeferred
async def test_authorities_and_coordinators_cannot_sign_for_each_other(tmp_path: Path) -> None:
    async with coordinated_nodes(tmp_path) as bed:
        exchange_id = await _open(bed, "CO-3")
        # an authority signing a coordinator's document, through either endpoint
        posing = MediationNote(bed.header(exchange_id, REQUESTER, RESPONDER), REQUESTER, NOTE)
        assert await bed.submit(REQUESTER, posing) == (403, "COORDINATOR_NOT_BOUND")
        assert await bed.coordinate(REQUESTER, posing) == (403, "COORDINATOR_UNKNOWN")
        # a coordinator naming another coordinator
        other = MediationNote(
            bed.header(exchange_id, REQUESTER, RESPONDER, owner="NO-KOORD"), "NO-KOORD", NOTE
        )
        system = bed.systems["NO-KOORD"]
        assert await bed.coordinate("NO-KOORD", other) == (200, None)
        # a coordinator's certificate on an authority's document
        as_party = Reminder(bed.header(exchange_id, REQUESTER, RESPONDER, owner="NO-KOORD"))
        answer = await system.submit_raw(system.sign(to_xml(as_party)))
        assert refusal(answer)[:2] == (403, "SENDER_NOT_BOUND")
        as_itself = doctor_request("CO-4", "NO-KOORD", RESPONDER, bed.clock.now())
        answer = await system.submit_raw(system.sign(to_xml(as_itself)))
        assert refusal(answer)[:2] == (403, "COORDINATOR_NOT_BOUND")
        # the coordinators' listing shows metadata only: no document, no note
        body = (await bed.get("NO-KOORD", LIST)).body
        assert b"Maria" not in body and NOTE.text.encode() not in body
