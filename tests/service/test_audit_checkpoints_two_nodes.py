"""Two real nodes exchange audit checkpoints over the peer listener; a rewritten history is caught."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from sqlalchemy import text
from twisted.internet import reactor

from gateway.storage.audit import append_audit_txn, audit_log_txn
from gateway.storage.audit_checkpoints import (
    held_peer_checkpoint_txn,
    newest_signed_checkpoint_txn,
    peer_conflicts_txn,
)
from tests.adapters.tsa import LocalTSA, make_tsa_keys, serve_tsa
from tests.nodes import RunningNode, two_nodes

#: The timer stays out of the way: the test runs the service itself.
SLOW = "[audit]\ncheckpoint_interval = 86400\n"


async def append(node: RunningNode, n: int) -> None:
    for i in range(n):
        await node.parts.db.run_txn(
            append_audit_txn,
            at=datetime.now(UTC),
            event="SUBMITTED",
            actor="NO-HELSEDIR",
            exchange_id=f"IMI-NO-2026-{i:06d}",
        )


async def run_checkpoints(node: RunningNode) -> None:
    await node.service.getServiceNamed("audit-checkpoints").run_once()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_a_node_that_rewrites_its_database_is_caught_by_its_peer(tmp_path: Path) -> None:
    tsa = LocalTSA(make_tsa_keys())
    tsa.down = True
    url, port = serve_tsa(reactor, tsa)
    (tmp_path / "tsa-ca.pem").write_bytes(tsa.keys.ca_pem())
    no_audit = f'{SLOW}tsa_url = "{url}"\ntsa_ca_file = "{tmp_path / "tsa-ca.pem"}"\n'
    try:
        async with two_nodes(tmp_path, extra_config={"NO": no_audit, "PT": SLOW}) as (nodes, _):
            no, pt = nodes["NO"], nodes["PT"]
            # What the node recorded at start (its configuration and trust), then 3 more.
            base = len(await no.parts.db.run_txn(audit_log_txn))
            await append(no, 3)
            await run_checkpoints(no)  # the TSA is down: signed, sent, not time-stamped
            held = await pt.parts.db.run_txn(held_peer_checkpoint_txn, "NO")
            assert held.checkpoint.size == base + 3 and held.token is None
            assert tsa.requests == 1

            tsa.down = False
            await append(no, 2)
            await run_checkpoints(no)
            mine = await no.parts.db.run_txn(newest_signed_checkpoint_txn)
            assert mine.checkpoint.size == base + 5 and mine.token is not None
            held = await pt.parts.db.run_txn(held_peer_checkpoint_txn, "NO")
            assert held.checkpoint == mine.checkpoint and held.token == mine.token

            # NO's operator rewrites entry 2 with direct SQL, then the node carries on.
            await no.parts.db.run_txn(
                lambda conn: conn.execute(
                    text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
                )
            )
            await append(no, 1)
            await run_checkpoints(no)
            assert (
                await no.parts.db.run_txn(newest_signed_checkpoint_txn)
            ).checkpoint.size == base + 6
            held = await pt.parts.db.run_txn(held_peer_checkpoint_txn, "NO")
            assert held.checkpoint == mine.checkpoint  # PT keeps the old one
            (conflict,) = await pt.parts.db.run_txn(peer_conflicts_txn)
            assert (conflict.peer, conflict.code, conflict.held_size, conflict.offered_size) == (
                "NO",
                "AUDIT_CHECKPOINT_INCONSISTENT",
                base + 5,
                base + 6,
            )
            metrics = pt.parts.metrics.registry.get_sample_value(
                "imi_audit_checkpoint_conflicts_total", {"peer": "NO"}
            )
            assert metrics == 1
    finally:
        await port.stopListening()
