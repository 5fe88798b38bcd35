"""Ids are scoped per authority; whoever is not party to an exchange cannot tell it exists.

Issue 7, finding 6. Before: an authority not party to an exchange got
EXCHANGE_MISMATCH naming the differing party when it sent into it;
MESSAGE_ID_REUSED told an authority that another authority had used a
document id; any authority could create an exchange with another's
predictable id (``IMI-NO-2026-300011``) and so block it. Now DocumentIds
begin with the sender's authority id and ``:``, ExchangeIds with the
requester's, on both nodes (DOCUMENT_ID_NOT_OWNED, EXCHANGE_ID_NOT_OWNED),
and a non-party is answered exactly as for an unknown exchange.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted

from gateway.core.docparts import Header
from gateway.core.documents import Reminder, to_xml
from gateway.core.envelopes import Payload
from gateway.testbed import CATALOGUE_VERSION, doctor_acceptance, doctor_request
from tests.nodes import two_nodes
from tests.service.bed import row_counts, table_rows
from tests.transport.test_peer_security import PEER_PATH, refusal, running, url
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD", "PT-OTHER"]}


def _answer(answer) -> tuple[int, bytes]:
    return answer.status, answer.body


@pytest_twisted.ensureDeferred
async def test_a_non_party_gets_exactly_the_answer_for_an_unknown_exchange(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, systems):
        helsedir, omd, other = systems["NO-HELSEDIR"], systems["PT-OMD"], systems["PT-OTHER"]
        now = datetime.now(UTC)
        request = doctor_request("2026-300011", "NO-HELSEDIR", "PT-OMD", now)
        exchange_id = request.header.exchange_id
        # What PT-OTHER (not party) would send into that exchange: an Acceptance, a Reminder.
        intruding = doctor_request("2026-300011", "NO-HELSEDIR", "PT-OTHER", now)
        acceptance = other.sign(to_xml(doctor_acceptance(intruding, now)))
        reminder = other.sign(
            to_xml(
                Reminder(
                    Header(
                        exchange_id,
                        "PT-OTHER:R-1",
                        "PT-OTHER",
                        "NO-HELSEDIR",
                        now,
                        CATALOGUE_VERSION,
                        request.header.document_id,
                    )
                )
            )
        )
        path = f"/api/v1/exchanges/{exchange_id}"

        async def probe() -> list[tuple[int, bytes]]:
            return [
                _answer(await other.submit_raw(acceptance)),
                _answer(await other.submit_raw(reminder)),
                _answer(await other.client.get(other.url(path))),
            ]

        unknown = await probe()
        before = await row_counts(nodes["PT"].parts.db)

        await helsedir.submit(helsedir.sign(to_xml(request)))
        pulled = await omd.pull(wait=20)
        assert len(pulled.deliveries) == 1  # the exchange now exists at PT
        after = await row_counts(nodes["PT"].parts.db)
        assert after != before

        existing = await probe()
        assert existing == unknown  # status and body, byte for byte
        # Documents into an unknown exchange: the lifecycle's conflict (only a Request
        # opens one); the tracking read: not found.
        assert [status for status, _ in unknown] == [409, 409, 404]
        for _, body in existing:
            assert b"PT-OMD" not in body and b"EXCHANGE_MISMATCH" not in body
        assert await row_counts(nodes["PT"].parts.db) == after  # nothing stored for PT-OTHER


@pytest_twisted.ensureDeferred
async def test_squatting_another_authoritys_exchange_id_is_refused_and_blocks_nothing(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, systems):
        helsedir, udir, omd = systems["NO-HELSEDIR"], systems["NO-UDIR"], systems["PT-OMD"]
        now = datetime.now(UTC)
        legitimate = doctor_request("2026-300011", "NO-HELSEDIR", "PT-OMD", now)
        exchange_id = legitimate.header.exchange_id
        before = {c: await row_counts(n.parts.db) for c, n in nodes.items()}

        # Another authority of the same node, and one of the peer's, try to take the id first.
        for squatter, receiver in ((udir, "PT-OMD"), (omd, "NO-UDIR")):
            request = doctor_request(
                f"{squatter.authority_id}:S", squatter.authority_id, receiver, now
            )
            squat = replace(request, header=replace(request.header, exchange_id=exchange_id))
            answer = await squatter.submit_raw(squatter.sign(to_xml(squat)))
            assert refusal(answer)[:2] == (400, "EXCHANGE_ID_NOT_OWNED")
        for country, node in nodes.items():
            assert await row_counts(node.parts.db) == before[country]

        signed = helsedir.sign(to_xml(legitimate))
        await helsedir.submit(signed)
        pulled = await omd.pull(wait=20)
        assert [d.document for d in pulled.deliveries] == [signed]


@pytest_twisted.ensureDeferred
async def test_another_authoritys_document_id_is_refused_exactly_like_a_fresh_one(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, systems):
        helsedir, udir = systems["NO-HELSEDIR"], systems["NO-UDIR"]
        now = datetime.now(UTC)
        used = doctor_request("2026-1", "NO-HELSEDIR", "PT-OMD", now)
        await helsedir.submit(helsedir.sign(to_xml(used)))

        async def sent() -> bool:  # the envelope's receipt (and its tracking row) is in
            rows = await table_rows(nodes["NO"].parts.db, "outbox", "state")
            return [row.state for row in rows] == ["sent"]

        await until(sent)
        before = await row_counts(nodes["NO"].parts.db)

        answers = []
        for taken in (used.header.document_id, "NO-HELSEDIR:2026-2-1"):  # used, and fresh
            request = doctor_request("2026-9", "NO-UDIR", "PT-OMD", now)
            probe = replace(request, header=replace(request.header, document_id=taken))
            answers.append(_answer(await udir.submit_raw(udir.sign(to_xml(probe)))))
        assert answers[0] == answers[1]
        assert refusal_of(answers[0]) == (400, "DOCUMENT_ID_NOT_OWNED")
        assert b"MESSAGE_ID_REUSED" not in answers[0][1]
        assert await row_counts(nodes["NO"].parts.db) == before


def refusal_of(answer: tuple[int, bytes]) -> tuple[int, str]:
    from gateway.core.envelopes import read_error
    from gateway.core.xmlparse import parse_xml

    return answer[0], read_error(parse_xml(answer[1])).code


@pytest_twisted.ensureDeferred
async def test_a_peer_cannot_create_an_exchange_for_another_countrys_authority(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bed:
        before = await row_counts(bed.nodes["PT"].parts.db)
        request = doctor_request("X-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        # An envelope from NO whose Request claims an exchange id of PT's authority.
        foreign = replace(request, header=replace(request.header, exchange_id="PT-OMD:X-1"))
        document = bed.helsedir.sign(to_xml(foreign))
        envelope = bed.envelope([Payload(foreign.header.document_id, document)])
        answer = await bed.peer_client("NO").post(url(bed.setups["PT"], PEER_PATH), envelope)
        assert refusal(answer) == (400, "EXCHANGE_ID_NOT_OWNED", foreign.header.document_id)
        assert await row_counts(bed.nodes["PT"].parts.db) == before
