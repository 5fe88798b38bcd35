"""A document the peer cannot take becomes a dead letter with its reason; an operator requeues it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest_twisted

from gateway.cli import main as cli
from gateway.core.documents import to_xml
from gateway.storage.outbox import dead_letters_txn
from gateway.testbed import doctor_request
from tests.nodes import start_node, two_nodes
from tests.waiting import until

FAST_GIVE_UP = {"NO": "[outbound]\ninitial_backoff_seconds = 0.05\nmax_attempts = 1"}


@pytest_twisted.ensureDeferred
async def test_unreachable_peer_dead_letters_and_operator_retry_delivers(tmp_path, capsys) -> None:
    async with two_nodes(tmp_path, extra_config=FAST_GIVE_UP) as (nodes, systems):
        await nodes["PT"].stop()
        no, pt = systems["NO-HELSEDIR"], systems["PT-OMD"]
        request = doctor_request("IMI-NO-DEAD-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        signed = no.sign(to_xml(request))
        await no.submit(signed)

        db = nodes["NO"].parts.db

        async def dead() -> bool:
            return bool(await db.run_txn(dead_letters_txn))

        await until(dead)
        (letter,) = await db.run_txn(dead_letters_txn)
        assert letter.message_id == request.header.document_id
        assert letter.dead_reason == "PEER_UNREACHABLE"

        node_dir = str(nodes["NO"].setup.node_dir)
        assert cli(["queue", node_dir, "--dead"]) == 0
        listing = capsys.readouterr().out
        assert request.header.document_id in listing and "PEER_UNREACHABLE" in listing

        nodes["PT"] = start_node(nodes["PT"].setup)
        assert cli(["queue", node_dir, "--retry-all"]) == 0
        assert "requeued 1 dead letter(s)" in capsys.readouterr().out
        nodes["NO"].parts.senders["PT"].wake()
        pulled = await pt.pull(wait=20)
        assert [d.document for d in pulled.deliveries] == [signed]
        assert await db.run_txn(dead_letters_txn) == []
