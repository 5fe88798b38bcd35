"""Certificate and PEM helpers of the key store, and the ``keys show`` listing.

Fingerprints are the lower-case hex SHA-256 of a certificate's DER encoding
(the same definition as ``gateway.core.certs.fingerprint``). Nothing here
logs or prints key material.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from gateway.core import pki
from gateway.keystore.errors import KeyStoreError
from gateway.keystore.layout import _read_checked

PrivateKey = pki.PrivateKey


_FINGERPRINT_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    return cert.fingerprint(hashes.SHA256()).hex()


def normalize_fingerprint(value: str) -> str | None:
    """``value`` as a canonical fingerprint (colons, spaces and case ignored), or None."""
    candidate = re.sub(r"[\s:]", "", value).lower()
    if candidate.startswith("sha256"):
        candidate = candidate[len("sha256") :].lstrip("=")
    return candidate if _FINGERPRINT_RE.match(candidate) else None


def identity_uris(cert: x509.Certificate) -> list[str]:
    """The subjectAltName URIs of ``cert``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def _load_certs(path: Path, what: str) -> list[x509.Certificate]:
    data = _read_checked(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise KeyStoreError(f"{path}: {what} is not a PEM certificate") from None
    return certs


def _load_cert(path: Path, what: str) -> x509.Certificate:
    certs = _load_certs(path, what)
    if len(certs) != 1:
        raise KeyStoreError(f"{path}: {what} must hold exactly one certificate")
    return certs[0]


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _same_public_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, CryptoInvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate as ``keys show`` lists it."""

    role: str
    subject: str
    fingerprint: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]
    revoked: bool

    def status(self, now: datetime) -> str:
        if self.revoked:
            return "REVOKED"
        if now < self.not_before:
            return "NOT YET VALID"
        if now > self.not_after:
            return "EXPIRED"
        days = (self.not_after - now).days
        return f"expires in {days} days" if days < 30 else "valid"

    def as_json(self, now: datetime) -> dict[str, object]:
        return {
            "role": self.role,
            "subject": self.subject,
            "sha256": self.fingerprint,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "names": list(self.names),
            "status": self.status(now),
        }


def certificate_info(
    role: str, cert: x509.Certificate, revoked: frozenset[str] | set[str]
) -> CertificateInfo:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += list(san.get_values_for_type(x509.UniformResourceIdentifier))
        names += list(san.get_values_for_type(x509.DNSName))
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    fp = certificate_fingerprint(cert)
    return CertificateInfo(
        role=role,
        subject=cert.subject.rfc4514_string(),
        fingerprint=fp,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=tuple(names),
        revoked=fp in revoked,
    )
