"""gateway.client against two real nodes: sign, submit, pull and acknowledge, verify, track.

The client is synchronous (what national systems want), so each call runs
on a thread while the two nodes run on the test's reactor.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway.client import (
    CreatedMissing,
    NodeClient,
    NodeRefused,
    NodeVerifier,
    ReceiptMismatch,
    SignerNotNode,
    verify_original,
    with_created,
)
from gateway.core import certs
from gateway.core.certs import TrustStore
from gateway.core.xmlparse import parse_xml
from gateway.keystore import load_node_keys
from gateway.testbed import NodeSetup
from tests.nodes import two_nodes

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
EXCHANGE = "NO-HELSEDIR:2026-000417"


def client_of(setup: NodeSetup, authority: str) -> NodeClient:
    """A client from the files handed over to ``authority``'s national system."""
    creds = setup.authorities[authority]
    return NodeClient.from_files(
        setup.api_url,
        key=creds.key_path,
        cert=creds.certificate_path,
        node_ca=creds.key_path.parent / "node-ca.pem",
    )


def test_the_client_imports_neither_twisted_nor_sqlalchemy() -> None:
    probe = "import sys, gateway.client; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert not loaded & {"twisted", "sqlalchemy", "alembic"}, sorted(loaded)


def test_dating_a_document_sets_its_created_time_and_nothing_else() -> None:
    root = parse_xml((EXAMPLES / "request.xml").read_bytes())
    when = datetime(2026, 12, 3, 16, 40, 12, 345678, tzinfo=UTC)
    dated = with_created(root, when)
    created = dated.findtext(
        "{urn:imi-gateway:protocol:1}Header/{urn:imi-gateway:protocol:1}Created"
    )
    assert created == "2026-12-03T16:40:12Z"
    with pytest.raises(CreatedMissing):
        with_created(parse_xml(b'<Thing xmlns="urn:imi-gateway:protocol:1"/>'))


@pytest_twisted.ensureDeferred
async def test_a_request_goes_from_one_client_to_the_other_verified_at_each_step(
    tmp_path,
) -> None:
    async with two_nodes(tmp_path) as (nodes, _systems):
        no, pt = nodes["NO"].setup, nodes["PT"].setup
        helsedir, omd = client_of(no, "NO-HELSEDIR"), client_of(pt, "PT-OMD")
        try:
            signed = helsedir.sign((EXAMPLES / "request.xml").read_bytes())
            receipt = await deferToThread(helsedir.submit, signed)
            assert receipt.issuer_node == "NO" and receipt.recipient == "NO-HELSEDIR"
            assert [i.message_id for i in receipt.items] == [f"{EXCHANGE}-1"]
            again = await deferToThread(helsedir.submit, signed)
            assert again == receipt  # the same bytes: the original receipt

            pulled = await deferToThread(omd.pull, 0, wait=20)
            assert [i.message_id for i in pulled.items] == [f"{EXCHANGE}-1"]
            delivery = pulled.items[0].delivery
            assert delivery.document == signed and delivery.issuer_node == "PT"
            original = verify_original(delivery)
            assert original.sender == "NO-HELSEDIR" and not original.trusted
            no_ca = load_node_keys(no.node_dir).ca.certificate
            trusted = verify_original(delivery, TrustStore(cas=(no_ca,)))
            assert trusted.trusted and trusted.sha256 == receipt.items[0].sha256

            await deferToThread(omd.acknowledge, pulled.cursor)
            after = await deferToThread(omd.pull, pulled.cursor)
            assert after.items == () and after.cursor == pulled.cursor

            tracking = await deferToThread(helsedir.track, EXCHANGE)
            assert tracking.state == "requested" and tracking.responder == "PT-OMD"
            assert "submitted" in {s.code for s in tracking.stages}
            with pytest.raises(NodeRefused) as refused:
                await deferToThread(omd.track, "PT-OMD:2026-999999")
            assert refused.value.status == 404
            assert refused.value.remote_code == "EXCHANGE_NOT_FOUND"
        finally:
            helsedir.close()
            omd.close()


@pytest_twisted.ensureDeferred
async def test_a_document_dated_outside_the_replay_window_is_refused_with_its_code(
    tmp_path,
) -> None:
    async with two_nodes(tmp_path) as (nodes, _systems):
        helsedir = client_of(nodes["NO"].setup, "NO-HELSEDIR")
        try:
            stale = helsedir.sign(
                (EXAMPLES / "request.xml").read_bytes(),
                created=datetime(2026, 3, 2, 9, 15, tzinfo=UTC),
            )
            with pytest.raises(NodeRefused) as refused:
                await deferToThread(helsedir.submit, stale)
            assert refused.value.status == 400
            assert refused.value.remote_code == "CREATION_TIME_OUT_OF_WINDOW"
        finally:
            helsedir.close()


@pytest_twisted.ensureDeferred
async def test_receipts_must_be_the_nodes_and_name_the_bytes_sent(tmp_path) -> None:
    async with two_nodes(tmp_path) as (nodes, _systems):
        no = nodes["NO"].setup
        helsedir = client_of(no, "NO-HELSEDIR")
        try:
            signed = helsedir.sign((EXAMPLES / "request.xml").read_bytes())
            answer = await deferToThread(
                helsedir._http.request, "POST", "/api/v1/documents", signed
            )
        finally:
            helsedir.close()
    ca = load_node_keys(no.node_dir).ca.certificate
    verifier = NodeVerifier(ca, "NO")
    assert verifier.receipt(answer.body, signed).items[0].message_id == f"{EXCHANGE}-1"
    with pytest.raises(ReceiptMismatch):
        verifier.receipt(answer.body, signed + b"\n")
    with pytest.raises(SignerNotNode):
        NodeVerifier(ca, "SE").receipt(answer.body, signed)
    # A national system's signature (the same CA issued it) never passes for the node's.
    assert certs.authority_id_of(helsedir.signer.certificate) == "NO-HELSEDIR"
    with pytest.raises(SignerNotNode):
        verifier.delivery(signed)
