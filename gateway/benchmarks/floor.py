"""The XML+crypto floor: what the documents of a benchmark cost in lxml and cryptography alone.

For the same signed documents the exchange benchmark sends, this module
times, directly with lxml and ``cryptography`` (no gateway pipeline, no
HTTP, no database, no threads), the XML and signature operations the two
nodes must do for each document, and adds them up with the counts below.
The benchmark divides the nodes' measured CPU time per document by this
floor: the ratio says how much the rest (TLS, HTTP, Twisted, SQLite,
bookkeeping, and any XML or crypto work beyond the minimum) costs.

Operations one exchange document needs on its way from the sending node to
the receiving national system (counted from gateway/service/pipeline.py,
outbound.py and deliveries.py), with ``B`` documents per envelope as
measured in the run:

=========================================  ======  ====================================
operation                                   count   where
=========================================  ======  ====================================
parse + validate + verify the document        2     sending node (national signature),
                                                    receiving node (inner signature)
sign a receipt of one item                    1     sending node, to its national system
sign a delivery carrying the document         1     receiving node, to its national system
sign an envelope of B documents              1/B    sending node
parse + validate + verify that envelope      1/B    receiving node
base64-decode one payload                     1     receiving node
sign a receipt of B items                    1/B    receiving node, for the envelope
parse + validate + verify that receipt       1/B    sending node
=========================================  ======  ====================================

"verify" is: check the KeyInfo certificate is the pinned one (bytes
compare), exclusive C14N of SignedInfo, the signature value with the
certificate's key, the enveloped transform, exclusive C14N of the document,
SHA-256 and compare. "sign" is: exclusive C14N and SHA-256 of the document,
the ds:Signature element, C14N of SignedInfo, the signature value, and
serialization of the signed document. Building the unsigned receipt,
delivery and envelope trees is not counted (the floor would only grow), nor
is anything the gateway does beyond the minimum (its second parse of the
signed canonical form, validating its own output, certificate validity and
revocation checks).

Each operation is timed ``repeat`` times; the median is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_SIG = f"{{{DS}}}Signature"
_CERT = f"{{{DS}}}X509Certificate"
_VALUE = f"{{{DS}}}SignatureValue"
_DIGEST = f"{{{DS}}}DigestValue"

#: A parser with the hardened parser's settings: no DTD, no entities, no network.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=False,
)


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, _PARSER)


def verify(root: etree._Element, pinned_der: bytes, public_key: Any) -> None:
    """Verify the enveloped signature of ``root`` (restoring the tree afterwards)."""
    signature = root[-1]
    assert signature.tag == _SIG
    signed_info = signature[0]
    cert_text = next(signature.iter(_CERT)).text or ""
    if base64.b64decode(cert_text) != pinned_der:
        raise ValueError("not the pinned certificate")
    value = base64.b64decode(next(signature.iter(_VALUE)).text or "")
    data = _c14n(signed_info)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        size = (public_key.curve.key_size + 7) // 8
        der = encode_dss_signature(
            int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
        )
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(value, data, padding.PKCS1v15(), hashes.SHA256())
    digest = base64.b64decode(next(signature.iter(_DIGEST)).text or "")
    root.remove(signature)
    try:
        if not hmac.compare_digest(hashlib.sha256(_c14n(root)).digest(), digest):
            raise ValueError("digest mismatch")
    finally:
        root.append(signature)


def sign(root: etree._Element, key: Any, cert_text: str) -> bytes:
    """Sign ``root`` enveloped and serialize it (the tree is restored afterwards)."""
    digest = hashlib.sha256(_c14n(root)).digest()
    method = RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ECDSA_SHA256
    signature = etree.Element(_SIG, nsmap={"ds": DS})
    signed_info = etree.SubElement(signature, f"{{{DS}}}SignedInfo")
    etree.SubElement(signed_info, f"{{{DS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{{{DS}}}SignatureMethod", Algorithm=method)
    reference = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI="")
    transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=SHA256_URI)
    etree.SubElement(reference, _DIGEST).text = base64.b64encode(digest).decode()
    value_element = etree.SubElement(signature, _VALUE)
    key_info = etree.SubElement(signature, f"{{{DS}}}KeyInfo")
    x509_data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
    etree.SubElement(x509_data, _CERT).text = cert_text
    root.append(signature)
    try:
        data = _c14n(signed_info)
        if isinstance(key, rsa.RSAPrivateKey):
            value = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            size = (key.curve.key_size + 7) // 8
            value = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        value_element.text = base64.b64encode(value).decode()
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root)
    finally:
        root.remove(signature)


def _median_us(func: Callable[[], object], repeat: int) -> float:
    func()  # warm caches
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


@dataclass(frozen=True)
class Operation:
    name: str
    us: float
    per_document: float

    @property
    def us_per_document(self) -> float:
        return self.us * self.per_document


@dataclass(frozen=True)
class Floor:
    """Per-operation medians and counts; ``us_per_document`` is the mean over the documents."""

    batch_size: int
    documents: int
    operations: tuple[tuple[str, tuple[Operation, ...]], ...]  # per document kind
    us_per_document: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "us_per_document": self.us_per_document,
            "batch_size": self.batch_size,
            "by_document": {
                kind: {
                    "us_per_document": sum(op.us_per_document for op in ops),
                    "operations": {
                        op.name: {"us": round(op.us, 2), "per_document": round(op.per_document, 4)}
                        for op in ops
                    },
                }
                for kind, ops in self.operations
            },
        }


def _receive(schema: etree.XMLSchema, blob: bytes, der: bytes, public: Any) -> None:
    """What a node does with signed bytes it receives: parse, validate, verify."""
    tree = parse(blob)
    if not schema.validate(tree):
        raise ValueError("schema invalid")
    verify(tree, der, public)


def _decode_all(texts: Sequence[str]) -> None:
    for text in texts:
        base64.b64decode(text)


@dataclass(frozen=True)
class _NodeSigning:
    key: Any
    der: bytes
    public: Any
    text: str
    signer: Any


def _measure_document(
    data: bytes, node: _NodeSigning, schema: etree.XMLSchema, batch: int, repeat: int
) -> tuple[str, tuple[Operation, ...]]:
    from gateway.core.docxml import sha256_hex
    from gateway.core.envelopes import (
        Payload,
        ReceiptItem,
        ReceiptStatus,
        build_delivery,
        build_envelope,
        build_receipt,
    )

    # Preparation, not timed: the documents the nodes make around this one.
    root = parse(data)
    kind = etree.QName(root).localname
    national_der = base64.b64decode(next(root.iter(_CERT)).text or "")
    national_public = x509.load_der_x509_certificate(national_der).public_key()
    now = datetime.now(UTC)
    message_id = f"floor-{uuid.uuid4()}"
    receipt_one = build_receipt(
        f"rcpt-{uuid.uuid4()}",
        "NO",
        "NO-X",
        now,
        [ReceiptItem(message_id, sha256_hex(data), ReceiptStatus.ACCEPTED)],
    )
    delivery = build_delivery(f"dlv-{uuid.uuid4()}", "PT", "PT-X", now, "EXCHANGE-1", kind, data)
    payloads = [Payload(f"{message_id}-{i}", data) for i in range(batch)]
    envelope = build_envelope("NO", "PT", f"env-{uuid.uuid4()}", now, payloads)
    envelope_signed: bytes = node.signer.sign(envelope)
    receipt_batch = build_receipt(
        f"rcpt-{uuid.uuid4()}",
        "PT",
        "NO",
        now,
        [ReceiptItem(p.message_id, p.sha256, ReceiptStatus.ACCEPTED) for p in payloads],
        "env-1",
    )
    receipt_batch_signed: bytes = node.signer.sign(receipt_batch)
    payload_texts = [e.text or "" for e in parse(envelope_signed).iter("{*}Payload")]

    def time_sign(tree: etree._Element) -> float:
        return _median_us(lambda: sign(tree, node.key, node.text), repeat)

    def time_receive(blob: bytes, der: bytes, public: Any) -> float:
        return _median_us(lambda: _receive(schema, blob, der, public), repeat)

    ops = (
        Operation(
            "parse+validate+verify document",
            time_receive(data, national_der, national_public),
            2,
        ),
        Operation("sign receipt (1 item)", time_sign(receipt_one), 1),
        Operation("sign delivery", time_sign(delivery), 1),
        Operation(f"sign envelope ({batch} documents)", time_sign(envelope), 1 / batch),
        Operation(
            f"parse+validate+verify envelope ({batch})",
            time_receive(envelope_signed, node.der, node.public),
            1 / batch,
        ),
        Operation(
            f"base64-decode payloads ({batch})",
            _median_us(lambda: _decode_all(payload_texts), repeat),
            1 / batch,
        ),
        Operation(f"sign receipt ({batch} items)", time_sign(receipt_batch), 1 / batch),
        Operation(
            f"parse+validate+verify receipt ({batch})",
            time_receive(receipt_batch_signed, node.der, node.public),
            1 / batch,
        ),
    )
    return kind, ops


def measure_floor(
    documents: Sequence[bytes],
    *,
    node_key: Any,
    node_certificate: x509.Certificate,
    batch_size: float,
    repeat: int = 300,
) -> Floor:
    """The floor per document for ``documents`` (signed exchange documents).

    ``node_key``/``node_certificate`` are a node's signing pair (receipts,
    deliveries and envelopes are signed with it); ``batch_size`` is the mean
    number of documents per envelope (rounded, at least 1).
    """
    from gateway.core.schemas import compiled_schema
    from gateway.core.signing import Signer

    if not documents:
        raise ValueError("measure_floor needs at least one document")
    batch = max(1, round(batch_size))
    der = node_certificate.public_bytes(serialization.Encoding.DER)
    node = _NodeSigning(
        key=node_key,
        der=der,
        public=node_certificate.public_key(),
        text=base64.b64encode(der).decode(),
        signer=Signer(node_key, node_certificate),
    )
    schema = compiled_schema()
    results = tuple(_measure_document(d, node, schema, batch, repeat) for d in documents)
    totals = [sum(op.us_per_document for op in ops) for _, ops in results]
    return Floor(
        batch_size=batch,
        documents=len(documents),
        operations=results,
        us_per_document=sum(totals) / len(totals),
    )


__all__ = ["Floor", "Operation", "measure_floor", "parse", "sign", "verify"]
