"""The fast engine: the protocol's one signature profile in lxml + cryptography.

signxml is general (many algorithms, references, transforms) and re-parses a
document about six times per verification. Our profile is fixed (see
:mod:`gateway.core.signing.profile`), so this module does only what the profile
needs, on the tree the hardened parser already built:

* verify: exclusive C14N of ds:SignedInfo, check the signature value with
  ``cryptography`` (ECDSA values are raw ``r || s`` in XML-DSig and are
  converted to DER), detach the enveloped ds:Signature, exclusive C14N of the
  rest, compare its SHA-256 with the reference's DigestValue;
* sign: the same in reverse, building ds:Signature as the root's last child.

Structure, algorithms and certificates must already have been checked by the
caller (:func:`gateway.core.signing.verify`); this module never decides trust.
It is tested differentially against the signxml engine and xmlsec1
(tests/core/test_signing_differential.py, tests/test_xmlsec_interop.py).
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import b64encode
from copy import deepcopy

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from gateway.core.certs import PrivateKey
from gateway.core.errors import MalformedXML
from gateway.core.ns import DS_NS
from gateway.core.signing.errors import DigestMismatch, SignatureAlgorithmRefused, SignatureMismatch
from gateway.core.signing.profile import (
    ECDSA_SHA256,
    ENVELOPED,
    EXC_C14N,
    RSA_SHA256,
    SHA256,
    SignatureParts,
)

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def canonicalize(element: etree._Element) -> bytes:
    """Exclusive XML canonicalization 1.0, without comments, of ``element``'s subtree."""
    try:
        return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    except etree.C14NError:
        # libxml2 refuses e.g. relative namespace URIs.
        raise MalformedXML(
            "the document cannot be canonicalized (are all namespace URIs absolute?)"
        ) from None


def _scalar_bytes(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    return (key.curve.key_size + 7) // 8


def detach_enveloped(signature: etree._Element) -> None:
    """Remove ``signature`` from its parent, keeping its tail text in place.

    This is the enveloped-signature transform: the Signature element goes,
    the text around it stays where it was.
    """
    parent = signature.getparent()
    if parent is None:
        return
    tail = signature.tail
    previous = signature.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(signature)
    signature.tail = None


# --- verification -------------------------------------------------------------------


def verify_signature_value(
    certificate: x509.Certificate, method: str, signed_info_c14n: bytes, value: bytes
) -> None:
    """Check ``value`` over ``signed_info_c14n`` with the certificate's key, or raise."""
    key = certificate.public_key()
    try:
        if method == RSA_SHA256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, signed_info_c14n, padding.PKCS1v15(), hashes.SHA256())
        elif method == ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
            size = _scalar_bytes(key)
            if len(value) != 2 * size:
                raise SignatureMismatch(
                    f"an ECDSA signature value on this curve is {2 * size} bytes, not {len(value)}"
                )
            r = int.from_bytes(value[:size], "big")
            s = int.from_bytes(value[size:], "big")
            key.verify(encode_dss_signature(r, s), signed_info_c14n, ec.ECDSA(hashes.SHA256()))
        else:
            raise SignatureAlgorithmRefused(
                "the signature method does not match the certificate's key type"
            )
    except _CryptoInvalidSignature:
        raise SignatureMismatch(
            "the signature value does not verify with the certificate's key"
        ) from None


def verify(root: etree._Element, parts: SignatureParts) -> bytes:
    """Verify the checked signature ``parts`` of ``root``; return the signed bytes.

    The signed bytes are the exclusive canonical form of the document without
    its signature: exactly what the digest covers. ``root`` is modified (the
    signature is detached), so pass a tree nobody else reads.
    """
    signed_info_c14n = canonicalize(parts.signed_info)
    verify_signature_value(
        parts.certificate, parts.signature_method, signed_info_c14n, parts.signature_value
    )
    detach_enveloped(parts.signature)
    signed = canonicalize(root)
    if not hmac.compare_digest(hashlib.sha256(signed).digest(), parts.digest_value):
        raise DigestMismatch("the signed content does not match the signature's digest")
    return signed


# --- signing --------------------------------------------------------------------------


def signature_method_for(key: PrivateKey) -> str:
    """The profile's signature method for ``key``."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_SHA256
    return ECDSA_SHA256


def sign_value(key: PrivateKey, data: bytes) -> bytes:
    """The XML-DSig signature value of ``data``: PKCS#1 v1.5 for RSA, raw r||s for ECDSA."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    size = _scalar_bytes(key)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


def _certificate_text(certificate: x509.Certificate) -> str:
    # The PEM body: base64 in 64-column lines, as signxml and xmlsec1 write it.
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return "\n".join(lines) + "\n"


def sign(root: etree._Element, key: PrivateKey, certificate: x509.Certificate) -> bytes:
    """Sign a copy of ``root`` (enveloped, URI="", exc-C14N, SHA-256); return the document bytes.

    ``root`` itself is not modified. The caller has checked that the tree is
    signable (no signature yet, no comments or PIs, unique IDs) and that the
    key and certificate belong together.
    """
    document = deepcopy(root)
    document.tail = None
    digest = hashlib.sha256(canonicalize(document)).digest()

    signature = etree.SubElement(document, _ds("Signature"), nsmap={"ds": DS_NS})
    signed_info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=signature_method_for(key))
    reference = etree.SubElement(signed_info, _ds("Reference"), URI="")
    transforms = etree.SubElement(reference, _ds("Transforms"))
    etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED)
    etree.SubElement(transforms, _ds("Transform"), Algorithm=EXC_C14N)
    etree.SubElement(reference, _ds("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(reference, _ds("DigestValue")).text = b64encode(digest).decode("ascii")
    signature_value = etree.SubElement(signature, _ds("SignatureValue"))
    key_info = etree.SubElement(signature, _ds("KeyInfo"))
    x509_data = etree.SubElement(key_info, _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509Certificate")).text = _certificate_text(certificate)

    value = sign_value(key, canonicalize(signed_info))
    signature_value.text = b64encode(value).decode("ascii")
    return XML_DECLARATION + etree.tostring(
        document, encoding="UTF-8", xml_declaration=False, with_tail=False
    )
