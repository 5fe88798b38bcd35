"""Checking what a node answers: receipts, deliveries, the original documents, tracking.

Offline and sans-IO: bytes in, values out. A :class:`NodeVerifier` trusts
exactly the node's CA certificate (``node-ca.pem``, handed over with the
national system's key) and accepts a signature only by a *node* certificate
of that CA for the expected node: the CA also issued every national
system's certificate, and none of those may pass for the node.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from lxml import etree

from gateway.client.errors import SignerNotNode
from gateway.core.admission import SenderNotBound
from gateway.core.certs import TrustStore
from gateway.core.documents import ExchangeDocument, read_exchange_document
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import (
    Delivery,
    Receipt,
    ReceiptMismatch,
    read_delivery,
    read_receipt,
)
from gateway.core.errors import InvalidInput
from gateway.core.ns import DOC_NS, DS_NS
from gateway.core.signing import Verified, verify
from gateway.core.signing.errors import SignatureKeyInfoRefused
from gateway.core.xmlparse import parse_xml

_KEYINFO_CERTIFICATE = (
    f"{{{DS_NS}}}Signature/{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
)


@dataclass(frozen=True)
class PulledItem:
    """One delivery of a pull: its position, the delivered document's id, the verified Delivery.

    data: the node-signed Delivery exactly as received (keep it as evidence).
    """

    seq: int
    message_id: str
    delivery: Delivery
    data: bytes


@dataclass(frozen=True)
class Pulled:
    """One answer of ``GET /api/v1/deliveries``: the cursor to acknowledge, and the items."""

    cursor: int
    items: tuple[PulledItem, ...]


@dataclass(frozen=True)
class Original:
    """The sender's signed document inside a delivery, its signature verified.

    certificate: the sender's signing certificate. trusted: True when it was
    checked against the trust given (the peer node's CA, or pinned
    certificates), False when only the certificate in the document's own
    KeyInfo was used (the node that delivered it vouches for it: it verified
    the document against the sender's certificate, pinned from the peer's
    signed directory, before delivering it).
    """

    document: ExchangeDocument
    certificate: x509.Certificate
    sha256: str
    trusted: bool

    @property
    def sender(self) -> str:
        return self.document.header.sender


@dataclass(frozen=True)
class TrackingStage:
    code: str
    at: str
    node: str
    message_id: str | None
    detail: str | None


@dataclass(frozen=True)
class Tracking:
    """A tracking record (``GET /api/v1/exchanges/{id}``); ``root`` is the whole XML tree."""

    exchange_id: str
    state: str
    requester: str
    responder: str
    peer: str | None
    stages: tuple[TrackingStage, ...]
    root: etree._Element


class NodeVerifier:
    """Verifies what node ``node_id`` signs, against its CA certificate ``node_ca``."""

    def __init__(self, node_ca: x509.Certificate, node_id: str) -> None:
        self.node_id = node_id
        self._trust = TrustStore(cas=(node_ca,))

    def _node_signed(self, data: bytes, now: datetime | None) -> Verified:
        verified = verify(data, self._trust, now=now or datetime.now(UTC))
        if verified.node_id != self.node_id:
            signer = verified.node_id or verified.authority_id or "an unknown party"
            raise SignerNotNode(f"signed by {signer}, not by node {self.node_id}")
        return verified

    def receipt(self, data: bytes, sent: bytes, *, now: datetime | None = None) -> Receipt:
        """The node's signed receipt ``data`` for the document ``sent``, checked.

        Its signature is the node's, and it acknowledges exactly one document
        whose SHA-256 is that of ``sent`` (RECEIPT_MISMATCH otherwise).
        """
        receipt = read_receipt(self._node_signed(data, now).root)
        if [item.sha256 for item in receipt.items] != [sha256_hex(sent)]:
            raise ReceiptMismatch("the receipt does not acknowledge the bytes that were sent")
        return receipt

    def delivery(self, data: bytes, *, now: datetime | None = None) -> Delivery:
        """A node-signed Delivery, verified; its ``document`` holds the original signed bytes."""
        return read_delivery(self._node_signed(data, now).root)

    def deliveries(self, data: bytes, *, now: datetime | None = None) -> Pulled:
        """A ``Deliveries`` answer: each item's base64 decoded to a Delivery and verified."""
        root = parse_xml(data)
        if root.tag != f"{{{DOC_NS}}}Deliveries":
            raise InvalidInput(f"expected a Deliveries document, got {etree.QName(root).localname}")
        items = []
        for element in root.iterchildren(f"{{{DOC_NS}}}Item"):
            raw = base64.b64decode(element.text or "", validate=True)
            items.append(
                PulledItem(
                    seq=int(element.get("seq", "0")),
                    message_id=element.get("messageId", ""),
                    delivery=self.delivery(raw, now=now),
                    data=raw,
                )
            )
        return Pulled(int(root.get("cursor", "0")), tuple(items))


def verify_original(
    delivered: Delivery | bytes,
    trust: TrustStore | None = None,
    *,
    now: datetime | None = None,
) -> Original:
    """Verify the sender's own signature of a delivered document (or of its bytes).

    With ``trust`` (for example ``TrustStore(cas=(peer_ca,))`` with the peer
    node's CA certificate, which its operator can give you), the sender's
    certificate must be trusted by it. Without, the certificate in the
    document's KeyInfo is used as it is: that proves the bytes are exactly
    what the holder of that certificate signed, and that it is bound to the
    document's sender; the node's signature over the Delivery says the node
    checked that certificate. Either way the certificate must name the
    document's sender (SENDER_NOT_BOUND otherwise, as at a node).
    """
    data = delivered.document if isinstance(delivered, Delivery) else delivered
    trusted = trust is not None
    if trust is None:
        element = parse_xml(data).find(_KEYINFO_CERTIFICATE)
        if element is None or not element.text:
            raise SignatureKeyInfoRefused("the document carries no signing certificate")
        der = base64.b64decode("".join(element.text.split()))
        trust = TrustStore(pinned=(x509.load_der_x509_certificate(der),))
    verified = verify(data, trust, now=now or datetime.now(UTC))
    document = read_exchange_document(verified.root)
    if verified.authority_id != document.header.sender:
        raise SenderNotBound()
    return Original(document, verified.certificate, verified.sha256, trusted)


def read_tracking(data: bytes) -> Tracking:
    """A tracking record's values (it is not signed: it is read over the authenticated TLS)."""
    root = parse_xml(data)
    if root.tag != f"{{{DOC_NS}}}Tracking":
        raise InvalidInput(f"expected a Tracking document, got {etree.QName(root).localname}")
    stages = tuple(
        TrackingStage(
            code=e.get("code", ""),
            at=e.get("at", ""),
            node=e.get("node", ""),
            message_id=e.get("messageId"),
            detail=e.get("detail"),
        )
        for e in root.iterchildren(f"{{{DOC_NS}}}Stage")
    )
    return Tracking(
        exchange_id=root.get("exchangeId", ""),
        state=root.get("state", ""),
        requester=root.get("requester", ""),
        responder=root.get("responder", ""),
        peer=root.get("peer"),
        stages=stages,
        root=root,
    )
