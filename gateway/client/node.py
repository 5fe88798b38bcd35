"""``NodeClient``: sign, submit, pull and acknowledge, verify, track — one authority's client.

Example (docs/client.md)::

    client = NodeClient.from_files(
        "https://gateway.example.no:8443",
        key="NO-HELSEDIR.key", cert="NO-HELSEDIR.pem", node_ca="node-ca.pem",
    )
    signed = client.sign(Path("request.xml").read_bytes())   # dated now, then signed
    receipt = client.submit(signed)                         # the node's verified receipt
    pulled = client.pull(after=cursor, wait=25)             # verified Deliveries
    ...store them...
    client.acknowledge(pulled.cursor)
"""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from cryptography import x509
from lxml import etree

from gateway.client.documents import with_created
from gateway.client.errors import NodeRefused
from gateway.client.http import Answer, Connection, tls_context
from gateway.client.verifying import NodeVerifier, Pulled, Tracking, read_tracking
from gateway.core import certs
from gateway.core.admission import country_of
from gateway.core.certs import PrivateKey
from gateway.core.envelopes import Receipt, read_error
from gateway.core.errors import GatewayError, InvalidInput
from gateway.core.signing import Signer
from gateway.core.xmlparse import parse_xml


class NodeClient:
    """The national system of one authority, talking to its node's API.

    ``key``/``certificate``: the national system's, bound to its authority
    (they sign documents and authenticate the TLS connection).
    ``node_ca``: the node's CA certificate; receipts and deliveries must be
    signed by the node ``node_id`` (by default the country of the authority).
    ``tls``: the TLS context, from :func:`gateway.client.http.tls_context`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: PrivateKey,
        certificate: x509.Certificate,
        node_ca: x509.Certificate,
        tls: ssl.SSLContext,
        node_id: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        authority = certs.authority_id_of(certificate)
        if authority is None:
            raise InvalidInput("the certificate is not bound to an authority")
        self.authority_id = authority
        self.node_id = node_id or country_of(authority)
        self.signer = Signer(key, certificate)
        self.verifier = NodeVerifier(node_ca, self.node_id)
        self._http = Connection(base_url, tls, timeout)
        self._timeout = timeout

    @classmethod
    def from_files(
        cls,
        base_url: str,
        *,
        key: str | Path,
        cert: str | Path,
        node_ca: str | Path,
        password: bytes | None = None,
        node_id: str | None = None,
        timeout: float = 60.0,
    ) -> NodeClient:
        """A client from the three handed-over PEM files (key, certificate, node CA)."""
        return cls(
            base_url,
            key=certs.load_pem_private_key(Path(key).read_bytes(), password),
            certificate=certs.load_pem_certificate(Path(cert).read_bytes()),
            node_ca=certs.load_pem_certificate(Path(node_ca).read_bytes()),
            tls=tls_context(cert, key, node_ca, password),
            node_id=node_id,
            timeout=timeout,
        )

    # --- documents ---------------------------------------------------------------------------

    def sign(self, document: bytes | etree._Element, *, created: datetime | None = None) -> bytes:
        """The document dated ``created`` (default: now) and signed: the bytes to submit.

        The node refuses a ``Created`` outside its replay window (300 s by
        default) of its clock, so sign just before submitting.
        """
        root = parse_xml(document) if isinstance(document, bytes) else document
        return self.signer.sign(with_created(root, created))

    def submit(self, signed: bytes) -> Receipt:
        """POST /api/v1/documents: the node's receipt, its signature and digest verified.

        Submitting the same bytes again is safe: the node answers the same receipt.
        """
        answer = self._http.request("POST", "/api/v1/documents", signed)
        return self.verifier.receipt(self._ok(answer), signed)

    # --- deliveries --------------------------------------------------------------------------

    def pull(self, after: int = 0, *, wait: int = 0, limit: int = 100) -> Pulled:
        """GET /api/v1/deliveries: acknowledges everything up to ``after``, returns what follows.

        Store the items, then pull (or :meth:`acknowledge`) with ``pulled.cursor``.
        """
        path = f"/api/v1/deliveries?after={int(after)}&wait={int(wait)}&limit={int(limit)}"
        answer = self._http.request("GET", path, timeout=self._timeout + wait)
        return self.verifier.deliveries(self._ok(answer))

    def acknowledge(self, cursor: int) -> None:
        """Acknowledge every delivery up to ``cursor`` (without waiting for more)."""
        self.pull(after=cursor, wait=0, limit=1)

    # --- tracking ----------------------------------------------------------------------------

    def track(self, exchange_id: str) -> Tracking:
        """GET /api/v1/exchanges/{id}: the exchange's state and both nodes' stages."""
        answer = self._http.request("GET", f"/api/v1/exchanges/{quote(exchange_id, safe=':')}")
        return read_tracking(self._ok(answer))

    # --- plumbing ----------------------------------------------------------------------------

    def _ok(self, answer: Answer) -> bytes:
        if answer.status == 200:
            return answer.body
        try:
            error = read_error(parse_xml(answer.body))
        except GatewayError:
            raise NodeRefused(answer.status, f"HTTP_{answer.status}", "no Error document") from None
        raise NodeRefused(answer.status, error.code, error.message)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
