"""Security refusals at both HTTPS edges of a running node, with real TLS and real signatures.

Three node directories are set up exactly as operators would (NO, PT, EE,
all peers of each other); NO and PT run. The tests act as a hostile or
confused peer or national system, posting crafted bytes with chosen TLS
client certificates, and check the stable error code, the HTTP status, and
that nothing was stored or delivered:

* unknown TLS certificate (another CA): the handshake fails;
* a certificate from the peer's CA that is not the pinned one: PEER_UNKNOWN;
* an envelope signed by a third node, posted with the real peer's TLS
  certificate (or naming another sender node): PEER_MISMATCH;
* the same envelope bytes posted twice: the original receipt, byte for
  byte, and one delivery;
* a document whose sender is not the authority of its signing certificate:
  SENDER_NOT_BOUND (at the national API and inside a peer's envelope);
* a document submitted over another authority's TLS certificate:
  SENDER_NOT_CALLER;
* an envelope or a document created outside the replay window:
  CREATION_TIME_OUT_OF_WINDOW.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from gateway.core import pki
from gateway.core.catalogue import load_catalogues
from gateway.core.certs import load_pem_certificate, load_pem_private_key
from gateway.core.documents import to_xml
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import Payload, build_envelope, read_error, read_receipt
from gateway.core.signing import Signer, verify
from gateway.core.xmlparse import parse_xml
from gateway.keystore import NodeKeys, load_node_keys
from gateway.service.runtime import ReactorClock
from gateway.testbed import (
    NationalSystem,
    NodeSetup,
    doctor_request,
    setup_nodes,
    start_in_process,
)
from gateway.transport.client import HTTPAnswer, HTTPSClient, PeerUnreachable
from tests.nodes import RunningNode, settled, start_node
from tests.service.bed import raw_client, row_counts, submit

AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD"], "EE": ["EE-TA"]}


@dataclass
class Bed:
    setups: dict[str, NodeSetup]
    nodes: dict[str, RunningNode]
    keys: dict[str, NodeKeys]
    helsedir: NationalSystem
    clients: list[HTTPSClient]
    #: How far NO's clock runs ahead of the real one (to age documents and envelopes).
    skew: list[timedelta]

    def peer_client(self, sender: str, receiver: str = "PT") -> HTTPSClient:
        """An HTTPS client to ``receiver``'s peer API with ``sender``'s TLS key and certificate."""
        tls, target = self.keys[sender].tls, self.keys[receiver]
        return self.client(tls.key, tls.certificate, self.setups[receiver].peer_port, target)

    def api_client(self, authority: str, node: str = "NO") -> HTTPSClient:
        """An HTTPS client to ``node``'s national API with ``authority``'s TLS certificate."""
        creds = self.setups[node].authorities[authority]
        key = load_pem_private_key(creds.key_path.read_bytes())
        cert = load_pem_certificate(creds.certificate_path.read_bytes())
        return self.client(key, cert, self.setups[node].api_port, self.keys[node])

    def client(self, key: Any, cert: Any, port: int, target: NodeKeys) -> HTTPSClient:
        client = raw_client(key, cert, port, target.ca.certificate, target.tls.certificate)
        self.clients.append(client)
        return client

    def envelope(
        self,
        payloads: list[Payload],
        *,
        signed_by: str = "NO",
        sender: str = "NO",
        created: datetime | None = None,
    ) -> bytes:
        """An envelope to PT, signed with ``signed_by``'s node signing key."""
        signing = self.keys[signed_by].signing
        root = build_envelope(
            sender, "PT", f"env-{uuid.uuid4()}", created or datetime.now(UTC), payloads
        )
        return Signer(signing.key, signing.certificate).sign(root)

    def request(self, exchange_id: str, sender: str = "NO-HELSEDIR") -> tuple[str, bytes]:
        """A Request to PT-OMD naming ``sender``, signed by NO-HELSEDIR's national system."""
        doc = doctor_request(exchange_id, sender, "PT-OMD", datetime.now(UTC), free_text=False)
        return doc.header.document_id, self.helsedir.sign(to_xml(doc))


@contextlib.asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Bed]:
    setups = setup_nodes(tmp_path, AUTHORITIES)
    keys = {c: load_node_keys(s.node_dir) for c, s in setups.items()}
    skew = [timedelta(0)]

    class SkewedClock(ReactorClock):
        """The reactor's clock with the wall clock moved by ``skew``."""

        def now(self) -> datetime:
            return super().now() + skew[0]

    service, parts = start_in_process(
        setups["NO"], reactor, clock=SkewedClock(reactor), catalogues=load_catalogues()
    )
    nodes = {"NO": RunningNode(setups["NO"], service, parts), "PT": start_node(setups["PT"])}
    await settled(nodes.values())
    helsedir = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
    bed = Bed(setups, nodes, keys, helsedir, [], skew)
    try:
        yield bed
    finally:
        await bed.helsedir.close()
        for client in bed.clients:
            await client.close()
        for node in nodes.values():
            await node.stop()


def refusal(answer: HTTPAnswer) -> tuple[int, str, str | None]:
    """(HTTP status, error code, message id) of an Error answer."""
    error = read_error(parse_xml(answer.body))
    return answer.status, error.code, error.message_id


async def unchanged(node: RunningNode, before: dict[str, int]) -> None:
    assert await row_counts(node.parts.db) == before


PEER_PATH = "/peer/v1/envelopes"
API_PATH = "/api/v1/documents"


def url(setup: NodeSetup, path: str) -> str:
    port = setup.peer_port if path.startswith("/peer") else setup.api_port
    return f"https://127.0.0.1:{port}{path}"


# --- TLS identity ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_client_certificates_from_an_unknown_ca_fail_the_handshake(tmp_path) -> None:
    async with running(tmp_path) as bed:
        before = {c: await row_counts(n.parts.db) for c, n in bed.nodes.items()}
        now = datetime.now(UTC)
        stranger_ca = pki.make_ca("NO", now=now)  # claims to be NO, from another CA
        node_tls = pki.issue_node_tls(stranger_ca, "NO", now=now)
        national = pki.issue_national_system(stranger_ca, "NO-HELSEDIR", now=now)
        message_id, document = bed.request("IMI-NO-SEC-1")
        envelope = bed.envelope([Payload(message_id, document)])

        peer = bed.client(
            node_tls.key, node_tls.certificate, bed.setups["PT"].peer_port, bed.keys["PT"]
        )
        with pytest.raises(PeerUnreachable):
            await peer.post(url(bed.setups["PT"], PEER_PATH), envelope)
        api = bed.client(
            national.key, national.certificate, bed.setups["NO"].api_port, bed.keys["NO"]
        )
        with pytest.raises(PeerUnreachable):
            await api.post(url(bed.setups["NO"], API_PATH), document)

        for country, node in bed.nodes.items():
            await unchanged(node, before[country])


@pytest_twisted.ensureDeferred
async def test_a_certificate_of_the_right_ca_that_is_not_the_pinned_one_is_refused(
    tmp_path,
) -> None:
    async with running(tmp_path) as bed:
        before = {c: await row_counts(n.parts.db) for c, n in bed.nodes.items()}
        now = datetime.now(UTC)
        no_ca = bed.keys["NO"].ca.issued
        impostor = pki.issue_node_tls(no_ca, "NO", now=now)  # NO's CA, but not NO's pinned cert
        message_id, document = bed.request("IMI-NO-SEC-2")
        peer = bed.client(
            impostor.key, impostor.certificate, bed.setups["PT"].peer_port, bed.keys["PT"]
        )
        answer = await peer.post(
            url(bed.setups["PT"], PEER_PATH), bed.envelope([Payload(message_id, document)])
        )
        assert refusal(answer) == (401, "PEER_UNKNOWN", None)

        # A national-system certificate issued by the node CA but never registered.
        unregistered = pki.issue_national_system(bed.keys["NO"].ca.issued, "NO-HELSEDIR", now=now)
        api = bed.client(
            unregistered.key, unregistered.certificate, bed.setups["NO"].api_port, bed.keys["NO"]
        )
        answer = await api.post(url(bed.setups["NO"], API_PATH), document)
        assert refusal(answer) == (401, "CLIENT_CERTIFICATE_UNKNOWN", None)

        for country, node in bed.nodes.items():
            await unchanged(node, before[country])


# --- envelope identity and replay ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_envelope_whose_signature_or_sender_is_another_node_than_the_tls_peer_is_refused(
    tmp_path,
) -> None:
    async with running(tmp_path) as bed:
        pt = bed.nodes["PT"]
        before = await row_counts(pt.parts.db)
        message_id, document = bed.request("IMI-NO-SEC-3")
        payloads = [Payload(message_id, document)]
        as_no = bed.peer_client("NO")
        as_ee = bed.peer_client("EE")
        crafted = [
            # EE (a known peer) signs, NO's TLS certificate connects
            (as_no, bed.envelope(payloads, signed_by="EE", sender="EE")),
            (as_no, bed.envelope(payloads, signed_by="EE", sender="NO")),
            # NO signs but names EE as the sender node
            (as_no, bed.envelope(payloads, signed_by="NO", sender="EE")),
            # NO signs, EE's TLS certificate connects
            (as_ee, bed.envelope(payloads, signed_by="NO", sender="NO")),
        ]
        for client, envelope in crafted:
            answer = await client.post(url(bed.setups["PT"], PEER_PATH), envelope)
            assert refusal(answer) == (403, "PEER_MISMATCH", None)
        await unchanged(pt, before)


@pytest_twisted.ensureDeferred
async def test_a_replayed_envelope_gets_the_original_receipt_and_creates_nothing(tmp_path) -> None:
    async with running(tmp_path) as bed:
        pt = bed.nodes["PT"]
        message_id, document = bed.request("IMI-NO-SEC-4")
        envelope = bed.envelope([Payload(message_id, document)])
        client = bed.peer_client("NO")
        first = await client.post(url(bed.setups["PT"], PEER_PATH), envelope)
        assert first.status == 200
        after_first = await row_counts(pt.parts.db)
        second = await client.post(url(bed.setups["PT"], PEER_PATH), envelope)
        assert second.status == 200
        assert second.body == first.body  # the original receipt, byte for byte

        receipt = read_receipt(
            verify(
                first.body, bed.nodes["NO"].parts.trust.envelopes("PT"), now=datetime.now(UTC)
            ).root
        )
        assert receipt.issuer_node == "PT" and receipt.recipient == "NO"
        assert [(i.message_id, i.sha256) for i in receipt.items] == [
            (message_id, sha256_hex(document))
        ]
        assert await row_counts(pt.parts.db) == after_first
        assert after_first["deliveries"] == 1 and after_first["envelopes_in"] == 1

        # The same document in a new envelope (a sender that lost the receipt) is
        # acknowledged but not stored or delivered again.
        third = await client.post(
            url(bed.setups["PT"], PEER_PATH), bed.envelope([Payload(message_id, document)])
        )
        assert third.status == 200
        counts = await row_counts(pt.parts.db)
        assert counts["deliveries"] == counts["messages"] == 1
        omd = NationalSystem(reactor, bed.setups["PT"], "PT-OMD")
        try:
            pulled = await omd.pull()
            assert [d.document for d in pulled.deliveries] == [document]
        finally:
            await omd.close()


# --- authority binding ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_document_whose_sender_is_not_bound_to_its_signing_certificate_is_refused(
    tmp_path,
) -> None:
    async with running(tmp_path) as bed:
        before = {c: await row_counts(n.parts.db) for c, n in bed.nodes.items()}
        # NO-HELSEDIR's system signs a document naming NO-UDIR (also registered at NO).
        message_id, document = bed.request("IMI-NO-SEC-5", sender="NO-UDIR")
        answer = await bed.helsedir.submit_raw(document)
        assert refusal(answer) == (403, "SENDER_NOT_BOUND", None)

        # The same document inside an envelope from NO (as if NO had let it through).
        envelope = bed.envelope([Payload(message_id, document)])
        answer = await bed.peer_client("NO").post(url(bed.setups["PT"], PEER_PATH), envelope)
        assert refusal(answer) == (403, "SENDER_NOT_BOUND", message_id)

        for country, node in bed.nodes.items():
            await unchanged(node, before[country])


@pytest_twisted.ensureDeferred
async def test_a_document_submitted_over_another_authoritys_certificate_is_refused(
    tmp_path,
) -> None:
    async with running(tmp_path) as bed:
        no = bed.nodes["NO"]
        before = await row_counts(no.parts.db)
        _, document = bed.request("IMI-NO-SEC-6")  # signed by and naming NO-HELSEDIR
        answer = await bed.api_client("NO-UDIR").post(url(bed.setups["NO"], API_PATH), document)
        assert refusal(answer) == (403, "SENDER_NOT_CALLER", None)
        await unchanged(no, before)


# --- replay window ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_envelopes_and_documents_created_outside_the_replay_window_are_refused(
    tmp_path,
) -> None:
    async with running(tmp_path) as bed:
        before = {c: await row_counts(n.parts.db) for c, n in bed.nodes.items()}
        window = bed.nodes["PT"].parts.config.limits.replay_window_seconds
        stale = datetime.now(UTC) - timedelta(seconds=window + 60)
        message_id, document = bed.request("IMI-NO-SEC-7")
        envelope = bed.envelope([Payload(message_id, document)], created=stale)
        answer = await bed.peer_client("NO").post(url(bed.setups["PT"], PEER_PATH), envelope)
        assert refusal(answer) == (400, "CREATION_TIME_OUT_OF_WINDOW", None)

        old = doctor_request("IMI-NO-SEC-8", "NO-HELSEDIR", "PT-OMD", stale, free_text=False)
        answer = await bed.helsedir.submit_raw(bed.helsedir.sign(to_xml(old)))
        assert refusal(answer) == (400, "CREATION_TIME_OUT_OF_WINDOW", None)

        for country, node in bed.nodes.items():
            await unchanged(node, before[country])


@pytest_twisted.ensureDeferred
async def test_a_resubmission_after_the_window_gets_the_original_receipt(tmp_path) -> None:
    async with running(tmp_path) as bed:
        _, document = bed.request("IMI-NO-SEC-9")
        _, never_sent = bed.request("IMI-NO-SEC-10")
        first = await submit(bed.helsedir, document)
        window = bed.nodes["NO"].parts.config.limits.replay_window_seconds
        bed.skew[0] = timedelta(seconds=window + 60)  # the retry comes long after
        before = await row_counts(bed.nodes["NO"].parts.db)
        assert await submit(bed.helsedir, document) == first  # byte for byte
        # A document that old which was never accepted is refused.
        answer = await bed.helsedir.submit_raw(never_sent)
        assert refusal(answer) == (400, "CREATION_TIME_OUT_OF_WINDOW", None)
        after = await row_counts(bed.nodes["NO"].parts.db)
        assert after["messages"] == before["messages"] == 1
        assert after["outbox"] == before["outbox"] == 1
