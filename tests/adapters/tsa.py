"""A local RFC 3161 time-stamping authority for tests, built with ``cryptography``.

:func:`make_tsa_keys` issues a CA and a TSA certificate (extended key usage
timeStamping, critical); :class:`LocalTSA` is a twisted.web resource that
answers ``TimeStampReq`` POSTs with a ``TimeStampResp`` whose token is a CMS
SignedData over a TSTInfo, signed (ECDSA P-256) with signed attributes
(content type, message digest, ESS signingCertificateV2), as real TSAs do;
``openssl ts -verify`` accepts its tokens. :func:`serve_tsa` listens on
loopback port 0. ``down`` makes it answer 503, ``status`` a refusal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.web.resource import Resource
from twisted.web.server import Site

from gateway.adapters.timestamping import der, rfc3161

SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
POLICY = "1.3.6.1.4.1.99999.1"


@dataclass
class TSAKeys:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tsa_keys(*, time_stamping: bool = True, now: datetime | None = None) -> TSAKeys:
    now = now or datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA CA"))
        .issuer_name(_name("Test TSA CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.TIME_STAMPING if time_stamping else ExtendedKeyUsageOID.CODE_SIGNING
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return TSAKeys(ca_key, ca, key, cert)


def _sha256_alg() -> bytes:
    return der.seq(der.oid(rfc3161.SHA256), der.null())


def sign_token(
    keys: TSAKeys, imprint_raw: bytes, nonce: int | None, serial: int, at: datetime
) -> bytes:
    """A TimeStampToken (DER ContentInfo) over the request's MessageImprint element."""
    tst = der.seq(
        der.integer(1),
        der.oid(POLICY),
        imprint_raw,
        der.integer(serial),
        der.generalized_time(at),
        *([der.integer(nonce)] if nonce is not None else []),
    )
    cert_der = keys.certificate.public_bytes(serialization.Encoding.DER)
    ess = der.seq(der.seq(der.seq(der.octets(hashlib.sha256(cert_der).digest()))))
    attributes = [
        der.seq(der.oid(rfc3161.CONTENT_TYPE), der.set_of(der.oid(rfc3161.TST_INFO))),
        der.seq(
            der.oid(rfc3161.MESSAGE_DIGEST), der.set_of(der.octets(hashlib.sha256(tst).digest()))
        ),
        der.seq(der.oid(SIGNING_CERTIFICATE_V2), der.set_of(ess)),
    ]
    signed_attrs = der.set_of(*attributes)
    signature = keys.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
    signer_info = der.seq(
        der.integer(1),
        der.seq(
            keys.certificate.issuer.public_bytes(), der.integer(keys.certificate.serial_number)
        ),
        _sha256_alg(),
        der.tlv(der.context(0), der.parse(signed_attrs).content),
        der.seq(der.oid(rfc3161.ECDSA_SHA256)),
        der.octets(signature),
    )
    signed_data = der.seq(
        der.integer(3),
        der.set_of(_sha256_alg()),
        der.seq(der.oid(rfc3161.TST_INFO), der.tlv(der.context(0), der.octets(tst))),
        der.tlv(der.context(0), cert_der),
        der.set_of(signer_info),
    )
    return der.seq(der.oid(rfc3161.SIGNED_DATA), der.tlv(der.context(0), signed_data))


@dataclass
class LocalTSA(Resource):
    """POST a TimeStampReq, get a TimeStampResp (see the module docstring)."""

    keys: TSAKeys
    down: bool = False
    status: int = 0
    requests: int = 0
    served: list[bytes] = field(default_factory=list)
    isLeaf = True

    def __post_init__(self) -> None:
        Resource.__init__(self)

    def render_POST(self, request: Any) -> bytes:
        self.requests += 1
        if self.down:
            request.setResponseCode(503)
            return b"down"
        parts = der.parse(request.content.read()).children()
        imprint_raw = parts[1].raw
        nonce = next((p.as_int() for p in parts[2:] if p.tag == der.INTEGER), None)
        request.setHeader(b"Content-Type", b"application/timestamp-reply")
        if self.status:
            return der.seq(der.seq(der.integer(self.status)))
        token = sign_token(self.keys, imprint_raw, nonce, self.requests, datetime.now(UTC))
        self.served.append(token)
        return der.seq(der.seq(der.integer(0)), token)


def serve_tsa(reactor: Any, tsa: LocalTSA) -> tuple[str, Any]:
    """Listen on loopback port 0; the TSA's URL and the listening port (stop it after)."""
    port = reactor.listenTCP(0, Site(tsa), interface="127.0.0.1")
    return f"http://127.0.0.1:{port.getHost().port}/tsa", port
