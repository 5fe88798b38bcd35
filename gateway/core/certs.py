"""Certificate trust decisions: pinned certificates, the node's CA, revocation (sans-IO).

What lives here:

* :class:`TrustStore`, the frozen set of certificates a verifier may trust:
  certificates pinned exactly (a peer node's signing certificate, a national
  system's registered certificate), the node's own CA certificates (which may
  issue certificates directly; no chains, no intermediates), and the SHA-256
  fingerprints of certificates the node has revoked or unbound;
* :func:`check_certificate`, the one decision "may a signature made with
  this certificate be accepted at ``now``?", each refusal with a stable code;
* :func:`fingerprint`, :func:`authority_id_of`, :func:`node_id_of`: how a
  certificate is named and which identity it is bound to
  (subjectAltName URIs, see :mod:`gateway.core.ns`);
* PEM helpers that take and return bytes (no file IO in core).

What must never live here: a public CA bundle, the system trust store,
network revocation checks (OCSP/CRL fetching), or any path through which a
key or certificate carried *inside a document* becomes trusted by itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.core.errors import ConfigurationError, InvalidSignature
from gateway.core.ns import AUTHORITY_URI_PREFIX, NODE_URI_PREFIX, is_authority_id, is_node_id

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

__all__ = [
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRefused",
    "CertificateRevoked",
    "CertificateUnreadable",
    "CertificateUntrusted",
    "KeyUnreadable",
    "PrivateKey",
    "TrustStore",
    "authority_id_of",
    "check_certificate",
    "dump_pem_certificate",
    "dump_pem_private_key",
    "fingerprint",
    "load_pem_certificate",
    "load_pem_certificates",
    "load_pem_private_key",
    "node_id_of",
    "normalise_fingerprint",
]


# --- errors -------------------------------------------------------------------


class CertificateRefused(InvalidSignature):
    """The signing certificate may not be used for this signature."""

    code = "CERTIFICATE_REFUSED"


class CertificateUntrusted(CertificateRefused):
    """The signing certificate is neither pinned nor issued by a trusted CA of this node."""

    code = "CERTIFICATE_UNTRUSTED"


class CertificateExpired(CertificateRefused):
    """The signing certificate (or the CA that issued it) has expired."""

    code = "CERTIFICATE_EXPIRED"


class CertificateNotYetValid(CertificateRefused):
    """The signing certificate (or the CA that issued it) is not valid yet."""

    code = "CERTIFICATE_NOT_YET_VALID"


class CertificateRevoked(CertificateRefused):
    """The signing certificate (or the CA that issued it) was revoked or unbound by this node."""

    code = "CERTIFICATE_REVOKED"


class CertificateUnreadable(ConfigurationError):
    """A certificate file is not a readable PEM certificate."""

    code = "CERTIFICATE_UNREADABLE"


class KeyUnreadable(ConfigurationError):
    """A private-key file is not a readable PEM private key (or the password is wrong)."""

    code = "KEY_UNREADABLE"


# --- naming -------------------------------------------------------------------


@lru_cache(maxsize=1024)
def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint: lower-case hex of the DER encoding.

    Cached (certificates are immutable and hash by their DER encoding): the
    same few certificates are checked for every document and connection.
    """
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalise_fingerprint(value: str) -> str:
    """``value`` as :func:`fingerprint` writes it; accepts upper case and ``:`` separators.

    Raises ValueError unless it is 64 hex digits.
    """
    text = value.strip().replace(":", "").lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("a SHA-256 fingerprint is 64 hexadecimal digits")
    return text


def _san_uris(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.UniformResourceIdentifier))


def _bound_id(cert: x509.Certificate, prefix: str) -> str | None:
    values = {uri[len(prefix) :] for uri in _san_uris(cert) if uri.startswith(prefix)}
    if len(values) != 1:
        # None when unbound, and when ambiguous (two identities in one
        # certificate): the caller refuses both the same way.
        return None
    return values.pop()


@lru_cache(maxsize=1024)
def authority_id_of(cert: x509.Certificate) -> str | None:
    """The authority id bound to a national-system certificate, or None.

    Read from the subjectAltName URI ``urn:imi-gateway:authority:<ID>``. None
    when there is no such URI, when there are several different ones, or when
    the id is not well-formed (see :func:`gateway.core.ns.is_authority_id`).
    """
    value = _bound_id(cert, AUTHORITY_URI_PREFIX)
    return value if value is not None and is_authority_id(value) else None


@lru_cache(maxsize=1024)
def node_id_of(cert: x509.Certificate) -> str | None:
    """The node id bound to a node certificate (``urn:imi-gateway:node:<ID>``), or None.

    Same rules as :func:`authority_id_of`.
    """
    value = _bound_id(cert, NODE_URI_PREFIX)
    return value if value is not None and is_node_id(value) else None


# --- PEM ----------------------------------------------------------------------


def load_pem_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate in PEM ``data`` (at least one), or CertificateUnreadable."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateUnreadable("no readable PEM certificate found") from None
    return tuple(certs)


def load_pem_certificate(data: bytes) -> x509.Certificate:
    """The single certificate in PEM ``data``, or CertificateUnreadable."""
    certs = load_pem_certificates(data)
    if len(certs) != 1:
        raise CertificateUnreadable(f"expected one PEM certificate, found {len(certs)}")
    return certs[0]


def dump_pem_certificate(cert: x509.Certificate) -> bytes:
    """The certificate in PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_pem_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An EC or RSA private key from PEM ``data``, or KeyUnreadable.

    Loading costs tens of milliseconds: load a key once and keep the object.
    """
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError):
        raise KeyUnreadable(
            "no readable PEM private key found (wrong format or password?)"
        ) from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm here too
        raise KeyUnreadable(f"unusable private key: {type(exc).__name__}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyUnreadable("only EC and RSA private keys are supported")
    return key


def dump_pem_private_key(key: PrivateKey, password: bytes | None = None) -> bytes:
    """The private key as PKCS#8 PEM, encrypted when ``password`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


# --- the trust store -------------------------------------------------------------


def _has_ca_constraint(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _is_ca(cert: x509.Certificate) -> bool:
    if not _has_ca_constraint(cert):
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


@dataclass(frozen=True)
class TrustStore:
    """The certificates a verifier trusts, and those the node has revoked.

    pinned: certificates accepted exactly as they are (compared by SHA-256 of
        their DER encoding): a peer node's signing certificate, a national
        system's registered certificate.
    cas: the node's own CA certificates. A certificate is trusted when one of
        them issued it *directly* (no intermediates). Each must carry the CA
        basic constraint (and keyCertSign when it has a key usage); ValueError
        otherwise.
    revoked: SHA-256 fingerprints (see :func:`fingerprint`) of certificates the
        node revoked or unbound. A revoked CA revokes everything it issued.

    Nothing else is ever trusted: no system or public CA bundle, no
    certificate or key carried in a document.
    """

    pinned: tuple[x509.Certificate, ...] = ()
    cas: tuple[x509.Certificate, ...] = ()
    revoked: frozenset[str] = frozenset()
    _pinned_fingerprints: frozenset[str] = field(init=False, repr=False, compare=False)
    _ca_fingerprints: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pinned", tuple(self.pinned))
        object.__setattr__(self, "cas", tuple(self.cas))
        object.__setattr__(
            self, "revoked", frozenset(normalise_fingerprint(f) for f in self.revoked)
        )
        object.__setattr__(
            self, "_pinned_fingerprints", frozenset(fingerprint(c) for c in self.pinned)
        )
        object.__setattr__(self, "_ca_fingerprints", tuple(fingerprint(c) for c in self.cas))
        for ca in self.cas:
            if not _is_ca(ca):
                raise ValueError(
                    f"trust store CA {ca.subject.rfc4514_string()} is not a CA certificate"
                )

    @classmethod
    def from_pem(
        cls,
        *,
        pinned: Iterable[bytes] = (),
        cas: Iterable[bytes] = (),
        revoked: Iterable[str] = (),
    ) -> TrustStore:
        """A trust store from PEM blobs (each may hold several certificates)."""
        return cls(
            pinned=tuple(c for blob in pinned for c in load_pem_certificates(blob)),
            cas=tuple(c for blob in cas for c in load_pem_certificates(blob)),
            revoked=frozenset(revoked),
        )

    def with_revoked(self, *fingerprints: str) -> TrustStore:
        """A copy that also refuses the certificates with these fingerprints."""
        return TrustStore(
            pinned=self.pinned, cas=self.cas, revoked=self.revoked | frozenset(fingerprints)
        )

    def is_pinned(self, cert: x509.Certificate) -> bool:
        return fingerprint(cert) in self._pinned_fingerprints


# (certificate fingerprint, CA fingerprint) -> "the CA issued it directly and
# it is not itself a CA". A pure function of the two certificates, so it is
# cached: the CA's signature over a national system's certificate need not be
# checked again for every document that system signs.
_ISSUED: dict[tuple[str, str], bool] = {}
_ISSUED_MAX = 4096


def _issued_leaf(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if ca.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, _CryptoInvalidSignature):
        return False
    return True


def _issuing_ca(cert: x509.Certificate, cert_fingerprint: str, trust: TrustStore) -> int | None:
    for index, ca in enumerate(trust.cas):
        key = (cert_fingerprint, trust._ca_fingerprints[index])
        issued = _ISSUED.get(key)
        if issued is None:
            issued = _issued_leaf(cert, ca)
            if len(_ISSUED) >= _ISSUED_MAX:
                _ISSUED.clear()
            _ISSUED[key] = issued
        if issued:
            return index
    return None


def within_validity(cert: x509.Certificate, now: datetime) -> bool:
    """Whether ``now`` is inside ``cert``'s validity period."""
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    """Raise CERTIFICATE_NOT_YET_VALID / CERTIFICATE_EXPIRED unless ``now`` is inside ``cert``'s validity."""
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateExpired(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")


def check_certificate(cert: x509.Certificate, trust: TrustStore, now: datetime) -> None:
    """Accept ``cert`` for a signature verified at ``now``, or raise a CertificateRefused.

    Accepted only when all hold:

    1. it is exactly a pinned certificate, or it was issued directly by one of
       ``trust.cas`` (issuer name matches, the CA's signature over it checks
       out, the CA is a CA, and the certificate itself is not a CA), and it
       has no critical extension unknown to ``cryptography`` --
       otherwise CERTIFICATE_UNTRUSTED;
    2. neither it nor its issuing CA is revoked -- CERTIFICATE_REVOKED;
    3. ``now`` lies inside its validity period and its CA's --
       CERTIFICATE_NOT_YET_VALID / CERTIFICATE_EXPIRED.

    ``now`` must be timezone-aware (ValueError otherwise).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    cert_fingerprint = fingerprint(cert)
    issuer: int | None = None
    if cert_fingerprint not in trust._pinned_fingerprints:
        issuer = _issuing_ca(cert, cert_fingerprint, trust)
        if issuer is None:
            raise CertificateUntrusted(
                "the signing certificate is neither pinned nor issued by a trusted CA"
            )
        if _has_ca_constraint(cert):
            raise CertificateUntrusted("a CA certificate cannot sign documents")
    if any(
        ext.critical and isinstance(ext.value, x509.UnrecognizedExtension)
        for ext in cert.extensions
    ):
        raise CertificateUntrusted(
            "the certificate has a critical extension this node does not know"
        )
    if cert_fingerprint in trust.revoked:
        raise CertificateRevoked("the signing certificate was revoked by this node")
    if issuer is not None and trust._ca_fingerprints[issuer] in trust.revoked:
        raise CertificateRevoked("the CA that issued the signing certificate was revoked")
    check_validity(cert, now, "the signing certificate")
    if issuer is not None:
        check_validity(trust.cas[issuer], now, "the CA that issued the signing certificate")
