"""XML signatures of protocol documents: sign them, and verify what arrives (docs/signatures.md).

The public API:

* :class:`SignaturePolicy` / :data:`DEFAULT_POLICY`: the few knobs a node may
  turn, each of which can only make verification *stricter*;
* :class:`Signer`: enveloped XML-DSig of a tree with a key loaded once;
* :func:`verify`: bytes in, :class:`Verified` out, or an
  :class:`~gateway.core.errors.InvalidSignature` (or parse error) with a stable
  code. ``Verified.root`` is the signed tree: the only tree code may read;
* :func:`verify_and_validate`: :func:`verify`, then the document's XSD.

Two engines implement the cryptographic part of the one profile
(:mod:`gateway.core.signing.profile`): ``"fast"`` (:mod:`gateway.core.signing.fast`,
lxml + cryptography, the default) and ``"signxml"``
(:mod:`gateway.core.signing.signxml_engine`, the reference). Both run behind the same
structural, ID, key and certificate checks, and are tested to agree on every
golden and hostile document. Every check is made on every call; none can be
switched off.

The order of the checks (the first failure is reported):

1. hardened parse (size, DOCTYPE/entities, XInclude, comments/PIs, depth,
   UTF-8, XML 1.0) -- :mod:`gateway.core.xmlparse`;
2. canonical-form size (namespace amplification) -- DOCUMENT_TOO_LARGE;
3. signature structure and algorithms -- SIGNATURE_MISSING,
   SIGNATURE_STRUCTURE, SIGNATURE_TRANSFORM_REFUSED,
   SIGNATURE_ALGORITHM_REFUSED, SIGNATURE_DIGEST_REFUSED,
   SIGNATURE_KEYINFO_REFUSED;
4. unique ID values -- XML_DUPLICATE_ID;
5. the KeyInfo certificate against the trust store at ``now`` --
   CERTIFICATE_UNTRUSTED, CERTIFICATE_REVOKED, CERTIFICATE_NOT_YET_VALID,
   CERTIFICATE_EXPIRED; then its key against the policy --
   CERTIFICATE_KEY_REFUSED, SIGNATURE_ALGORITHM_REFUSED;
6. signature value, then reference digest -- SIGNATURE_MISMATCH,
   SIGNATURE_DIGEST_MISMATCH.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gateway.core import certs, schemas
from gateway.core.certs import PrivateKey, TrustStore
from gateway.core.docxml import sha256_hex
from gateway.core.errors import ForbiddenXMLConstruct
from gateway.core.signing import fast as sigfast
from gateway.core.signing import profile as sigprofile
from gateway.core.signing import signxml_engine as sigxml
from gateway.core.signing.errors import (
    DigestMismatch,
    KeyCertificateMismatch,
    SignatureAlgorithmRefused,
    SignatureDigestRefused,
    SignatureKeyInfoRefused,
    SignatureMismatch,
    SignatureMissing,
    SignatureStructure,
    SignatureTransformRefused,
    SigningKeyRefused,
    SigningKeyUnsupported,
)
from gateway.core.signing.profile import (
    ECDSA_SHA256,
    PROFILE_DIGEST_METHODS,
    PROFILE_SIGNATURE_METHODS,
    RSA_SHA256,
    SHA256,
)
from gateway.core.xmlparse import (
    DEFAULT_LIMITS,
    XINCLUDE_2003_NS,
    XINCLUDE_NS,
    ParseLimits,
    parse_xml,
)

__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_POLICY",
    "ECDSA_SHA256",
    "ENGINES",
    "RSA_SHA256",
    "SHA256",
    "DigestMismatch",
    "Engine",
    "KeyCertificateMismatch",
    "SignatureAlgorithmRefused",
    "SignatureDigestRefused",
    "SignatureKeyInfoRefused",
    "SignatureMismatch",
    "SignatureMissing",
    "SignaturePolicy",
    "SignatureStructure",
    "SignatureTransformRefused",
    "Signer",
    "SigningKeyRefused",
    "SigningKeyUnsupported",
    "Verified",
    "verify",
    "verify_and_validate",
]

Engine = Literal["fast", "signxml"]
#: The engines :func:`verify` and :class:`Signer` accept.
ENGINES: tuple[Engine, ...] = get_args(Engine)
#: The engine used unless one is named: the fast engine, proven against
#: signxml and xmlsec1 by the differential and interop tests.
DEFAULT_ENGINE: Engine = "fast"

#: Curves an EC signing key may use (names as ``cryptography`` spells them).
PROFILE_EC_CURVES = frozenset({"secp256r1", "secp384r1"})
#: The smallest RSA modulus the protocol ever accepts.
PROFILE_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class SignaturePolicy:
    """What a verifier accepts beyond the fixed profile. Every field can only narrow it.

    Fixed by the profile (docs/signatures.md), hence *not* fields: exactly one
    ds:Signature, the last child of the root; exactly one reference, URI="";
    transforms exactly enveloped-signature then exclusive C14N; exclusive
    C14N for SignedInfo; no ``#WithComments`` anywhere; no comments,
    processing instructions, DOCTYPE, entities or XInclude; unique ID values;
    the certificate in KeyInfo checked against the trust store (pinned or
    issued by the node's CA, inside its validity period, not revoked), never
    a KeyValue; signature and digest both verified.

    signature_methods: signature method URIs accepted; a non-empty subset of
        RSA-SHA256 and ECDSA-SHA256 (both by default). SHA-1 and HMAC
        methods can never be added.
    digest_methods: reference digest method URIs accepted; only SHA-256
        exists in the profile.
    min_rsa_bits: smallest RSA modulus accepted (default 2048; may be raised,
        never lowered below 2048).
    ec_curves: EC curves accepted, a non-empty subset of P-256 and P-384
        (``"secp256r1"``, ``"secp384r1"``; both by default).
    parse_limits: byte and depth caps of the hardened parser (see
        :class:`gateway.core.xmlparse.ParseLimits`); ``allow_comments`` must
        stay False.
    """

    signature_methods: frozenset[str] = PROFILE_SIGNATURE_METHODS
    digest_methods: frozenset[str] = PROFILE_DIGEST_METHODS
    min_rsa_bits: int = PROFILE_MIN_RSA_BITS
    ec_curves: frozenset[str] = PROFILE_EC_CURVES
    parse_limits: ParseLimits = field(default=DEFAULT_LIMITS)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("signature_methods", self.signature_methods, PROFILE_SIGNATURE_METHODS),
            ("digest_methods", self.digest_methods, PROFILE_DIGEST_METHODS),
            ("ec_curves", self.ec_curves, PROFILE_EC_CURVES),
        ):
            value = frozenset(value)
            object.__setattr__(self, name, value)
            if not value or not value <= allowed:
                raise ValueError(
                    f"SignaturePolicy.{name} must be a non-empty subset of {sorted(allowed)}"
                )
        if self.min_rsa_bits < PROFILE_MIN_RSA_BITS:
            raise ValueError(
                f"SignaturePolicy.min_rsa_bits may not be below {PROFILE_MIN_RSA_BITS}"
            )
        if self.parse_limits.allow_comments:
            raise ValueError("signed documents may never contain comments")


DEFAULT_POLICY = SignaturePolicy()


@dataclass(frozen=True)
class Verified:
    """A document whose signature was verified.

    root: THE SIGNED TREE -- the only tree code may read. It is parsed afresh
        (by the hardened parser) from the exclusive canonical form that the
        digest covers, so it holds exactly the signed content: no DOCTYPE, no
        comments, no namespace declaration the signature did not cover. The
        verified ds:Signature is appended back as its last child, so the tree
        validates against the same XSD as the document.
    certificate: the signing certificate, checked against the trust store.
    data: the exact bytes received (store and forward these, never a
        re-serialization).
    sha256: lower-case hex SHA-256 of ``data`` (for receipts).
    """

    root: etree._Element
    certificate: x509.Certificate
    data: bytes
    sha256: str

    @property
    def fingerprint(self) -> str:
        """The signing certificate's SHA-256 fingerprint (hex)."""
        return certs.fingerprint(self.certificate)

    @property
    def authority_id(self) -> str | None:
        """The authority bound to the signing certificate, if it is a national system's."""
        return certs.authority_id_of(self.certificate)

    @property
    def node_id(self) -> str | None:
        """The node bound to the signing certificate, if it is a node's."""
        return certs.node_id_of(self.certificate)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown signature engine {engine!r} (one of {', '.join(ENGINES)})")


def _check_signing_key(cert: x509.Certificate, method: str, policy: SignaturePolicy) -> None:
    key = cert.public_key()
    if method == RSA_SHA256:
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureAlgorithmRefused("RSA-SHA256 signature with a non-RSA certificate")
        if key.key_size < policy.min_rsa_bits:
            raise SigningKeyRefused(
                f"RSA key of {key.key_size} bits; at least {policy.min_rsa_bits} required"
            )
    elif method == ECDSA_SHA256:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureAlgorithmRefused("ECDSA-SHA256 signature with a non-EC certificate")
        if key.curve.name not in policy.ec_curves:
            raise SigningKeyRefused(f"EC curve {key.curve.name} is not allowed")
    else:  # pragma: no cover - check_structure admits only the two methods
        raise SignatureAlgorithmRefused("unknown signature method")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise SigningKeyRefused("the certificate's key usage does not allow digital signatures")


def _reparse_limits(policy: SignaturePolicy, signed: bytes) -> ParseLimits:
    # The canonical form may be longer than the input (<a/> becomes <a></a>);
    # it comes from a tree that passed every cap already.
    return ParseLimits(
        max_bytes=max(policy.parse_limits.max_bytes, len(signed)),
        max_depth=policy.parse_limits.max_depth,
    )


def verify(
    data: bytes,
    trust: TrustStore,
    *,
    now: datetime,
    policy: SignaturePolicy = DEFAULT_POLICY,
    engine: Engine = DEFAULT_ENGINE,
) -> Verified:
    """Verify the enveloped signature of ``data`` against ``trust`` at ``now``.

    Returns :class:`Verified`, whose ``root`` is the signed tree; raises a
    :class:`~gateway.core.errors.GatewayError` with a stable code otherwise
    (see the module docstring for the order of the checks). ``now`` must be
    timezone-aware. The document type is *not* checked here: see
    :func:`verify_and_validate`.
    """
    if not isinstance(data, bytes):
        raise TypeError("verify takes bytes")
    _check_engine(engine)
    root = parse_xml(data, policy.parse_limits)
    sigprofile.check_canonical_size(data, root)
    parts = sigprofile.check_structure(
        root, signature_methods=policy.signature_methods, digest_methods=policy.digest_methods
    )
    sigprofile.check_unique_ids(root)
    certs.check_certificate(parts.certificate, trust, now)
    _check_signing_key(parts.certificate, parts.signature_method, policy)
    if engine == "fast":
        signed = sigfast.verify(root, parts)
    else:
        signed = sigxml.verify(
            data, parts.certificate, now=now, signature_methods=policy.signature_methods
        )
    # Leading newlines keep the line numbers of schema errors pointing at the
    # sender's document (the canonical form drops the XML declaration); exact
    # unless a start tag spans several lines.
    line = root.sourceline
    padding = b"\n" * (line - 1 if isinstance(line, int) and line > 1 else 0)
    signed_root = parse_xml(padding + signed, _reparse_limits(policy, padding + signed))
    signature = parts.signature
    sigfast.detach_enveloped(signature)
    signed_root.append(signature)
    return Verified(
        root=signed_root,
        certificate=parts.certificate,
        data=data,
        sha256=sha256_hex(data),
    )


def verify_and_validate(
    data: bytes,
    trust: TrustStore,
    *,
    now: datetime,
    policy: SignaturePolicy = DEFAULT_POLICY,
    engine: Engine = DEFAULT_ENGINE,
) -> tuple[Verified, str]:
    """:func:`verify`, then validate the signed tree against its XSD.

    Returns the verified document and its document type (the value of
    :func:`gateway.core.schemas.validate`); raises SCHEMA_INVALID or
    DOCUMENT_TYPE_UNKNOWN for a correctly signed document that is not a valid
    protocol document. Validation reads ``Verified.root`` only.
    """
    verified = verify(data, trust, now=now, policy=policy, engine=engine)
    return verified, schemas.validate(verified.root)


# --- signing ----------------------------------------------------------------------------

_UNSIGNABLE_NODES = etree.XPath(
    "boolean(descendant::comment() | descendant::processing-instruction()"
    " | descendant-or-self::*[namespace-uri()=$xi or namespace-uri()=$xi2])"
)


def check_signable(root: etree._Element) -> None:
    """Refuse to sign a tree the verifier would refuse for its content.

    The tree must be an element without a ds:Signature anywhere, without
    comments, processing instructions or XInclude, and with unique ID values.
    """
    if not isinstance(root.tag, str):
        raise TypeError("only an element can be signed")
    if next(root.iter(sigprofile.SIGNATURE_TAG), None) is not None:
        raise SignatureStructure("the document already carries a ds:Signature")
    if _UNSIGNABLE_NODES(root, xi=XINCLUDE_NS, xi2=XINCLUDE_2003_NS):
        raise ForbiddenXMLConstruct(
            "comments, processing instructions and XInclude cannot be signed"
        )
    sigprofile.check_unique_ids(root)


class Signer:
    """Signs protocol documents with one key and its certificate.

    The key is loaded once by the caller (loading a PEM key costs ~50 ms) and
    kept here; :meth:`sign` makes an enveloped signature (URI="", exclusive
    C14N, SHA-256, ECDSA-SHA256 for EC keys and RSA-SHA256 for RSA keys),
    appended as the root's last child, with the certificate in KeyInfo.

    Raises SigningKeyUnsupported for a key outside the profile (RSA under
    2048 bits, a curve other than P-256/P-384) and KeyCertificateMismatch
    when the certificate is not the key's.
    """

    def __init__(
        self,
        private_key: PrivateKey,
        certificate: x509.Certificate,
        *,
        engine: Engine = DEFAULT_ENGINE,
    ) -> None:
        _check_engine(engine)
        if isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < PROFILE_MIN_RSA_BITS:
                raise SigningKeyUnsupported(
                    f"RSA key of {private_key.key_size} bits; at least {PROFILE_MIN_RSA_BITS}"
                )
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            if private_key.curve.name not in PROFILE_EC_CURVES:
                raise SigningKeyUnsupported(f"EC curve {private_key.curve.name} is not allowed")
        else:
            raise SigningKeyUnsupported("only EC and RSA keys can sign")
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if private_key.public_key().public_bytes(*spki) != certificate.public_key().public_bytes(
            *spki
        ):
            raise KeyCertificateMismatch()
        self._key = private_key
        self._certificate = certificate
        self._engine: Engine = engine

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def signature_method(self) -> str:
        """The signature method URI this signer uses."""
        return sigfast.signature_method_for(self._key)

    def sign(self, root: etree._Element) -> bytes:
        """The signed document (UTF-8 bytes with an XML declaration); ``root`` is not modified."""
        check_signable(root)
        if self._engine == "fast":
            return sigfast.sign(root, self._key, self._certificate)
        return sigxml.sign(root, self._key, self._certificate)

    def sign_bytes(self, data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> bytes:
        """Parse ``data`` with the hardened parser and sign it."""
        root = parse_xml(data, limits)
        sigprofile.check_canonical_size(data, root)
        return self.sign(root)
