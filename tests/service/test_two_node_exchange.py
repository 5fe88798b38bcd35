"""A request/answer exchange between two real nodes, end to end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest_twisted

from gateway.core.documents import read_exchange_document, to_xml
from gateway.testbed import doctor_acceptance, doctor_answer, doctor_closure, doctor_request
from tests.nodes import two_nodes


async def _pull_one(system, after=0):
    # One at a time: the next document may already be waiting (Acceptance, then Answer).
    pulled = await system.pull(after=after, wait=10, limit=1)
    assert len(pulled.deliveries) == 1, pulled
    return pulled.cursor, pulled.deliveries[0]


@pytest_twisted.ensureDeferred
async def test_request_and_answer_travel_end_to_end_with_complete_tracking(tmp_path) -> None:
    async with two_nodes(tmp_path) as (_nodes, systems):
        no, pt = systems["NO-HELSEDIR"], systems["PT-OMD"]
        now = datetime.now(UTC)
        request = doctor_request("IMI-NO-2026-1", "NO-HELSEDIR", "PT-OMD", now)
        signed_request = no.sign(to_xml(request))
        receipt = await no.submit(signed_request)
        assert receipt.issuer_node == "NO"
        assert receipt.items[0].message_id == request.header.document_id

        cursor, delivery = await _pull_one(pt)
        assert delivery.document == signed_request  # byte for byte, end to end
        assert delivery.issuer_node == "PT" and delivery.recipient == "PT-OMD"

        acceptance = pt.sign(to_xml(doctor_acceptance(request, datetime.now(UTC))))
        await pt.submit(acceptance)
        answer_doc = doctor_answer(request, datetime.now(UTC))
        answer = pt.sign(to_xml(answer_doc))
        await pt.submit(answer)

        cursor_no, first = await _pull_one(no)
        assert first.document == acceptance
        cursor_no, second = await _pull_one(no, cursor_no)
        assert second.document == answer
        await no.pull(after=cursor_no)  # acknowledges the answer

        closure = no.sign(
            to_xml(doctor_closure(request, answer_doc.header.document_id, datetime.now(UTC)))
        )
        await no.submit(closure)
        _, closed = await _pull_one(pt, cursor)
        assert read_exchange_document_type(closed.document) == "Closure"
        await pt.pull(after=cursor + 1)  # acknowledge the closure

        state_no, stages_no = await no.tracking(request.header.exchange_id)
        state_pt, stages_pt = await pt.tracking(request.header.exchange_id)
        assert state_no == state_pt == "closed"
        for stages in (stages_no, stages_pt):
            codes = [s[0] for s in stages]
            for expected in ("requested", "accepted", "answered", "closed"):
                assert expected in codes, (expected, codes)
        codes_no = [(s[0], s[3]) for s in stages_no]
        assert ("submitted", request.header.document_id) in codes_no
        assert ("queued", request.header.document_id) in codes_no
        assert ("received_by_peer", request.header.document_id) in codes_no
        assert ("delivered", answer_doc.header.document_id) in codes_no
        # The sender's record includes the peer node's half: the request delivered at PT.
        assert ("delivered", "PT", request.header.document_id) in [
            (s[0], s[2], s[3]) for s in stages_no
        ]
        # Each node's record renders the coded content in that node's languages.
        ns = "{urn:imi-gateway:protocol:1}"
        langs_no = {
            r.get("{http://www.w3.org/XML/1998/namespace}lang")
            for r in no.last_tracking.iter(f"{ns}Rendering")
        }
        langs_pt = {
            r.get("{http://www.w3.org/XML/1998/namespace}lang")
            for r in pt.last_tracking.iter(f"{ns}Rendering")
        }
        assert langs_no == {"nn", "nb"} and langs_pt == {"pt"}
        options_pt = [o.text for o in pt.last_tracking.iter(f"{ns}OptionText")]
        assert "Nenhuma sanção" in options_pt
        codes_pt = [(s[0], s[3]) for s in stages_pt]
        assert ("received", request.header.document_id) in codes_pt
        assert ("delivered", request.header.document_id) in codes_pt


def read_exchange_document_type(data: bytes) -> str:
    from gateway.core.xmlparse import parse_xml

    return read_exchange_document(parse_xml(data)).document_type
