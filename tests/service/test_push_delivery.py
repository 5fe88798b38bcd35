"""Push delivery: the node POSTs each signed Delivery to the authority's callback, retrying."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from gateway.core.certs import TrustStore, load_pem_certificate, load_pem_private_key
from gateway.core.documents import to_xml
from gateway.core.envelopes import read_delivery
from gateway.core.signing import verify
from gateway.keystore import load_node_keys
from gateway.testbed import doctor_request, setup_nodes
from gateway.transport.tls import server_options
from tests.nodes import start_node
from tests.waiting import until


class Callback(Resource):
    """The national system's callback: refuses the first push (503), then takes them."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.bodies: list[bytes] = []
        self.arrived: defer.Deferred[None] = defer.Deferred()

    def render_POST(self, request):
        self.calls += 1
        if self.calls == 1:
            request.setResponseCode(503)
            return b"busy"
        self.bodies.append(request.content.read())
        if not self.arrived.called:
            self.arrived.callback(None)
        return b""


@pytest_twisted.ensureDeferred
async def test_push_delivery_retries_and_delivers_a_node_signed_delivery(tmp_path) -> None:
    setups = setup_nodes(
        tmp_path,
        {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]},
        extra_config={"PT": "[outbound]\ninitial_backoff_seconds = 0.05"},
    )
    creds = setups["PT"].authorities["PT-OMD"]
    pt_keys = load_node_keys(setups["PT"].node_dir)
    callback = Callback()
    # The national system serves its callback with its own certificate and accepts only its node.
    tls = server_options(
        load_pem_private_key(creds.key_path.read_bytes()),
        load_pem_certificate(creds.certificate_path.read_bytes()),
        [pt_keys.ca.certificate],
    )
    port = reactor.listenSSL(0, Site(callback), tls, interface="127.0.0.1")
    callback_port = port.getHost().port
    pt_config = setups["PT"].node_dir / "gateway.toml"
    pt_config.write_text(
        pt_config.read_text().replace(
            'id = "PT-OMD"\n',
            f'id = "PT-OMD"\npush_url = "https://127.0.0.1:{callback_port}/imi/deliveries"\n',
        )
    )
    nodes = {c: start_node(s) for c, s in setups.items()}
    from gateway.testbed import NationalSystem

    no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
    try:
        request = doctor_request("IMI-NO-PUSH-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        signed = no.sign(to_xml(request))
        await no.submit(signed)
        await callback.arrived
        assert callback.calls == 2  # the 503 was retried
        verified = verify(
            callback.bodies[0],
            TrustStore(pinned=(pt_keys.signing.certificate,)),
            now=datetime.now(UTC),
        )
        delivery = read_delivery(verified.root)
        assert delivery.document == signed and delivery.recipient == "PT-OMD"

        # The pusher records the delivery once the callback's answer is in: poll (bounded).
        async def delivered() -> bool:
            _, stages = await no.tracking(request.header.exchange_id)
            return ("delivered", "PT") in [(s[0], s[2]) for s in stages]

        assert await until(delivered)
    finally:
        await no.close()
        for node in nodes.values():
            await node.stop()
        await port.stopListening()
