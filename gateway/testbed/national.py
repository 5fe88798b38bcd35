"""A simulated national IT system of one authority, talking to its node's API.

A :class:`NationalSystem` is what an authority's IT system does: it signs
documents with its own key (issued by its node), submits them over HTTPS
with the same certificate as a TLS client certificate, verifies the node's
signed receipts, pulls deliveries with a cursor and reads tracking records.
It reaches the node at the port the node bound (``NodeSetup.api_port``),
read at each request, so it follows a node restarted on another port.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from twisted.internet.defer import inlineCallbacks

from gateway.core.certs import TrustStore, load_pem_certificate, load_pem_private_key
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import Delivery, Receipt, read_delivery, read_error, read_receipt
from gateway.core.errors import GatewayError
from gateway.core.ns import DOC_NS
from gateway.core.signing import Signer, verify
from gateway.core.xmlparse import parse_xml
from gateway.keystore import load_node_keys
from gateway.testbed.nodes import LOOPBACK, NodeSetup
from gateway.transport.client import HTTPSClient
from gateway.transport.tls import PinnedPeersPolicy


class NationalSystemError(GatewayError):
    """The node refused a national system's request (carries the node's code)."""

    code = "NATIONAL_SYSTEM_REFUSED"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.remote_code = code


@dataclass(frozen=True)
class Pulled:
    cursor: int
    deliveries: list[Delivery]
    raw: list[bytes]


class NationalSystem:
    """A simulated national IT system of one authority, talking to its node's API."""

    def __init__(
        self, reactor: Any, node: NodeSetup, authority_id: str, *, max_connections: int = 4
    ) -> None:
        creds = node.authorities[authority_id]
        keys = load_node_keys(node.node_dir)
        self.authority_id = authority_id
        key = load_pem_private_key(creds.key_path.read_bytes())
        cert = load_pem_certificate(creds.certificate_path.read_bytes())
        self.signer = Signer(key, cert)
        self._node = node
        self._node_trust = TrustStore(pinned=(keys.signing.certificate,))
        self._pins = (keys.ca.certificate, keys.tls.certificate)
        self._pinned_port = node.api_port
        self._policy = PinnedPeersPolicy(key, cert, {(LOOPBACK, node.api_port): self._pins})
        self.client = HTTPSClient(
            reactor, self._policy, timeout_seconds=60, max_connections_per_host=max_connections
        )
        #: The last tracking record read (the whole XML tree, renderings included).
        self.last_tracking: etree._Element | None = None

    def pin_node_certificates(self, signing: tuple[Any, ...], tls: tuple[Any, ...]) -> None:
        """Accept these node signing and TLS certificates (old and new during a key rotation)."""
        self._node_trust = TrustStore(pinned=signing)
        self._pins = (self._pins[0], tls)
        self._policy.set_peers({(LOOPBACK, self._pinned_port): self._pins})

    @property
    def node_trust(self) -> TrustStore:
        """The node's signing certificate, pinned (receipts and deliveries are signed with it)."""
        return self._node_trust

    def url(self, path: str) -> str:
        """The URL of ``path`` on the node's API where it listens now (the pin follows it)."""
        port = self._node.api_port
        if port != self._pinned_port:
            self._policy.set_peers({(LOOPBACK, port): self._pins})
            self._pinned_port = port
        return f"https://{LOOPBACK}:{port}{path}"

    def sign(self, root: etree._Element) -> bytes:
        return self.signer.sign(root)

    def _raise_for(self, answer: Any) -> None:
        try:
            error = read_error(parse_xml(answer.body))
            raise NationalSystemError(answer.status, error.code, error.message)
        except GatewayError as exc:
            if isinstance(exc, NationalSystemError):
                raise
            raise NationalSystemError(
                answer.status, f"HTTP_{answer.status}", "no error document"
            ) from None

    def check_receipt(self, body: bytes, signed: bytes) -> Receipt:
        verified = verify(body, self._node_trust, now=datetime.now(UTC))
        receipt = read_receipt(verified.root)
        digest = sha256_hex(signed)
        if [i.sha256 for i in receipt.items] != [digest]:
            raise NationalSystemError(200, "RECEIPT_MISMATCH", "the receipt names other bytes")
        return receipt

    @inlineCallbacks
    def submit(self, signed: bytes) -> Any:
        """POST a signed document; returns the verified Receipt."""
        answer = yield self.client.post(self.url("/api/v1/documents"), signed)
        if answer.status != 200:
            self._raise_for(answer)
        return self.check_receipt(answer.body, signed)

    @inlineCallbacks
    def submit_raw(self, body: bytes) -> Any:
        """POST any bytes; returns the HTTPAnswer (for tests of refusals)."""
        answer = yield self.client.post(self.url("/api/v1/documents"), body)
        return answer

    @inlineCallbacks
    def pull(self, after: int = 0, wait: int = 0, limit: int = 100) -> Any:
        """Fetch deliveries after ``after`` (acknowledging it); each Delivery verified."""
        answer = yield self.client.get(
            self.url(f"/api/v1/deliveries?after={after}&wait={wait}&limit={limit}")
        )
        if answer.status != 200:
            self._raise_for(answer)
        root = parse_xml(answer.body)
        raw = [base64.b64decode(item.text or "") for item in root.iter(f"{{{DOC_NS}}}Item")]
        now = datetime.now(UTC)
        deliveries = [read_delivery(verify(r, self._node_trust, now=now).root) for r in raw]
        return Pulled(int(root.get("cursor", "0")), deliveries, raw)

    @inlineCallbacks
    def tracking(self, exchange_id: str) -> Any:
        """The tracking record as (state, [(stage, at, node, message_id)])."""
        answer = yield self.client.get(self.url(f"/api/v1/exchanges/{exchange_id}"))
        if answer.status != 200:
            self._raise_for(answer)
        root = parse_xml(answer.body)
        stages = [
            (e.get("code"), e.get("at"), e.get("node"), e.get("messageId"))
            for e in root.iter(f"{{{DOC_NS}}}Stage")
        ]
        self.last_tracking = root
        return root.get("state"), stages

    def close(self) -> Any:
        return self.client.close()
