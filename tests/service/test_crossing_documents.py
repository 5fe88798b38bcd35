"""Crossing documents: a document the peer cannot store is set aside alone; the queue moves on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest_twisted

from gateway.core.docparts import Header
from gateway.core.documents import Rejection, Withdrawal, to_xml
from gateway.storage.outbox import dead_letters_txn
from gateway.testbed import doctor_request, owned_id
from tests.nodes import start_node, two_nodes
from tests.waiting import until

FAST = {
    c: "[outbound]\ninitial_backoff_seconds = 0.05\nmax_backoff_seconds = 0.2" for c in ("NO", "PT")
}


async def _dead_letters(node):
    return await until(lambda: node.parts.db.run_txn(dead_letters_txn))


@pytest_twisted.ensureDeferred
async def test_a_withdrawal_crossing_a_rejection_is_dead_lettered_and_later_documents_flow(
    tmp_path,
) -> None:
    async with two_nodes(tmp_path, extra_config=FAST) as (nodes, systems):
        no, pt = systems["NO-HELSEDIR"], systems["PT-OMD"]
        first = doctor_request("IMI-NO-X-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        await no.submit(no.sign(to_xml(first)))
        pulled = await pt.pull(wait=10)
        assert len(pulled.deliveries) == 1

        # PT rejects while NO is down; then PT goes down before NO is back.
        await nodes["NO"].stop()
        h = first.header
        rejection = Rejection(
            Header(
                h.exchange_id,
                owned_id(h.receiver, f"{h.exchange_id}-R"),
                h.receiver,
                h.sender,
                datetime.now(UTC),
                "2026.1",
                h.document_id,
            ),
            reason="NOT_COMPETENT",
        )
        await pt.submit(pt.sign(to_xml(rejection)))
        await nodes["PT"].stop()

        # NO, unaware, withdraws the same request and opens another exchange.
        nodes["NO"] = start_node(nodes["NO"].setup)
        withdrawal = Withdrawal(
            Header(
                h.exchange_id,
                f"{h.exchange_id}-W",
                h.sender,
                h.receiver,
                datetime.now(UTC),
                "2026.1",
            ),
            reason="NO_LONGER_NEEDED",
        )
        await no.submit(no.sign(to_xml(withdrawal)))
        second = doctor_request("IMI-NO-X-2", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        signed_second = no.sign(to_xml(second))
        await no.submit(signed_second)

        nodes["PT"] = start_node(nodes["PT"].setup)
        # Each side refuses the other's crossing document, naming it; the rest goes through.
        (no_letter,) = await _dead_letters(nodes["NO"])
        assert no_letter.message_id == withdrawal.header.document_id
        assert no_letter.dead_reason == "EXCHANGE_STATE_CONFLICT"
        (pt_letter,) = await _dead_letters(nodes["PT"])
        assert pt_letter.message_id == rejection.header.document_id
        assert pt_letter.dead_reason == "EXCHANGE_STATE_CONFLICT"
        pulled = await pt.pull(after=pulled.cursor, wait=20)
        assert [d.document for d in pulled.deliveries] == [signed_second]
