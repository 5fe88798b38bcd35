"""The hostile corpus: documents the verifier must refuse, each with its error code.

Two kinds of case:

* static files in ``tests/vectors/hostile/`` (DOCTYPE, entities, XInclude,
  encodings, malformed XML): refused by the hardened parser before any
  signature is looked at; see :data:`STATIC_CASES`;
* built cases (:data:`BUILT_CASES`): each starts from a document freshly
  signed at test time (keys are generated in memory and never written to the
  repository) and breaks one rule: signature wrapping, key substitution,
  untrusted/expired/revoked certificates, refused algorithms and transforms,
  comment injection, duplicate IDs, size and depth bombs, schema-invalid
  documents.

:func:`all_cases` lists both as :class:`Case` objects for pytest
parametrization (``ids=[c.name for c in all_cases()]``); ``case.build(world)``
returns the bytes to verify, with the trust store and time to verify them at.
:func:`forge` is a deliberately permissive XML-DSig signer (any algorithm,
transform, reference or KeyInfo) used to make *cryptographically valid*
signatures that the profile must nevertheless refuse. :data:`BENIGN_VARIANTS`
are changes that do not alter the canonical form, which every engine must
accept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_lib
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.core import pki
from gateway.core.certs import TrustStore, fingerprint
from gateway.core.ns import AUTHORITY_URI_PREFIX, DS_NS
from gateway.core.signing import Signer
from gateway.core.signing.profile import ECDSA_SHA256, ENVELOPED, EXC_C14N, RSA_SHA256, SHA256

VECTORS = Path(__file__).parent
HOSTILE_DIR = VECTORS / "hostile"
DOCUMENTS_DIR = VECTORS / "documents"

#: The time every built case is verified at (certificates are made around it).
FIXED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

# Algorithm URIs the profile refuses.
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_10_COMMENTS = C14N_10 + "#WithComments"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ECDSA_SHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
RSA_PSS_SHA256 = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
EC_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"

_C14N_MODES = {
    EXC_C14N: (True, False),
    EXC_C14N_COMMENTS: (True, True),
    C14N_10: (False, False),
    C14N_10_COMMENTS: (False, True),
    C14N_11: (False, False),
}
_DIGESTS = {SHA256: hashlib.sha256, SHA1: hashlib.sha1, SHA512: hashlib.sha512}


def document(name: str) -> bytes:
    """An unsigned input document from ``tests/vectors/documents/``."""
    return (DOCUMENTS_DIR / name).read_bytes()


def parse(data: bytes) -> etree._Element:
    """Parse test input permissively (the hostile builders need comments etc.)."""
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def to_bytes(root: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(
        root, encoding="UTF-8", xml_declaration=False
    )


def ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


# --- keys and certificates ----------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, cn[:2]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IMI gateway"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def issue_custom(
    issuer: pki.Issued | None,
    key: pki.PrivateKey,
    *,
    subject: str,
    not_before: datetime,
    days: int,
    digital_signature: bool = True,
    is_ca: bool = False,
) -> pki.Issued:
    """A certificate with odd properties the production helpers never make.

    ``issuer=None`` makes it self-signed.
    """
    name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=not digital_signature,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(AUTHORITY_URI_PREFIX + "NO-HELSEDIR")]
            ),
            critical=False,
        )
    )
    signing_key = issuer.key if issuer else key
    return pki.Issued(key, builder.sign(signing_key, hashes.SHA256()))


@dataclass(frozen=True)
class World:
    """Keys, certificates and the trust store the built cases use (all in memory)."""

    now: datetime
    ca: pki.Issued
    ec: pki.Issued
    rsa: pki.Issued
    other_ca: pki.Issued
    other: pki.Issued
    expired: pki.Issued
    future: pki.Issued
    attacker: pki.Issued
    rsa1024: pki.Issued
    no_digital_signature: pki.Issued
    p521: pki.Issued
    trust: TrustStore = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trust", TrustStore(cas=(self.ca.certificate,)))

    def sign(
        self, data: bytes | etree._Element, issued: pki.Issued | None = None, engine: str = "fast"
    ) -> bytes:
        """Sign with the production signer (by default the EC national system)."""
        issued = issued or self.ec
        root = parse(data) if isinstance(data, bytes) else data
        signer = Signer(issued.key, issued.certificate, engine=engine)  # type: ignore[arg-type]
        return signer.sign(root)

    def signed_tree(
        self, name: str = "request.xml", issued: pki.Issued | None = None
    ) -> etree._Element:
        return parse(self.sign(document(name), issued))


def make_world(now: datetime = FIXED_NOW) -> World:
    """A fresh world: the node CA (NO), national systems, and the odd certificates."""
    long_ago = now - timedelta(days=3 * 365)
    ca = pki.make_ca("NO", now=long_ago, days=3650)
    other_ca = pki.make_ca("SE", now=long_ago, days=3650)
    return World(
        now=now,
        ca=ca,
        ec=pki.issue_national_system(ca, "NO-HELSEDIR", now=now - timedelta(days=30)),
        rsa=pki.issue_national_system(ca, "NO-HELSEDIR", now=now - timedelta(days=30), kind="rsa"),
        other_ca=other_ca,
        other=pki.issue_national_system(other_ca, "SE-UHR", now=now - timedelta(days=30)),
        expired=pki.issue_national_system(
            ca, "NO-HELSEDIR", now=now - timedelta(days=400), days=365
        ),
        future=pki.issue_national_system(ca, "NO-HELSEDIR", now=now + timedelta(days=10)),
        attacker=issue_custom(
            None, pki.generate_key("ec"), subject="NO-HELSEDIR", not_before=long_ago, days=3650
        ),
        rsa1024=issue_custom(
            ca,
            rsa.generate_private_key(public_exponent=65537, key_size=1024),
            subject="NO-WEAKKEY",
            not_before=now - timedelta(days=30),
            days=365,
        ),
        no_digital_signature=issue_custom(
            ca,
            pki.generate_key("ec"),
            subject="NO-NOSIGN",
            not_before=now - timedelta(days=30),
            days=365,
            digital_signature=False,
        ),
        p521=issue_custom(
            ca,
            ec.generate_private_key(ec.SECP521R1()),
            subject="NO-P521",
            not_before=now - timedelta(days=30),
            days=365,
        ),
    )


# --- a permissive signer -------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """One reference of a forged signature."""

    uri: str = ""
    transforms: tuple[str, ...] | None = (ENVELOPED, EXC_C14N)
    digest: str = SHA256
    inclusive_prefixes: str | None = None


def _c14n(element: etree._Element, algorithm: str, prefixes: str | None = None) -> bytes:
    exclusive, comments = _C14N_MODES.get(algorithm, (False, False))
    return etree.tostring(
        element,
        method="c14n",
        exclusive=exclusive,
        with_comments=comments,
        inclusive_ns_prefixes=prefixes.split() if prefixes else None,
    )


def _reference_digest(root: etree._Element, ref: Ref) -> bytes:
    if ref.uri == "":
        target = root
    elif ref.uri.startswith("#"):
        matches = root.xpath(
            "//*[@Id=$v or @ID=$v or @id=$v or @xml:id=$v]",
            v=ref.uri[1:],
            namespaces={"xml": "http://www.w3.org/XML/1998/namespace"},
        )
        target = matches[0] if matches else root
    else:
        target = root
    algorithm = C14N_10
    for transform in ref.transforms or ():
        if transform in _C14N_MODES:
            algorithm = transform
    data = _c14n(target, algorithm, ref.inclusive_prefixes)
    return _DIGESTS.get(ref.digest, hashlib.sha256)(data).digest()


def _raw_ecdsa(
    key: ec.EllipticCurvePrivateKey, data: bytes, algorithm: hashes.HashAlgorithm
) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def signature_value(method: str, key: object, data: bytes) -> bytes:
    """A signature value for ``method``, correct as XML-DSig defines it."""
    if method in (HMAC_SHA256, HMAC_SHA1):
        assert isinstance(key, bytes)
        return hmac_lib.new(key, data, "sha256" if method == HMAC_SHA256 else "sha1").digest()
    if isinstance(key, rsa.RSAPrivateKey):
        if method == RSA_PSS_SHA256:
            return key.sign(
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        digest: hashes.HashAlgorithm = hashes.SHA1() if method == RSA_SHA1 else hashes.SHA256()
        return key.sign(data, padding.PKCS1v15(), digest)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _raw_ecdsa(key, data, hashes.SHA1() if method == ECDSA_SHA1 else hashes.SHA256())


def _cert_text(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def forge(
    root: etree._Element,
    key: object,
    certs: Sequence[x509.Certificate] = (),
    *,
    method: str | None = None,
    c14n: str = EXC_C14N,
    c14n_prefixes: str | None = None,
    refs: Sequence[Ref] = (Ref(),),
    key_value: bool = False,
    default_namespace: bool = False,
    hmac_output_length: int | None = None,
) -> etree._Element:
    """Sign ``root`` in place with whatever the arguments say; return ``root``.

    The signature is cryptographically correct for what it declares (digest
    of each reference after its transforms, SignatureValue over SignedInfo),
    except where a transform cannot be applied (XPath, XSLT), whose digest is
    computed as if it were absent.
    """
    if method is None:
        method = RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ECDSA_SHA256
    nsmap = {None: DS_NS} if default_namespace else {"ds": DS_NS}
    signature = etree.Element(ds("Signature"), nsmap=nsmap)  # type: ignore[dict-item]
    signed_info = etree.SubElement(signature, ds("SignedInfo"))
    c14n_el = etree.SubElement(signed_info, ds("CanonicalizationMethod"), Algorithm=c14n)
    if c14n_prefixes is not None:
        etree.SubElement(c14n_el, f"{{{EC_NS}}}InclusiveNamespaces", PrefixList=c14n_prefixes)
    method_el = etree.SubElement(signed_info, ds("SignatureMethod"), Algorithm=method)
    if hmac_output_length is not None:
        etree.SubElement(method_el, ds("HMACOutputLength")).text = str(hmac_output_length)
    for ref in refs:
        reference = etree.SubElement(signed_info, ds("Reference"), URI=ref.uri)
        if ref.transforms is not None:
            transforms = etree.SubElement(reference, ds("Transforms"))
            for algorithm in ref.transforms:
                transform = etree.SubElement(transforms, ds("Transform"), Algorithm=algorithm)
                if algorithm == XPATH:
                    etree.SubElement(transform, ds("XPath")).text = "not(ancestor-or-self::*)"
                elif algorithm == XSLT:
                    stylesheet = etree.SubElement(
                        transform,
                        "{http://www.w3.org/1999/XSL/Transform}stylesheet",
                        version="1.0",
                    )
                    etree.SubElement(
                        stylesheet, "{http://www.w3.org/1999/XSL/Transform}template", match="/"
                    )
                elif algorithm in (EXC_C14N, EXC_C14N_COMMENTS) and ref.inclusive_prefixes:
                    etree.SubElement(
                        transform,
                        f"{{{EC_NS}}}InclusiveNamespaces",
                        PrefixList=ref.inclusive_prefixes,
                    )
        etree.SubElement(reference, ds("DigestMethod"), Algorithm=ref.digest)
        etree.SubElement(reference, ds("DigestValue")).text = base64.b64encode(
            _reference_digest(root, ref)
        ).decode()
    value_el = etree.SubElement(signature, ds("SignatureValue"))
    if certs or key_value:
        key_info = etree.SubElement(signature, ds("KeyInfo"))
        if key_value:
            _key_value(key_info, key)
        if certs:
            x509_data = etree.SubElement(key_info, ds("X509Data"))
            for cert in certs:
                etree.SubElement(x509_data, ds("X509Certificate")).text = _cert_text(cert)
    root.append(signature)
    value = signature_value(method, key, _c14n(signed_info, c14n, c14n_prefixes))
    value_el.text = base64.b64encode(value).decode()
    return root


def _key_value(key_info: etree._Element, key: object) -> None:
    key_value = etree.SubElement(key_info, ds("KeyValue"))
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        rsa_kv = etree.SubElement(key_value, ds("RSAKeyValue"))
        for local, number in (("Modulus", numbers.n), ("Exponent", numbers.e)):
            raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
            etree.SubElement(rsa_kv, ds(local)).text = base64.b64encode(raw).decode()
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        ec_kv = etree.SubElement(
            key_value, f"{{{DSIG11_NS}}}ECKeyValue", nsmap={"dsig11": DSIG11_NS}
        )
        etree.SubElement(ec_kv, f"{{{DSIG11_NS}}}NamedCurve", URI="urn:oid:1.2.840.10045.3.1.7")
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        etree.SubElement(ec_kv, f"{{{DSIG11_NS}}}PublicKey").text = base64.b64encode(point).decode()


def forge_doc(
    w: World, name: str = "request.xml", issued: pki.Issued | None = None, **kw: object
) -> bytes:
    """``forge`` the document ``name`` with ``issued`` (default: the EC national system)."""
    issued = issued or w.ec
    kw.setdefault("certs", (issued.certificate,))
    return to_bytes(forge(parse(document(name)), issued.key, **kw))  # type: ignore[arg-type]


# --- the cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """What a case hands to the verifier."""

    data: bytes
    trust: TrustStore | None = None  # None: the world's trust store
    now: datetime | None = None  # None: the world's now


@dataclass(frozen=True)
class Case:
    """One hostile document and the error code it must be refused with."""

    name: str
    code: str
    description: str
    build: Callable[[World], Built]
    #: Verify with verify_and_validate (schema cases) instead of verify.
    validate: bool = False


BUILT_CASES: list[Case] = []


def case(
    name: str, code: str, *, validate: bool = False
) -> Callable[[Callable[[World], bytes | Built]], Callable[[World], bytes | Built]]:
    """Register a builder as a hostile case; its docstring is the case's description."""

    def register(func: Callable[[World], bytes | Built]) -> Callable[[World], bytes | Built]:
        def build(w: World) -> Built:
            result = func(w)
            return result if isinstance(result, Built) else Built(result)

        BUILT_CASES.append(
            Case(name, code, (func.__doc__ or name).strip().splitlines()[0], build, validate)
        )
        return func

    return register


def _signature(root: etree._Element) -> etree._Element:
    found = root.find(f".//{ds('Signature')}")
    assert found is not None
    return found


def _find(root: etree._Element, local: str) -> etree._Element:
    found = root.find(f".//{{urn:imi-gateway:protocol:1}}{local}")
    assert found is not None
    return found


def _forged_content(root: etree._Element) -> None:
    """Change what the document says (the receiver authority)."""
    _find(root, "ReceiverAuthority").text = "SE-EVIL"


# signature wrapping -------------------------------------------------------------------


@case("wrapping-signed-doc-under-new-root", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The signed document is wrapped inside a forged root; the signature is no longer a child of the root."""
    signed = w.signed_tree()
    forged = deepcopy(signed)
    forged.remove(_signature(forged))
    _forged_content(forged)
    forged.append(signed)
    return to_bytes(forged)


@case("wrapping-signature-moved-to-forged-root", "SIGNATURE_DIGEST_MISMATCH")
def _(w: World) -> bytes:
    """A forged root takes the signature as its last child and hides the signed original inside."""
    signed = w.signed_tree()
    signature = _signature(signed)
    signed.remove(signature)
    forged = deepcopy(signed)
    _forged_content(forged)
    holder = etree.SubElement(forged, "{urn:imi-gateway:protocol:1}Attachment")
    holder.append(signed)
    forged.append(signature)
    return to_bytes(forged)


@case("wrapping-forged-copy-before-signed-content", "SIGNATURE_DIGEST_MISMATCH")
def _(w: World) -> bytes:
    """A forged Header is inserted before the signed one (readers taking the first would be fooled)."""
    signed = w.signed_tree()
    header = deepcopy(_find(signed, "Header"))
    header.find("{urn:imi-gateway:protocol:1}ReceiverAuthority").text = "SE-EVIL"  # type: ignore[union-attr]
    signed.insert(0, header)
    return to_bytes(signed)


@case("wrapping-forged-copy-after-signature", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """A forged element follows the signature (readers taking the last would be fooled)."""
    signed = w.signed_tree()
    header = deepcopy(_find(signed, "Header"))
    signed.append(header)
    return to_bytes(signed)


@case("wrapping-signature-moved-into-child", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The signature is moved from the root into the Header."""
    signed = w.signed_tree()
    _find(signed, "Header").append(_signature(signed))
    return to_bytes(signed)


@case("signature-first-child", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The (still valid) enveloped signature is moved to be the root's first child."""
    signed = w.signed_tree()
    signed.insert(0, _signature(signed))
    return to_bytes(signed)


@case("signature-removed", "SIGNATURE_MISSING")
def _(w: World) -> bytes:
    """The signature is stripped off."""
    signed = w.signed_tree()
    signed.remove(_signature(signed))
    return to_bytes(signed)


@case("signature-wrong-namespace", "SIGNATURE_MISSING")
def _(w: World) -> bytes:
    """The Signature element is in a look-alike namespace."""
    data = w.sign(document("request.xml"))
    return data.replace(
        b"http://www.w3.org/2000/09/xmldsig#", b"http://www.w3.org/2000/09/xmldsig#x"
    )


@case("two-signatures", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """A second, attacker's signature is added next to the valid one."""
    signed = w.signed_tree()
    extra = deepcopy(_signature(signed))
    signed.insert(len(signed) - 1, extra)
    return to_bytes(signed)


@case("enveloping-signature", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The document is carried inside ds:Object of an enveloping signature."""
    signed = w.signed_tree()
    signature = _signature(signed)
    signed.remove(signature)
    obj = etree.SubElement(signature, ds("Object"))
    obj.append(signed)
    return to_bytes(signature)


@case("signature-with-object", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """A ds:Object carrying forged content is added to the signature."""
    signed = w.signed_tree()
    obj = etree.SubElement(_signature(signed), ds("Object"))
    header = deepcopy(_find(signed, "Header"))
    obj.append(header)
    return to_bytes(signed)


@case("text-after-signature", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """Unsigned-looking text follows the signature."""
    signed = w.signed_tree()
    _signature(signed).tail = "forged text"
    return to_bytes(signed)


# tampering ----------------------------------------------------------------------------


@case("content-altered", "SIGNATURE_DIGEST_MISMATCH")
def _(w: World) -> bytes:
    """One character of the signed content is changed."""
    data = w.sign(document("request.xml"))
    return data.replace(b"<ReceiverAuthority>PT-OMD", b"<ReceiverAuthority>PT-OMX")


@case("content-altered-digest-updated", "SIGNATURE_MISMATCH")
def _(w: World) -> bytes:
    """The content is changed and the DigestValue recomputed: SignedInfo no longer matches its signature."""
    signed = w.signed_tree()
    _forged_content(signed)
    signature = _signature(signed)
    signed.remove(signature)
    digest = hashlib.sha256(etree.tostring(signed, method="c14n", exclusive=True)).digest()
    signed.append(signature)
    signature.find(f".//{ds('DigestValue')}").text = base64.b64encode(digest).decode()  # type: ignore[union-attr]
    return to_bytes(signed)


@case("signature-value-bit-flipped", "SIGNATURE_MISMATCH")
def _(w: World) -> bytes:
    """One bit of the signature value is flipped."""
    signed = w.signed_tree()
    value_el = _signature(signed).find(ds("SignatureValue"))
    assert value_el is not None
    raw = bytearray(base64.b64decode(value_el.text or ""))
    raw[5] ^= 0x01
    value_el.text = base64.b64encode(bytes(raw)).decode()
    return to_bytes(signed)


@case("ecdsa-der-signature-value", "SIGNATURE_MISMATCH")
def _(w: World) -> bytes:
    """An ECDSA signature value in DER instead of XML-DSig's raw r||s."""
    signed = w.signed_tree()
    signature = _signature(signed)
    value_el = signature.find(ds("SignatureValue"))
    assert value_el is not None
    signed_info = signature.find(ds("SignedInfo"))
    assert signed_info is not None
    key = w.ec.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.sign(
        etree.tostring(signed_info, method="c14n", exclusive=True), ec.ECDSA(hashes.SHA256())
    )
    value_el.text = base64.b64encode(der).decode()
    return to_bytes(signed)


@case("signature-value-not-base64", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The signature value is not base64."""
    signed = w.signed_tree()
    _signature(signed).find(ds("SignatureValue")).text = "not*base64!"  # type: ignore[union-attr]
    return to_bytes(signed)


@case("signed-info-whitespace-added", "SIGNATURE_MISMATCH")
def _(w: World) -> bytes:
    """Whitespace added inside SignedInfo changes its canonical form."""
    signed = w.signed_tree()
    signed_info = _signature(signed).find(ds("SignedInfo"))
    assert signed_info is not None
    signed_info[0].tail = "\n  "
    return to_bytes(signed)


@case("comment-injection", "XML_FORBIDDEN_CONSTRUCT")
def _(w: World) -> bytes:
    """A comment splits signed text (exc-C14N without comments ignores it: the truncation attack)."""
    data = w.sign(document("request.xml"))
    injected = data.replace(b"<GivenNames>Ana Sofia", b"<GivenNames>Ana<!----> Sofia", 1)
    assert injected != data
    return injected


@case("comment-outside-root", "XML_FORBIDDEN_CONSTRUCT")
def _(w: World) -> bytes:
    """A comment after the root element (outside what any reference covers)."""
    return w.sign(document("request.xml")) + b"<!-- trailing -->"


@case("processing-instruction-injection", "XML_FORBIDDEN_CONSTRUCT")
def _(w: World) -> bytes:
    """A processing instruction inside signed content."""
    data = w.sign(document("request.xml"))
    return data.replace(b"<LegislationArea>", b"<?evil payload?><LegislationArea>", 1)


@case("relative-namespace-uri", "XML_MALFORMED")
def _(w: World) -> bytes:
    """A relative namespace URI, which canonicalization cannot handle."""
    data = w.sign(document("request.xml"))
    return data.replace(b"<LegislationArea>", b'<r:x xmlns:r="relative"/><LegislationArea>', 1)


# key substitution and certificates ---------------------------------------------------------


@case("keyinfo-keyvalue-only", "SIGNATURE_KEYINFO_REFUSED")
def _(w: World) -> bytes:
    """The attacker signs forged content and supplies only its own KeyValue."""
    root = parse(document("request.xml"))
    _forged_content(root)
    return to_bytes(forge(root, w.attacker.key, key_value=True))


@case("keyinfo-keyvalue-beside-certificate", "SIGNATURE_KEYINFO_REFUSED")
def _(w: World) -> bytes:
    """A KeyValue is carried beside the trusted certificate."""
    return forge_doc(w, key_value=True)


@case("keyinfo-untrusted-lookalike-certificate", "CERTIFICATE_UNTRUSTED")
def _(w: World) -> bytes:
    """Forged content signed by a self-signed certificate with the real signer's name."""
    root = parse(document("request.xml"))
    _forged_content(root)
    return to_bytes(forge(root, w.attacker.key, (w.attacker.certificate,)))


@case("keyinfo-trusted-certificate-wrong-key", "SIGNATURE_MISMATCH")
def _(w: World) -> bytes:
    """Forged content signed by the attacker's key, with the trusted certificate in KeyInfo."""
    root = parse(document("request.xml"))
    _forged_content(root)
    return to_bytes(forge(root, w.attacker.key, (w.ec.certificate,)))


@case("keyinfo-two-certificates", "SIGNATURE_KEYINFO_REFUSED")
def _(w: World) -> bytes:
    """Two certificates in X509Data (which one signed?)."""
    return forge_doc(w, certs=(w.ec.certificate, w.attacker.certificate))


@case("keyinfo-missing", "SIGNATURE_KEYINFO_REFUSED")
def _(w: World) -> bytes:
    """No KeyInfo at all."""
    return forge_doc(w, certs=())


@case("keyinfo-garbage-certificate", "SIGNATURE_KEYINFO_REFUSED")
def _(w: World) -> bytes:
    """X509Certificate holds base64 that is not a certificate."""
    signed = w.signed_tree()
    _signature(signed).find(f".//{ds('X509Certificate')}").text = "AAAA"  # type: ignore[union-attr]
    return to_bytes(signed)


@case("keyinfo-oversize-certificate", "SIGNATURE_KEYINFO_REFUSED")
def _(w: World) -> bytes:
    """X509Certificate holds 20 KB (a memory lever if certificates were cached unchecked)."""
    signed = w.signed_tree()
    cert = _signature(signed).find(f".//{ds('X509Certificate')}")
    assert cert is not None
    cert.text = base64.b64encode(bytes(20000)).decode()
    return to_bytes(signed)


@case("certificate-from-other-ca", "CERTIFICATE_UNTRUSTED")
def _(w: World) -> bytes:
    """Signed by a national system of another node's CA."""
    return w.sign(document("request.xml"), w.other)


@case("certificate-ca-as-signer", "CERTIFICATE_UNTRUSTED")
def _(w: World) -> bytes:
    """Signed with the trusted CA's own key and certificate."""
    return forge_doc(w, issued=w.ca)


@case("certificate-expired", "CERTIFICATE_EXPIRED")
def _(w: World) -> bytes:
    """Signed with a certificate that expired before the verification time."""
    return w.sign(document("request.xml"), w.expired)


@case("certificate-not-yet-valid", "CERTIFICATE_NOT_YET_VALID")
def _(w: World) -> bytes:
    """Signed with a certificate whose validity starts after the verification time."""
    return w.sign(document("request.xml"), w.future)


@case("certificate-revoked", "CERTIFICATE_REVOKED")
def _(w: World) -> Built:
    """Signed with a certificate the node has revoked."""
    return Built(
        w.sign(document("request.xml")),
        trust=w.trust.with_revoked(fingerprint(w.ec.certificate)),
    )


@case("certificate-ca-revoked", "CERTIFICATE_REVOKED")
def _(w: World) -> Built:
    """Signed with a certificate whose CA the node has revoked."""
    return Built(
        w.sign(document("request.xml")),
        trust=TrustStore(
            cas=(w.ca.certificate,), revoked=frozenset({fingerprint(w.ca.certificate)})
        ),
    )


@case("certificate-pinned-elsewhere", "CERTIFICATE_UNTRUSTED")
def _(w: World) -> Built:
    """Signed by a valid national system, but the verifier pins only another certificate."""
    return Built(
        w.sign(document("request.xml")),
        trust=TrustStore(pinned=(w.rsa.certificate,)),
    )


@case("certificate-rsa-1024", "CERTIFICATE_KEY_REFUSED")
def _(w: World) -> bytes:
    """Signed with a CA-issued RSA-1024 key."""
    return forge_doc(w, issued=w.rsa1024)


@case("certificate-p521", "CERTIFICATE_KEY_REFUSED")
def _(w: World) -> bytes:
    """Signed with a CA-issued key on a curve outside the profile (P-521)."""
    return forge_doc(w, issued=w.p521)


@case("certificate-without-digital-signature-usage", "CERTIFICATE_KEY_REFUSED")
def _(w: World) -> bytes:
    """Signed with a certificate whose key usage excludes digital signatures."""
    return forge_doc(w, issued=w.no_digital_signature)


@case("method-does-not-match-key", "SIGNATURE_ALGORITHM_REFUSED")
def _(w: World) -> bytes:
    """SignatureMethod says RSA-SHA256 but the certificate holds an EC key."""
    signed = w.signed_tree()
    _signature(signed).find(f".//{ds('SignatureMethod')}").set("Algorithm", RSA_SHA256)  # type: ignore[union-attr]
    return to_bytes(signed)


# algorithms ---------------------------------------------------------------------------


@case("method-rsa-sha1", "SIGNATURE_ALGORITHM_REFUSED")
def _(w: World) -> bytes:
    """A valid RSA-SHA1 signature."""
    return forge_doc(w, issued=w.rsa, method=RSA_SHA1)


@case("method-ecdsa-sha1", "SIGNATURE_ALGORITHM_REFUSED")
def _(w: World) -> bytes:
    """A valid ECDSA-SHA1 signature."""
    return forge_doc(w, method=ECDSA_SHA1)


@case("method-hmac-sha256", "SIGNATURE_ALGORITHM_REFUSED")
def _(w: World) -> bytes:
    """An HMAC-SHA256 'signature' (anyone with the shared key could make it)."""
    return to_bytes(forge(parse(document("request.xml")), b"shared secret", method=HMAC_SHA256))


@case("method-hmac-sha1-truncated", "SIGNATURE_ALGORITHM_REFUSED")
def _(w: World) -> bytes:
    """HMAC-SHA1 with HMACOutputLength (the truncation attack, CVE-2009-0217)."""
    return to_bytes(
        forge(
            parse(document("request.xml")),
            b"shared secret",
            method=HMAC_SHA1,
            hmac_output_length=8,
        )
    )


@case("method-rsa-pss", "SIGNATURE_ALGORITHM_REFUSED")
def _(w: World) -> bytes:
    """A valid RSA-PSS (SHA256-RSA-MGF1) signature: sound, but outside the profile."""
    return forge_doc(w, issued=w.rsa, method=RSA_PSS_SHA256)


@case("digest-sha1", "SIGNATURE_DIGEST_REFUSED")
def _(w: World) -> bytes:
    """The reference digest is SHA-1."""
    return forge_doc(w, refs=(Ref(digest=SHA1),))


@case("digest-sha512", "SIGNATURE_DIGEST_REFUSED")
def _(w: World) -> bytes:
    """The reference digest is SHA-512 (sound, but outside the profile)."""
    return forge_doc(w, refs=(Ref(digest=SHA512),))


@case("c14n-with-comments", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """SignedInfo canonicalization is exclusive C14N #WithComments."""
    return forge_doc(w, c14n=EXC_C14N_COMMENTS)


@case("c14n-inclusive", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """SignedInfo canonicalization is inclusive C14N 1.0."""
    return forge_doc(w, c14n=C14N_10)


@case("c14n-inclusive-namespaces", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """SignedInfo canonicalization carries an InclusiveNamespaces PrefixList."""
    return forge_doc(w, c14n_prefixes="ds")


@case("transform-with-comments", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """The reference transform is exclusive C14N #WithComments."""
    return forge_doc(w, refs=(Ref(transforms=(ENVELOPED, EXC_C14N_COMMENTS)),))


@case("transform-inclusive-c14n", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """The reference transform is inclusive C14N 1.1."""
    return forge_doc(w, refs=(Ref(transforms=(ENVELOPED, C14N_11)),))


@case("transform-inclusive-namespaces", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """The exclusive C14N transform carries an InclusiveNamespaces PrefixList."""
    return forge_doc(w, refs=(Ref(inclusive_prefixes="xsi"),))


@case("transform-xslt", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """An XSLT transform (arbitrary computation, and it can hide what is signed)."""
    return forge_doc(w, refs=(Ref(transforms=(ENVELOPED, XSLT, EXC_C14N)),))


@case("transform-xpath", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """An XPath filter transform (selects what is signed)."""
    return forge_doc(w, refs=(Ref(transforms=(ENVELOPED, XPATH, EXC_C14N)),))


@case("transform-xpath-filter2", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """An XPath Filter 2.0 transform."""
    return forge_doc(w, refs=(Ref(transforms=(XPATH_FILTER2, EXC_C14N)),))


@case("transform-unknown", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """A transform with an unknown algorithm."""
    return forge_doc(w, refs=(Ref(transforms=(ENVELOPED, "urn:example:mystery", EXC_C14N)),))


@case("transform-base64", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """A base64 transform."""
    return forge_doc(w, refs=(Ref(transforms=(ENVELOPED, BASE64)),))


@case("transform-enveloped-missing", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """Only exclusive C14N, no enveloped-signature transform."""
    return forge_doc(w, refs=(Ref(transforms=(EXC_C14N,)),))


@case("transforms-reversed", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """The two allowed transforms in the wrong order."""
    return forge_doc(w, refs=(Ref(transforms=(EXC_C14N, ENVELOPED)),))


@case("transforms-absent", "SIGNATURE_TRANSFORM_REFUSED")
def _(w: World) -> bytes:
    """No Transforms element: the canonicalization would be implicit."""
    return forge_doc(w, refs=(Ref(transforms=None),))


# references and IDs ---------------------------------------------------------------------


@case("two-references", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """A second reference to an element by Id."""
    root = parse(document("request.xml"))
    _find(root, "Header").set("Id", "h")
    return to_bytes(forge(root, w.ec.key, (w.ec.certificate,), refs=(Ref(), Ref(uri="#h"))))


@case("reference-by-id", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The one reference points at an element by Id instead of the whole document."""
    root = parse(document("request.xml"))
    _find(root, "Header").set("Id", "h")
    return to_bytes(forge(root, w.ec.key, (w.ec.certificate,), refs=(Ref(uri="#h"),)))


@case("reference-external-uri", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The reference points at an external resource."""
    return forge_doc(w, refs=(Ref(uri="http://127.0.0.1:9/doc.xml"),))


@case("reference-xpointer", "SIGNATURE_STRUCTURE")
def _(w: World) -> bytes:
    """The reference is an XPointer expression."""
    return forge_doc(w, refs=(Ref(uri="#xpointer(/)"),))


@case("duplicate-id-attributes", "XML_DUPLICATE_ID")
def _(w: World) -> bytes:
    """Two elements carry the same value in Id and ID."""
    root = parse(document("request.xml"))
    _find(root, "Header").set("Id", "x1")
    _find(root, "PersonConcerned").set("ID", "x1")
    return to_bytes(forge(root, w.ec.key, (w.ec.certificate,)))


@case("duplicate-xml-id", "XML_DUPLICATE_ID")
def _(w: World) -> bytes:
    """Two elements carry the same xml:id and id."""
    root = parse(document("request.xml"))
    _find(root, "Header").set("{http://www.w3.org/XML/1998/namespace}id", "x1")
    _find(root, "LegislationArea").set("id", "x1")
    return to_bytes(forge(root, w.ec.key, (w.ec.certificate,)))


# size and depth ---------------------------------------------------------------------------


@case("oversize-body", "DOCUMENT_TOO_LARGE")
def _(w: World) -> bytes:
    """A correctly signed document over the 16 MiB cap."""
    root = parse(document("unknown-type.xml"))
    etree.SubElement(root, "{urn:imi-gateway:protocol:1}Blob").text = "A" * (16 * 1024 * 1024)
    return w.sign(root)


@case("excessive-depth", "XML_TOO_DEEP")
def _(w: World) -> bytes:
    """A correctly signed document nested 40 deep (the cap is 32)."""
    root = parse(document("unknown-type.xml"))
    parent = root
    for _ in range(40):
        parent = etree.SubElement(parent, "{urn:imi-gateway:protocol:1}Nest")
    return w.sign(root)


@case("excessive-depth-libxml2", "XML_TOO_DEEP")
def _(w: World) -> bytes:
    """Nesting of 5000 elements, past libxml2's own limit."""
    return b"<a>" * 5000 + b"</a>" * 5000


@case("namespace-amplification", "DOCUMENT_TOO_LARGE")
def _(w: World) -> bytes:
    """A long namespace declared once, used by many elements: exclusive C14N would repeat it 20,000 times."""
    root = etree.Element(
        "{urn:imi-gateway:protocol:1}Request",
        nsmap={None: "urn:imi-gateway:protocol:1", "p": "urn:" + "x" * 4000},  # type: ignore[dict-item]
    )
    holder = etree.SubElement(root, "{urn:imi-gateway:protocol:1}Items")
    for _ in range(20000):
        etree.SubElement(holder, "{urn:" + "x" * 4000 + "}a")
    # Signed with forge: the production signer would canonicalize it (that is the bomb).
    data = to_bytes(root)
    return data.replace(
        b"</Request>", b'<ds:Signature xmlns:ds="' + DS_NS.encode() + b'"/></Request>'
    )


# schema -----------------------------------------------------------------------------------


@case("schema-invalid-but-signed", "SCHEMA_INVALID", validate=True)
def _(w: World) -> bytes:
    """A correctly signed Request that lacks its QuestionSet."""
    return w.sign(document("request-schema-invalid.xml"))


@case("unknown-document-type-signed", "DOCUMENT_TYPE_UNKNOWN", validate=True)
def _(w: World) -> bytes:
    """A correctly signed document of a type the protocol does not have."""
    return w.sign(document("unknown-type.xml"))


# --- static files --------------------------------------------------------------------------

#: Static hostile files and the code each must be refused with.
STATIC_CASES: dict[str, str] = {
    "xxe-external-entity.xml": "XML_FORBIDDEN_CONSTRUCT",
    "xxe-parameter-entity.xml": "XML_FORBIDDEN_CONSTRUCT",
    "billion-laughs.xml": "XML_FORBIDDEN_CONSTRUCT",
    "external-dtd.xml": "XML_FORBIDDEN_CONSTRUCT",
    "xinclude.xml": "XML_FORBIDDEN_CONSTRUCT",
    "xinclude-2003.xml": "XML_FORBIDDEN_CONSTRUCT",
    "undefined-entity.xml": "XML_MALFORMED",
    "malformed-unclosed.xml": "XML_MALFORMED",
    "malformed-two-roots.xml": "XML_MALFORMED",
    "latin1-declared.xml": "XML_MALFORMED",
    "xml-1.1.xml": "XML_MALFORMED",
    "utf16-bom.xml": "XML_MALFORMED",
    "utf16le-no-bom.xml": "XML_MALFORMED",
    "utf16be-no-bom.xml": "XML_MALFORMED",
}


def _static(name: str) -> Callable[[World], Built]:
    return lambda w: Built((HOSTILE_DIR / name).read_bytes())


def all_cases() -> list[Case]:
    """Every hostile case, static files first."""
    static = [
        Case(f"file:{name}", code, f"static file tests/vectors/hostile/{name}", _static(name))
        for name, code in sorted(STATIC_CASES.items())
    ]
    return static + BUILT_CASES


# --- benign variants -------------------------------------------------------------------------


def _benign_attribute_order(data: bytes) -> bytes:
    return data.replace(b'<ds:Reference URI="">', b"<ds:Reference  URI = ''>")


def _benign_char_refs(data: bytes) -> bytes:
    return data.replace(b"<FamilyName>Ferreira", b"<FamilyName>&#70;erreira", 1)


def _benign_empty_element(data: bytes) -> bytes:
    return data.replace(
        b'<Question code="PQD-DOCTOR-001"/>', b'<Question code="PQD-DOCTOR-001"></Question>', 1
    )


def _benign_unused_namespace(data: bytes) -> bytes:
    return data.replace(
        b'<Request xmlns="urn:imi-gateway:protocol:1">',
        b'<Request xmlns="urn:imi-gateway:protocol:1" xmlns:unused="urn:example:unused">',
        1,
    )


def _benign_bom(data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


def _benign_no_declaration(data: bytes) -> bytes:
    return data.split(b"?>", 1)[1].lstrip()


def _benign_cdata(data: bytes) -> bytes:
    return data.replace(b"<GivenNames>Ana Sofia", b"<GivenNames><![CDATA[Ana]]> Sofia", 1)


def _benign_crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


#: Changes that keep the canonical form (so the signature stays valid): every
#: engine must still accept the document.
BENIGN_VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "attribute-spacing-and-quotes": _benign_attribute_order,
    "character-reference": _benign_char_refs,
    "empty-element-pair": _benign_empty_element,
    "unused-namespace-declaration": _benign_unused_namespace,
    "utf8-byte-order-mark": _benign_bom,
    "no-xml-declaration": _benign_no_declaration,
    "cdata-section": _benign_cdata,
    "crlf-line-ends": _benign_crlf,
}
