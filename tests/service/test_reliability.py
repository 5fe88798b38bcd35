"""Documents queued while the peer node is down reach it exactly once, in order, after it returns.

Two real nodes on loopback (real TLS, signatures and SQLite). The receiving
node is stopped; its peer queues 200 documents of 50 exchanges (Request,
Reminder, Reminder, Withdrawal each: the receiving lifecycle refuses any
other order), retries with backoff, and delivers everything once the
receiving node is started again from the same node directory on the same
ports. The sender's outbox rows must all be ``sent`` with the digest of the
receipt that acknowledged them, and the receiving national system must pull
each document exactly once, in submission order within its exchange.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import read_receipt, receipt_from
from gateway.core.signing import verify
from gateway.core.xmlparse import parse_xml
from gateway.testbed import NationalSystem, setup_nodes
from tests.nodes import AUTHORITIES, RunningNode, start_node
from tests.service.bed import (
    message_id_of,
    observe_sender,
    pull_until,
    requester_streams,
    sender_settled,
    submit_streams,
    table_rows,
)

EXCHANGES = 50  # x 4 documents = 200
INITIAL_BACKOFF = 0.05
MAX_BACKOFF = 0.4
JITTER = 0.1


#: Small backoff so the test sees several retries while the peer is down.
FAST_RETRIES = f"""
[outbound]
initial_backoff_seconds = {INITIAL_BACKOFF}
max_backoff_seconds = {MAX_BACKOFF}
jitter = {JITTER}
batch_size = 25
"""


async def queue_while_receiver_down_then_restart(
    tmp_path: Path, database_urls: Mapping[str, str] | None = None
) -> None:
    """The whole scenario; ``database_urls`` maps a country to a ``[database] url``."""
    extra = {
        country: f'[database]\nurl = "{url}"\n' for country, url in (database_urls or {}).items()
    }
    extra["NO"] = extra.get("NO", "") + FAST_RETRIES
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config=extra)
    nodes: dict[str, RunningNode] = {c: start_node(s) for c, s in setups.items()}
    for country in database_urls or {}:
        assert nodes[country].parts.db.dialect_name == "postgresql"
    no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
    pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
    try:
        observed = observe_sender(nodes["NO"].parts, "PT")
        await nodes["PT"].stop()

        streams = requester_streams(no, "PT-OMD", "IMI-NO-REL", EXCHANGES)
        expected = [m for s in streams for m in s.message_ids]
        assert len(expected) == 4 * EXCHANGES
        receipts = await submit_streams(no, streams)

        assert sorted(receipts) == sorted(expected)

        # The sender backs off while the peer is down: several refused
        # connections, spaced by at least the (jittered) initial backoff,
        # rather than one attempt per queued document.
        await observed.wait_for(lambda o: len(o.failures) >= 4)

        failures = observed.failures
        gaps = [b - a for a, b in itertools.pairwise(failures)]
        assert all(g >= INITIAL_BACKOFF * (1 - JITTER) * 0.9 for g in gaps), gaps
        assert max(gaps) > 1.5 * INITIAL_BACKOFF * (1 + JITTER), gaps  # it grows
        assert len(failures) < len(expected) // 4
        assert observed.receipts == []
        outbox = await table_rows(nodes["NO"].parts.db, "outbox", "message_id", "state")
        assert {r.state for r in outbox} <= {"pending", "inflight"}
        assert len(outbox) == len(expected)

        # Restart the receiving node: a new service from the same directory and ports.
        nodes["PT"] = start_node(setups["PT"])

        cursor, deliveries = await pull_until(pt, len(expected))

        extra = await pt.pull(after=cursor, wait=0)  # acknowledges; nothing may follow
        assert extra.deliveries == []

        # Exactly the 200 documents, each once, byte for byte, in order per exchange.
        pulled = [message_id_of(d) for d in deliveries]
        assert len(pulled) == len(set(pulled)) == len(expected)
        assert sorted(pulled) == sorted(expected)
        signed = {m: body for s in streams for m, body in s.documents}
        assert all(d.document == signed[message_id_of(d)] for d in deliveries)
        for stream in streams:
            assert [m for m in pulled if m in set(stream.message_ids)] == stream.message_ids

        # The sender recorded, per row, the digest of the receipt that acknowledged it,
        # and that receipt (signed by PT) names the exact bytes sent.
        await observed.wait_for(lambda o: covered(o, expected))
        await sender_settled(nodes["NO"].parts, "PT")
        acknowledged = acknowledgements(observed.receipts, nodes["NO"].parts)
        outbox = await table_rows(
            nodes["NO"].parts.db, "outbox", "message_id", "state", "peer_receipt_sha256"
        )
        assert len(outbox) == len(expected)
        for row in outbox:
            assert row.state == "sent", row
            receipt_sha, item_sha = acknowledged[row.message_id]
            assert row.peer_receipt_sha256 == receipt_sha
            assert item_sha == sha256_hex(signed[row.message_id])
        # ... and PT answered exactly those receipts (it stores each envelope's receipt).
        stored = await table_rows(nodes["PT"].parts.db, "envelopes_in", "receipt")
        assert {sha256_hex(bytes(r.receipt)) for r in stored} == {
            sha256_hex(r) for r in observed.receipts
        }
        dead = [r for r in outbox if r.state == "dead"]
        assert dead == []
    finally:
        await no.close()
        await pt.close()
        for node in nodes.values():
            if node.service.running:  # type: ignore[attr-defined]
                await node.stop()


def covered(observed: Any, expected: list[str]) -> bool:
    """Every expected message id is acknowledged in some receipt observed so far."""
    seen = set()
    for body in observed.receipts:
        seen.update(i.message_id for i in _receipt_items(body))
    return seen >= set(expected)


def _receipt_items(body: bytes) -> Any:
    return receipt_from(parse_xml(body)).items


def acknowledgements(receipts: list[bytes], parts: Any) -> dict[str, tuple[str, str]]:
    """message id -> (SHA-256 of the verified receipt, the item's SHA-256)."""
    trust = parts.trust.envelopes("PT")
    out: dict[str, tuple[str, str]] = {}
    now = datetime.now(UTC)
    for body in receipts:
        verified = verify(body, trust, now=now)
        receipt = read_receipt(verified.root)
        assert receipt.issuer_node == "PT" and receipt.recipient == "NO"
        for item in receipt.items:
            assert item.message_id not in out, f"{item.message_id} acknowledged twice"
            out[item.message_id] = (verified.sha256, item.sha256)
    return out


@pytest_twisted.ensureDeferred
async def test_documents_queued_while_the_peer_is_down_arrive_once_in_order_after_restart(
    tmp_path: Path,
) -> None:
    await queue_while_receiver_down_then_restart(tmp_path)
