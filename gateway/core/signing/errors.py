"""Stable error codes of XML signature signing and verification.

Each refusal of :func:`gateway.core.signing.verify` has its own code so that a
national-system developer (and a test) can tell exactly which rule a document
broke. Certificate refusals live in :mod:`gateway.core.certs`; parse refusals
(DOCTYPE, comments, size, depth, duplicate IDs) in :mod:`gateway.core.errors`.
All signature and certificate refusals are :class:`InvalidSignature`.
"""

from __future__ import annotations

from gateway.core.certs import CertificateRefused
from gateway.core.errors import ConfigurationError, InvalidSignature

__all__ = [
    "DigestMismatch",
    "KeyCertificateMismatch",
    "SignatureAlgorithmRefused",
    "SignatureDigestRefused",
    "SignatureKeyInfoRefused",
    "SignatureMismatch",
    "SignatureMissing",
    "SignatureStructure",
    "SignatureTransformRefused",
    "SigningKeyRefused",
    "SigningKeyUnsupported",
]


class SignatureMissing(InvalidSignature):
    """The document carries no XML signature (ds:Signature)."""

    code = "SIGNATURE_MISSING"


class SignatureStructure(InvalidSignature):
    """The XML signature is not in the protocol's fixed form (one ds:Signature, last child of the root, one reference URI="")."""

    code = "SIGNATURE_STRUCTURE"


class SignatureAlgorithmRefused(InvalidSignature):
    """The signature method is not allowed (only RSA-SHA256 and ECDSA-SHA256; never SHA-1, HMAC or others)."""

    code = "SIGNATURE_ALGORITHM_REFUSED"


class SignatureDigestRefused(InvalidSignature):
    """The reference's digest method is not allowed (only SHA-256)."""

    code = "SIGNATURE_DIGEST_REFUSED"


class SignatureTransformRefused(InvalidSignature):
    """A canonicalization method or transform is not allowed (only enveloped-signature then exclusive C14N, without comments)."""

    code = "SIGNATURE_TRANSFORM_REFUSED"


class SignatureKeyInfoRefused(InvalidSignature):
    """The signature's KeyInfo must carry exactly one X.509 certificate and nothing else (no key values)."""

    code = "SIGNATURE_KEYINFO_REFUSED"


class SigningKeyRefused(CertificateRefused):
    """The signing certificate's key is not allowed for this signature (key type, size, curve or key usage)."""

    code = "CERTIFICATE_KEY_REFUSED"


class DigestMismatch(InvalidSignature):
    """The signed content was altered: its digest does not match the signature's reference."""

    code = "SIGNATURE_DIGEST_MISMATCH"


class SignatureMismatch(InvalidSignature):
    """The signature value does not verify with the signing certificate's key."""

    code = "SIGNATURE_MISMATCH"


class KeyCertificateMismatch(ConfigurationError):
    """The private key does not belong to the certificate it is configured with."""

    code = "KEY_CERTIFICATE_MISMATCH"


class SigningKeyUnsupported(ConfigurationError):
    """The private key cannot make signatures of the protocol's profile (EC P-256/P-384 or RSA of at least 2048 bits)."""

    code = "SIGNING_KEY_UNSUPPORTED"
