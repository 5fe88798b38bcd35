"""The directory crosses from node to node, pins end-to-end signatures, and is searchable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import pytest_twisted

from gateway.cli import main as cli
from gateway.core.documents import to_xml
from gateway.testbed import NationalSystemError, doctor_request
from tests.nodes import two_nodes
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD", "PT-OTHER"]}


@pytest_twisted.ensureDeferred
async def test_peer_directory_is_synced_searched_and_pins_senders(tmp_path) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, systems):
        pt_dir = str(nodes["PT"].setup.node_dir)
        assert (
            cli(
                [
                    "authorities",
                    "add",
                    pt_dir,
                    "PT-OMD",
                    "--name",
                    "pt:Ordem dos Médicos",
                    "--name",
                    "en:Portuguese Medical Association",
                    "--address",
                    "Av. Almirante Gago Coutinho 151",
                    "--city",
                    "Lisboa",
                    "--profession",
                    "doctor",
                    "--language",
                    "pt",
                ]
            )
            == 0
        )
        # NO's sync service fetches PT's signed directory over the peer API.
        sync = next(s for s in nodes["NO"].service if type(s).__name__ == "DirectorySyncService")
        # The start-up sync may still be running: then this one is skipped.
        await until(lambda: not sync.busy)
        outcome = await sync.sync_peer("PT")
        assert outcome.status in ("updated", "up-to-date"), outcome
        # Version 1 holds the new entry; a refresh that binds its certificate may make it 2.
        assert outcome.version >= 1

        no = systems["NO-HELSEDIR"]
        for word in ("lege", "médico", "Arzt", "doctor", "ordem"):
            answer = await no.client.get(
                f"{nodes['NO'].setup.api_url}/api/v1/authorities?q={word}&country=PT"
            )
            assert answer.status == 200, answer.body
            assert b"PT-OMD" in answer.body, word

        # PT-OTHER holds a certificate from PT's CA but is not in PT's published directory:
        # once a directory is known, NO pins exactly the certificates it lists, so PT
        # refuses the document up front instead of acknowledging it (no dead letter).
        other = systems["PT-OTHER"]
        request = doctor_request("IMI-PT-DIR-1", "PT-OTHER", "NO-HELSEDIR", datetime.now(UTC))
        with pytest.raises(NationalSystemError) as refused:
            await other.submit(other.sign(to_xml(request)))
        assert refused.value.remote_code == "AUTHORITY_NOT_PUBLISHED"
        listed = systems["PT-OMD"]
        request2 = doctor_request("IMI-PT-DIR-2", "PT-OMD", "NO-HELSEDIR", datetime.now(UTC))
        signed2 = listed.sign(to_xml(request2))
        await listed.submit(signed2)
        pulled = await no.pull(wait=10)
        # Only the listed authority's document reaches NO.
        assert [d.document for d in pulled.deliveries] == [signed2]


def test_national_system_error_carries_the_remote_code() -> None:
    error = NationalSystemError(403, "SENDER_NOT_BOUND", "x")
    assert error.remote_code == "SENDER_NOT_BOUND" and error.status == 403
