"""A hostile peer node or push callback cannot steer a running node, nor wedge its queues.

A real node (NO) talks to a hostile server that holds the real TLS key of
its peer (PT) or of a national system's push callback: redirects are refused
(never followed, the Location never requested) and end in retry then dead
letter, never in "sent" or "delivered"; a tracking query then says the
peer's half is unavailable. Any failure of a send cycle (an oversize answer,
an unexpected exception) puts the documents back to retry; none stays
in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import fail

from gateway.core.certs import load_pem_certificate, load_pem_private_key
from gateway.core.documents import to_xml
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.keystore import load_node_keys
from gateway.testbed import (
    NationalSystem,
    NodeSetup,
    doctor_request,
    set_peer_url,
    setup_nodes,
)
from gateway.transport.client import ResponseTooLarge
from gateway.transport.tls import server_options
from tests.nodes import RunningNode, start_node
from tests.service.bed import table_rows
from tests.transport.hostile import Hostile, Target, listen_plain, listen_tls
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]}
#: Retry fast, and give up after two attempts.
FAST = "[outbound]\ninitial_backoff_seconds = 0.05\nmax_attempts = 2"
TRACKING = f'<Tracking xmlns="{DOC_NS}"/>'.encode()


@dataclass
class HostilePeerBed:
    setups: dict[str, NodeSetup]
    node: RunningNode
    system: NationalSystem
    hostile: Hostile
    target: Target

    async def submit(self, exchange_id: str) -> str:
        request = doctor_request(exchange_id, "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        await self.system.submit(self.system.sign(to_xml(request)))
        return str(request.header.document_id)

    async def outbox(self) -> list[Any]:
        return await table_rows(
            self.node.parts.db, "outbox", "state", "attempts", "last_error", "dead_reason"
        )


@contextlib.asynccontextmanager
async def hostile_peer(tmp_path: Path, mode: str) -> AsyncIterator[HostilePeerBed]:
    """NO running; PT's peer URL in NO's configuration leads to a hostile server with PT's TLS key."""
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config={"NO": FAST})
    no_keys, pt_keys = (load_node_keys(setups[c].node_dir) for c in ("NO", "PT"))
    target = Target(TRACKING)
    target_port = listen_plain(target)
    hostile = Hostile(f"http://127.0.0.1:{target_port.getHost().port}/steal", mode)
    options = server_options(pt_keys.tls.key, pt_keys.tls.certificate, [no_keys.ca.certificate])
    hostile_port = listen_tls(hostile, options)
    set_peer_url(setups["NO"].node_dir, "PT", f"https://127.0.0.1:{hostile_port.getHost().port}")
    node = start_node(setups["NO"])
    system = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
    try:
        yield HostilePeerBed(setups, node, system, hostile, target)
    finally:
        await system.close()
        await node.stop()
        await hostile_port.stopListening()
        await target_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_peer_redirecting_envelopes_gets_them_retried_then_dead_lettered(
    tmp_path: Path,
) -> None:
    async with hostile_peer(tmp_path, "redirect-303") as bed:
        await bed.submit("IMI-NO-REDIR-1")

        async def dead() -> bool:
            return [r.state for r in await bed.outbox()] == ["dead"]

        await until(dead)
        (row,) = await bed.outbox()
        # Retried once after backoff (pending again, not left in flight), then given up.
        assert (row.attempts, row.last_error, row.dead_reason) == (
            2,
            "PEER_REDIRECTED",
            "PEER_REDIRECTED",
        )
        envelope_posts = [r for r in bed.hostile.requests if r[1] == b"/peer/v1/envelopes"]
        assert [method for method, _, _ in envelope_posts] == [b"POST", b"POST"]
        assert bed.target.hits == 0


@pytest_twisted.ensureDeferred
async def test_a_peer_redirecting_tracking_and_directory_reads_is_reported_unavailable(
    tmp_path: Path,
) -> None:
    async with hostile_peer(tmp_path, "redirect-302") as bed:
        exchange_id = "NO-HELSEDIR:IMI-NO-REDIR-2"  # ids are scoped to the requester
        await bed.submit(exchange_id)

        record = await bed.node.parts.tracking.record_xml(exchange_id, "NO-HELSEDIR")
        sync = bed.node.service.getServiceNamed("directory-sync")  # type: ignore[attr-defined]
        outcome = await sync.sync_peer("PT")

        assert parse_xml(record).get("peer") == "unavailable"
        assert (outcome.status, outcome.error_code) == ("failed", "PEER_REDIRECTED")
        paths = {path for _, path, _ in bed.hostile.requests}
        assert {
            f"/peer/v1/exchanges/{quote(exchange_id, safe='')}".encode(),
            b"/peer/v1/directory",
        } <= paths
        assert bed.target.hits == 0


class Failing:
    """A stand-in for the node's HTTPS client whose every POST fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.posts = 0

    def post(self, url: str, body: bytes) -> Any:
        self.posts += 1
        return fail(self.error)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ResponseTooLarge(), "PEER_RESPONSE_TOO_LARGE"),
        (RuntimeError("unexpected"), "OUTBOUND_CYCLE_FAILED"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_any_failure_of_a_send_cycle_ends_in_retry_then_dead_letter(
    tmp_path: Path, error: Exception, code: str
) -> None:
    async with hostile_peer(tmp_path, "redirect-303") as bed:
        failing = Failing(error)
        bed.node.parts.senders["PT"]._client = failing  # type: ignore[assignment]
        await bed.submit("IMI-NO-FAIL-1")

        async def dead() -> bool:
            return [r.state for r in await bed.outbox()] == ["dead"]

        await until(dead)
        (row,) = await bed.outbox()
        assert (row.attempts, row.last_error, row.dead_reason) == (2, code, code)
        assert failing.posts == 2
        assert not any(path == b"/peer/v1/envelopes" for _, path, _ in bed.hostile.requests)


@pytest_twisted.ensureDeferred
async def test_a_push_callback_answering_a_redirect_is_not_delivered(tmp_path: Path) -> None:
    setups = setup_nodes(
        tmp_path, AUTHORITIES, extra_config={"PT": "[outbound]\ninitial_backoff_seconds = 0.05"}
    )
    pt_keys = load_node_keys(setups["PT"].node_dir)
    creds = setups["PT"].authorities["PT-OMD"]
    target = Target()
    target_port = listen_plain(target)
    hostile = Hostile(f"http://127.0.0.1:{target_port.getHost().port}/steal", "redirect-303")
    options = server_options(
        load_pem_private_key(creds.key_path.read_bytes()),
        load_pem_certificate(creds.certificate_path.read_bytes()),
        [pt_keys.ca.certificate],
    )
    callback_port = listen_tls(hostile, options)
    push_url = f"https://127.0.0.1:{callback_port.getHost().port}/imi/deliveries"
    pt_config = setups["PT"].node_dir / "gateway.toml"
    pt_config.write_text(
        pt_config.read_text().replace(
            'id = "PT-OMD"\n', f'id = "PT-OMD"\npush_url = "{push_url}"\n'
        )
    )
    nodes = {c: start_node(s) for c, s in setups.items()}
    no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
    try:
        request = doctor_request("IMI-NO-PUSH-R", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        await no.submit(no.sign(to_xml(request)))
        db = nodes["PT"].parts.db

        async def pushes() -> list[Any]:
            return await table_rows(
                db, "deliveries", "delivered_at", "push_state", "attempts", "last_error"
            )

        async def retried() -> bool:
            rows = await pushes()
            return len(rows) == 1 and rows[0].attempts >= 2 and rows[0].push_state == "pending"

        await until(retried)
        (row,) = await pushes()
        assert row.delivered_at is None
        assert row.last_error == "PEER_REDIRECTED"
        assert len(hostile.requests) >= 2
        assert target.hits == 0
    finally:
        await no.close()
        for node in nodes.values():
            await node.stop()
        await callback_port.stopListening()
        await target_port.stopListening()
