"""A node's keys are rotated while documents flow both ways: nothing accepted is lost or refused.

Two real nodes on loopback exchange requests in both directions. Mid-stream,
NO's operator runs ``keys rotate``, sends ``keys export`` to PT, whose
operator runs ``keys import-peer`` (the new certificates are added next to
the old ones) and reloads; then NO reloads and signs and presents its new
keys. Every submission gets its receipt, every document is delivered exactly
once, nothing is dead-lettered. Afterwards PT retires NO's old certificates
and the exchange goes on with the new ones only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from gateway.cli import main as cli
from gateway.core.certs import TrustStore
from gateway.core.documents import to_xml
from gateway.core.signing import verify
from gateway.keystore import load_node_keys, load_trust, reload_node_keys
from gateway.storage.outbox import dead_letters_txn, outbox_depth_txn
from gateway.testbed import NationalSystem, doctor_request
from tests.nodes import two_nodes
from tests.waiting import until

COUNT = 40


async def submit_all(
    system: NationalSystem, responder: str, prefix: str, done: list[bytes]
) -> None:
    """Submit COUNT requests one after another; a refusal raises and fails the test."""
    for i in range(COUNT):
        request = doctor_request(f"{prefix}-{i}", system.authority_id, responder, datetime.now(UTC))
        signed = system.sign(to_xml(request))
        await system.submit(signed)  # verifies the receipt; raises on any refusal
        done.append(signed)


async def pull_all(system: NationalSystem, expected: int) -> list[bytes]:
    documents: list[bytes] = []
    cursor = 0
    while len(documents) < expected:
        pulled = await system.pull(after=cursor, wait=20)
        documents += [d.document for d in pulled.deliveries]
        cursor = pulled.cursor
    await system.pull(after=cursor)  # acknowledge the last ones
    return documents


@pytest_twisted.ensureDeferred
async def test_rotation_under_traffic_loses_and_refuses_nothing(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (nodes, systems):
        no, pt = nodes["NO"], nodes["PT"]
        no_dir, pt_dir = str(no.setup.node_dir), str(pt.setup.node_dir)
        helsedir, omd = systems["NO-HELSEDIR"], systems["PT-OMD"]
        old = load_node_keys(no_dir)
        from_no: list[bytes] = []
        from_pt: list[bytes] = []
        traffic: Deferred[list[None]] = gatherResults(
            [
                Deferred.fromCoroutine(submit_all(helsedir, "PT-OMD", "IMI-ROT-NO", from_no)),
                Deferred.fromCoroutine(submit_all(omd, "NO-HELSEDIR", "IMI-ROT-PT", from_pt)),
            ],
            consumeErrors=True,
        )
        await until(lambda: len(from_no) >= 5 and len(from_pt) >= 5)

        # NO's operator rotates; the running NO keeps its old keys until it reloads.
        bundle = tmp_path / "no-rotated.json"
        assert cli(["keys", "rotate", no_dir]) == 0
        assert cli(["keys", "export", no_dir, "-o", str(bundle)]) == 0
        # PT's operator imports the bundle: NO's new certificates are added, the old stay.
        assert cli(["keys", "import-peer", pt_dir, str(bundle)]) == 0
        pt.parts.reload_trust()
        # Documents from NO still signed with its old key arrive after PT's reload, accepted.
        received = pt.parts.metrics.accepted.labels("received", "Request")
        before = received._value.get()
        await until(lambda: received._value.get() >= before + 2)
        new = reload_node_keys(no_dir)
        assert new.signing.fingerprint != old.signing.fingerprint
        assert new.tls.fingerprint != old.tls.fingerprint
        peer_no = load_trust(pt_dir).peers["NO"]
        assert len(peer_no.signing_set) == 2 and len(peer_no.tls_set) == 2
        # NO's national systems trust the node CA; the test bed's client pins, so it is told.
        helsedir.pin_node_certificates(
            (old.signing.certificate, new.signing.certificate),
            (old.tls.certificate, new.tls.certificate),
        )
        mid_no = len(from_no)
        no.parts.reload_trust()  # NO now signs and presents the new keys
        assert mid_no < COUNT, "the rotation came after the traffic"

        await traffic
        delivered_to_pt = await pull_all(omd, COUNT)
        delivered_to_no = await pull_all(helsedir, COUNT)
        assert sorted(delivered_to_pt) == sorted(from_no)  # each exactly once
        assert sorted(delivered_to_no) == sorted(from_pt)
        for node in (no, pt):
            assert await node.parts.db.run_txn(dead_letters_txn) == []
            # No envelope or receipt was refused on the way (each would be a send failure).
            failures = [
                (s.labels, s.value)
                for family in node.parts.metrics.registry.collect()
                if family.name == "imi_envelope_send_failures"
                for s in family.samples
                if s.name.endswith("_total")
            ]
            assert failures == []
            assert all(row.state == "dead" for row in await node.parts.db.run_txn(outbox_depth_txn))

        # The new key signs NO's receipts now.
        late = helsedir.sign(
            to_xml(doctor_request("IMI-ROT-LATE", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC)))
        )
        answer = await helsedir.submit_raw(late)
        assert answer.status == 200
        verify(answer.body, TrustStore(pinned=(new.signing.certificate,)), now=datetime.now(UTC))

        # PT retires NO's old certificates: documents keep flowing with the new ones only.
        assert cli(["keys", "retire-old", pt_dir, "NO"]) == 0
        pt.parts.reload_trust()
        assert len(load_trust(pt_dir).peers["NO"].signing_set) == 1
        after = helsedir.sign(
            to_xml(doctor_request("IMI-ROT-AFTER", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC)))
        )
        await helsedir.submit(after)
        got = await pull_all(omd, 2)
        assert sorted(got) == sorted([late, after])
