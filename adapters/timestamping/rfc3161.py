"""RFC 3161 time-stamp requests, responses and tokens (sans-IO).

* :func:`request` builds a ``TimeStampReq`` for a SHA-256 imprint, with a
  nonce and ``certReq`` set (the TSA puts its certificate into the token).
* :func:`token_of_response` reads a ``TimeStampResp``: the token when the
  status is granted, :class:`TimestampRefused` otherwise.
* :func:`verify_token` checks a token (a CMS ``SignedData`` over a
  ``TSTInfo``) against the imprint: the imprint and nonce in the TSTInfo,
  the signed attributes (content type, message digest), the signature with
  the signer certificate's key, the certificate's time-stamping key usage,
  and, with ``pinned`` (the TSA's certificate or its CA), that the signer
  is that certificate or was issued by it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.core.errors import InvalidInput, Unavailable

from . import der

SHA256 = "2.16.840.1.101.3.4.2.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
RSA_SHA256 = "1.2.840.113549.1.1.11"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"


class TimestampRefused(Unavailable):
    """The time-stamping authority did not grant a time-stamp; the checkpoint is retried later."""

    code = "TIMESTAMP_REFUSED"


class TimestampInvalid(InvalidInput):
    """A time-stamp token does not verify: wrong imprint or nonce, bad signature, or an unpinned signer."""

    code = "TIMESTAMP_INVALID"


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sha256_alg() -> bytes:
    return der.seq(der.oid(SHA256), der.null())


def new_nonce() -> int:
    return secrets.randbits(63)


def request(imprint: bytes, nonce: int) -> bytes:
    """The DER ``TimeStampReq`` for a SHA-256 ``imprint``."""
    if len(imprint) != 32:
        raise ValueError("a SHA-256 imprint is 32 bytes")
    return der.seq(
        der.integer(1),
        der.seq(_sha256_alg(), der.octets(imprint)),
        der.integer(nonce),
        der.boolean(True),  # certReq
    )


def token_of_response(data: bytes) -> bytes:
    """The ``TimeStampToken`` (DER ContentInfo) of a granted ``TimeStampResp``."""
    parts = der.parse(data).expect(der.SEQUENCE, "TimeStampResp").children()
    if not parts:
        raise der.DERInvalid("TimeStampResp: empty")
    status_info = parts[0].expect(der.SEQUENCE, "PKIStatusInfo").children()
    status = status_info[0].as_int() if status_info else -1
    if status not in (0, 1):  # granted, grantedWithMods
        raise TimestampRefused(f"the time-stamping authority answered status {status}")
    if len(parts) < 2:
        raise der.DERInvalid("TimeStampResp: granted without a token")
    return parts[1].expect(der.SEQUENCE, "TimeStampToken").raw


@dataclass(frozen=True)
class TimestampInfo:
    """What a verified token says: when, under which policy, and its serial number."""

    gen_time: datetime
    policy: str
    serial: int
    signer: x509.Certificate


def _one(nodes: list[der.Node], what: str) -> der.Node:
    if len(nodes) != 1:
        raise TimestampInvalid(f"{what}: exactly one expected")
    return nodes[0]


def _signed_data(token: bytes) -> list[der.Node]:
    info = der.parse(token).expect(der.SEQUENCE, "ContentInfo").children()
    if len(info) != 2 or info[0].as_oid() != SIGNED_DATA:
        raise TimestampInvalid("the token is not a CMS SignedData")
    wrapped = _one(info[1].expect(der.context(0), "content").children(), "content")
    return wrapped.expect(der.SEQUENCE, "SignedData").children()


def _tst_info(encap: der.Node) -> bytes:
    parts = encap.expect(der.SEQUENCE, "EncapsulatedContentInfo").children()
    if len(parts) != 2 or parts[0].as_oid() != TST_INFO:
        raise TimestampInvalid("the token does not hold a TSTInfo")
    inner = _one(parts[1].expect(der.context(0), "eContent").children(), "eContent")
    return inner.expect(der.OCTET_STRING, "eContent").content


def _attributes(signed_attrs: der.Node) -> dict[str, der.Node]:
    out: dict[str, der.Node] = {}
    for attr in signed_attrs.children():
        kind, values = attr.expect(der.SEQUENCE, "Attribute").children()
        if kind.as_oid() in out:
            raise TimestampInvalid("a signed attribute appears twice")
        out[kind.as_oid()] = _one(values.expect(der.SET, "attrValues").children(), "attrValue")
    return out


def _signer_certificate(
    certificates: list[x509.Certificate], sid: der.Node, pinned: x509.Certificate | None
) -> x509.Certificate:
    candidates = [*certificates, *([pinned] if pinned is not None else [])]
    if sid.tag == der.SEQUENCE:  # IssuerAndSerialNumber
        issuer, serial = sid.children()
        for cert in candidates:
            if cert.serial_number == serial.as_int() and cert.issuer.public_bytes() == issuer.raw:
                return cert
    raise TimestampInvalid("the token's signer certificate is missing")


def _check_signer(cert: x509.Certificate, pinned: x509.Certificate | None, at: datetime) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise TimestampInvalid("the signer certificate is not for time-stamping") from None
    if ExtendedKeyUsageOID.TIME_STAMPING not in usage:
        raise TimestampInvalid("the signer certificate is not for time-stamping")
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise TimestampInvalid("the time-stamp lies outside the signer certificate's validity")
    if pinned is None or cert == pinned:
        return
    try:
        cert.verify_directly_issued_by(pinned)
    except (ValueError, TypeError, InvalidSignature):
        raise TimestampInvalid("the signer is not the pinned TSA nor issued by it") from None


def _check_signature(
    cert: x509.Certificate, algorithm: str, signature: bytes, signed: bytes
) -> None:
    key = cert.public_key()
    try:
        if algorithm == ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        elif algorithm in (RSA_SHA256, RSA_ENCRYPTION) and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise TimestampInvalid("the token's signature algorithm is not accepted")
    except InvalidSignature:
        raise TimestampInvalid("the token's signature does not verify") from None


def verify_token(
    token: bytes, imprint: bytes, *, pinned: x509.Certificate | None, nonce: int | None = None
) -> TimestampInfo:
    """Verify ``token`` over the SHA-256 ``imprint`` (see the module docstring)."""
    try:
        return _verify(token, imprint, pinned, nonce)
    except (der.DERInvalid, ValueError) as exc:
        raise TimestampInvalid(f"the token is malformed ({type(exc).__name__})") from None


def _verify(
    token: bytes, imprint: bytes, pinned: x509.Certificate | None, nonce: int | None
) -> TimestampInfo:
    parts = _signed_data(token)
    if len(parts) < 4:
        raise TimestampInvalid("SignedData: too few parts")
    encap, rest = parts[2], parts[3:]
    certificates: list[x509.Certificate] = []
    if rest and rest[0].tag == der.context(0):
        certificates = [x509.load_der_x509_certificate(c.raw) for c in rest[0].children()]
        rest = rest[1:]
    if rest and rest[0].tag == der.context(1):  # CRLs: not used
        rest = rest[1:]
    signer_info = _one(
        _one(rest, "signerInfos").expect(der.SET, "signerInfos").children(), "signer"
    )
    tst_der = _tst_info(encap)

    tst = der.parse(tst_der).expect(der.SEQUENCE, "TSTInfo").children()
    if len(tst) < 5 or tst[0].as_int() != 1:
        raise TimestampInvalid("TSTInfo: not version 1")
    policy = tst[1].as_oid()
    alg, hashed = tst[2].expect(der.SEQUENCE, "MessageImprint").children()
    if alg.children()[0].as_oid() != SHA256 or hashed.content != imprint:
        raise TimestampInvalid("the token does not cover this checkpoint")
    serial, gen_time = tst[3].as_int(), tst[4].as_time()
    if nonce is not None:
        nonces = [n.as_int() for n in tst[5:] if n.tag == der.INTEGER]
        if nonces != [nonce]:
            raise TimestampInvalid("the token's nonce is not the request's")

    fields = signer_info.expect(der.SEQUENCE, "SignerInfo").children()
    if len(fields) < 6 or fields[3].tag != der.context(0):
        raise TimestampInvalid("SignerInfo: signed attributes are required")
    sid, digest_alg, signed_attrs, sig_alg, signature = fields[1], *fields[2:6]
    if digest_alg.children()[0].as_oid() != SHA256:
        raise TimestampInvalid("SignerInfo: only SHA-256 is accepted")
    attrs = _attributes(signed_attrs)
    content_type = attrs.get(CONTENT_TYPE)
    if content_type is None or content_type.as_oid() != TST_INFO:
        raise TimestampInvalid("SignerInfo: the content type is not TSTInfo")
    digest = attrs.get(MESSAGE_DIGEST)
    if digest is None or digest.expect(der.OCTET_STRING, "messageDigest").content != _digest(
        tst_der
    ):
        raise TimestampInvalid("SignerInfo: the message digest does not match the TSTInfo")
    cert = _signer_certificate(certificates, sid, pinned)
    _check_signer(cert, pinned, gen_time)
    signed = der.tlv(der.SET, signed_attrs.content)  # signed as a SET, not as [0]
    _check_signature(
        cert,
        sig_alg.children()[0].as_oid(),
        signature.expect(der.OCTET_STRING, "sig").content,
        signed,
    )
    return TimestampInfo(gen_time, policy, serial, cert)
