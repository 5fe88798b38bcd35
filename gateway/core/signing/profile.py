"""The protocol's one XML-DSig profile, and the structural checks that enforce it.

The only signature form the protocol knows (docs/signatures.md)::

    <Root xmlns="urn:imi-gateway:protocol:1">
      ... signed content ...
      <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">   last child of the root
        <ds:SignedInfo>
          <ds:CanonicalizationMethod Algorithm="...xml-exc-c14n#"/>
          <ds:SignatureMethod Algorithm="...rsa-sha256 | ...ecdsa-sha256"/>
          <ds:Reference URI="">                                    exactly one, the whole document
            <ds:Transforms>
              <ds:Transform Algorithm="...#enveloped-signature"/>
              <ds:Transform Algorithm="...xml-exc-c14n#"/>
            </ds:Transforms>
            <ds:DigestMethod Algorithm="...xmlenc#sha256"/>
            <ds:DigestValue>...</ds:DigestValue>
          </ds:Reference>
        </ds:SignedInfo>
        <ds:SignatureValue>...</ds:SignatureValue>
        <ds:KeyInfo><ds:X509Data><ds:X509Certificate>...</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      </ds:Signature>
    </Root>

:func:`check_structure` takes a tree that :func:`gateway.core.xmlparse.parse_xml`
produced and returns the parts of its signature, or raises the stable error
for the first rule broken. It does no cryptography and trusts nothing: the
certificate it returns is only a *candidate*, to be checked against the
node's trust store. :func:`check_unique_ids` refuses duplicate ID values.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode, b64encode
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from lxml import etree

from gateway.core.errors import DocumentTooLarge, DuplicateId, ForbiddenXMLConstruct
from gateway.core.ns import DS_NS
from gateway.core.signing.errors import (
    SignatureAlgorithmRefused,
    SignatureDigestRefused,
    SignatureKeyInfoRefused,
    SignatureMissing,
    SignatureStructure,
    SignatureTransformRefused,
)
from gateway.core.xmlparse import hardened_parser

# --- algorithm identifiers -------------------------------------------------------

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

#: Every signature method the profile can ever allow; a policy may narrow it.
PROFILE_SIGNATURE_METHODS = frozenset({RSA_SHA256, ECDSA_SHA256})
#: Every digest method the profile can ever allow.
PROFILE_DIGEST_METHODS = frozenset({SHA256})
#: The transforms of the one reference, in this order.
PROFILE_TRANSFORMS = (ENVELOPED, EXC_C14N)

_SHA256_BYTES = 32
#: Largest KeyInfo certificate accepted (real ones are 0.5-2 KB).
MAX_CERTIFICATE_BYTES = 16 * 1024

# Names for messages: the profile's algorithms and those it refuses.
_NAMES = {
    RSA_SHA256: "RSA-SHA256",
    ECDSA_SHA256: "ECDSA-SHA256",
    SHA256: "SHA-256",
    EXC_C14N: "exclusive C14N",
    ENVELOPED: "enveloped-signature",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": "RSA-SHA1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1": "DSA-SHA1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1": "ECDSA-SHA1",
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1": "HMAC-SHA1",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": "HMAC-SHA256",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384": "HMAC-SHA384",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512": "HMAC-SHA512",
    "http://www.w3.org/2000/09/xmldsig#sha1": "SHA-1",
    "http://www.w3.org/2001/04/xmldsig-more#md5": "MD5",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": "exclusive C14N with comments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": "inclusive C14N 1.0",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": "inclusive C14N 1.0 with comments",
    "http://www.w3.org/2006/12/xml-c14n11": "C14N 1.1",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": "C14N 1.1 with comments",
    "http://www.w3.org/TR/1999/REC-xpath-19991116": "XPath",
    "http://www.w3.org/2002/06/xmldsig-filter2": "XPath Filter 2.0",
    "http://www.w3.org/TR/1999/REC-xslt-19991116": "XSLT",
    "http://www.w3.org/2000/09/xmldsig#base64": "base64",
}


def _ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


SIGNATURE_TAG = _ds("Signature")
_SIGNED_INFO = _ds("SignedInfo")
_C14N_METHOD = _ds("CanonicalizationMethod")
_SIGNATURE_METHOD = _ds("SignatureMethod")
_REFERENCE = _ds("Reference")
_TRANSFORMS = _ds("Transforms")
_TRANSFORM = _ds("Transform")
_DIGEST_METHOD = _ds("DigestMethod")
_DIGEST_VALUE = _ds("DigestValue")
_SIGNATURE_VALUE = _ds("SignatureValue")
_KEY_INFO = _ds("KeyInfo")
_X509_DATA = _ds("X509Data")
_X509_CERTIFICATE = _ds("X509Certificate")


def _quoted(text: str, limit: int = 100) -> str:
    # Attacker-chosen text in a message: short printable ASCII only.
    if len(text) <= limit and text.isascii() and text.isprintable():
        return repr(text)
    return "(unprintable or too long)"


def describe_algorithm(uri: str | None) -> str:
    """A short human name for an algorithm URI, for error messages."""
    if uri is None:
        return "no algorithm"
    return _NAMES.get(uri) or _quoted(uri)


@dataclass(frozen=True)
class SignatureParts:
    """The pieces of a structurally valid signature, not yet verified.

    signature: the ds:Signature element (the last child of the root).
    signed_info: its ds:SignedInfo element.
    signature_method: the SignatureMethod algorithm URI.
    digest_value: the decoded DigestValue of the one reference.
    signature_value: the decoded SignatureValue (raw r||s for ECDSA).
    certificate: the certificate in KeyInfo: a candidate only, to be checked
        against the trust store before anything else.
    """

    signature: etree._Element
    signed_info: etree._Element
    signature_method: str
    digest_value: bytes
    signature_value: bytes
    certificate: x509.Certificate


# --- helpers ----------------------------------------------------------------------


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else "?"


def _no_text(text: str | None, where: str) -> None:
    if text is not None and text.strip():
        raise SignatureStructure(f"text is not allowed inside ds:{where}")


def _child_elements(parent: etree._Element) -> list[etree._Element]:
    """The element children of ``parent``; refuses text mixed in between them."""
    where = _local(parent.tag)
    _no_text(parent.text, where)
    children = []
    for child in parent:
        if not isinstance(child.tag, str):
            # The parser refuses comments and PIs; refuse again rather than skip.
            raise ForbiddenXMLConstruct(f"comments and processing instructions in ds:{where}")
        _no_text(child.tail, where)
        children.append(child)
    return children


def _only_attributes(element: etree._Element, allowed: frozenset[str]) -> None:
    extra = set(element.attrib.keys()) - allowed
    if extra:
        names = ", ".join(sorted(_quoted(str(a), 60) for a in extra)[:5])
        raise SignatureStructure(f"unexpected attribute(s) on ds:{_local(element.tag)}: {names}")


def _algorithm(element: etree._Element) -> str:
    _only_attributes(element, _ALGORITHM_ONLY)
    algorithm = element.get("Algorithm")
    if algorithm is None:
        raise SignatureStructure(f"ds:{_local(element.tag)} has no Algorithm")
    if len(element) or (element.text and element.text.strip()):
        # InclusiveNamespaces, HMACOutputLength, XPath, XSLT stylesheets...
        raise SignatureStructure(f"ds:{_local(element.tag)} may not have content")
    return algorithm


def _base64(element: etree._Element, what: str) -> bytes:
    if len(element):
        raise SignatureStructure(f"ds:{what} may only hold base64 text")
    text = "".join((element.text or "").split())
    try:
        value = b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureStructure(f"ds:{what} is not valid base64") from None
    if b64encode(value).decode("ascii") != text:
        # Non-zero padding bits: decoders disagree on such text (XSD
        # base64Binary refuses it), so only the canonical encoding passes.
        raise SignatureStructure(f"ds:{what} is not canonical base64")
    if not value:
        raise SignatureStructure(f"ds:{what} is empty")
    return value


def _expect(children: list[etree._Element], index: int, tag: str, where: str) -> etree._Element:
    if index >= len(children) or children[index].tag != tag:
        raise SignatureStructure(
            f"ds:{where} must contain ds:{_local(tag)} at position {index + 1}"
        )
    return children[index]


_ALGORITHM_ONLY = frozenset({"Algorithm"})
_ID_ONLY = frozenset({"Id"})
_NONE: frozenset[str] = frozenset()


# --- the checks -------------------------------------------------------------------


def find_signature(root: etree._Element) -> etree._Element:
    """The one ds:Signature, which must be the last child element of ``root``."""
    signatures = list(root.iter(SIGNATURE_TAG))
    if not signatures:
        raise SignatureMissing("the document carries no ds:Signature")
    if len(signatures) > 1:
        raise SignatureStructure(
            f"the document carries {len(signatures)} ds:Signature elements; exactly one is allowed"
        )
    signature = signatures[0]
    if signature is root:
        raise SignatureStructure("enveloping signatures are not allowed: sign the document itself")
    if signature.getparent() is not root:
        raise SignatureStructure("the ds:Signature must be a child of the root element")
    last = None
    for child in root.iterchildren(tag=etree.Element):
        last = child
    if last is not signature:
        raise SignatureStructure("the ds:Signature must be the last child of the root element")
    if signature.tail is not None and signature.tail.strip():
        raise SignatureStructure("no text may follow the ds:Signature")
    return signature


def check_structure(
    root: etree._Element,
    *,
    signature_methods: frozenset[str] = PROFILE_SIGNATURE_METHODS,
    digest_methods: frozenset[str] = PROFILE_DIGEST_METHODS,
) -> SignatureParts:
    """Check the signature of ``root`` against the profile; return its parts.

    Raises SIGNATURE_MISSING, SIGNATURE_STRUCTURE, SIGNATURE_TRANSFORM_REFUSED,
    SIGNATURE_ALGORITHM_REFUSED, SIGNATURE_DIGEST_REFUSED or
    SIGNATURE_KEYINFO_REFUSED. Neither the signature nor the certificate is
    verified here.
    """
    signature = find_signature(root)
    _only_attributes(signature, _ID_ONLY)
    parts = _child_elements(signature)
    signed_info = _expect(parts, 0, _SIGNED_INFO, "Signature")
    signature_value_el = _expect(parts, 1, _SIGNATURE_VALUE, "Signature")
    key_info = _expect(parts, 2, _KEY_INFO, "Signature") if len(parts) > 2 else None
    if len(parts) > 3:
        raise SignatureStructure(
            f"ds:Signature may not contain {_quoted(_local(parts[3].tag), 60)}"
            " (no ds:Object, nothing after ds:KeyInfo)"
        )

    # SignedInfo: CanonicalizationMethod, SignatureMethod, one Reference.
    _only_attributes(signed_info, _ID_ONLY)
    info = _child_elements(signed_info)
    c14n_method = _expect(info, 0, _C14N_METHOD, "SignedInfo")
    signature_method_el = _expect(info, 1, _SIGNATURE_METHOD, "SignedInfo")
    references = info[2:]
    if not references or any(r.tag != _REFERENCE for r in references):
        raise SignatureStructure("ds:SignedInfo must end with ds:Reference elements only")
    if len(references) != 1:
        raise SignatureStructure(
            f'the signature has {len(references)} references; exactly one (URI="") is allowed'
        )
    reference = references[0]

    c14n = c14n_method.get("Algorithm")
    if c14n != EXC_C14N:
        raise SignatureTransformRefused(
            f"canonicalization {describe_algorithm(c14n)} is not allowed; use exclusive C14N"
        )
    if len(c14n_method):
        raise SignatureTransformRefused(
            "canonicalization parameters (InclusiveNamespaces) are not allowed"
        )
    _algorithm(c14n_method)

    signature_method = signature_method_el.get("Algorithm")
    if signature_method not in signature_methods:
        raise SignatureAlgorithmRefused(
            f"signature method {describe_algorithm(signature_method)} is not allowed;"
            " use RSA-SHA256 or ECDSA-SHA256"
        )
    if len(signature_method_el):
        raise SignatureAlgorithmRefused("signature method parameters are not allowed")
    _algorithm(signature_method_el)

    # Reference URI="": Transforms, DigestMethod, DigestValue.
    _only_attributes(reference, frozenset({"URI", "Id", "Type"}))
    if reference.get("URI") != "":
        raise SignatureStructure('the reference must be URI="" (the whole document)')
    ref_parts = _child_elements(reference)
    if not ref_parts or ref_parts[0].tag != _TRANSFORMS:
        raise SignatureTransformRefused(
            "the reference must list its transforms: enveloped-signature, exclusive C14N"
        )
    transforms_el = ref_parts[0]
    digest_method_el = _expect(ref_parts, 1, _DIGEST_METHOD, "Reference")
    digest_value_el = _expect(ref_parts, 2, _DIGEST_VALUE, "Reference")
    if len(ref_parts) > 3:
        raise SignatureStructure("ds:Reference may contain nothing after ds:DigestValue")

    _only_attributes(transforms_el, _NONE)
    transforms = _child_elements(transforms_el)
    algorithms = []
    for transform in transforms:
        if transform.tag != _TRANSFORM:
            raise SignatureStructure("ds:Transforms may contain ds:Transform elements only")
        algorithm = transform.get("Algorithm")
        if algorithm not in PROFILE_TRANSFORMS:
            raise SignatureTransformRefused(
                f"transform {describe_algorithm(algorithm)} is not allowed;"
                " only enveloped-signature and exclusive C14N"
            )
        if len(transform) or (transform.text and transform.text.strip()):
            raise SignatureTransformRefused("transform parameters are not allowed")
        _algorithm(transform)
        algorithms.append(algorithm)
    if tuple(algorithms) != PROFILE_TRANSFORMS:
        raise SignatureTransformRefused(
            "the transforms must be exactly enveloped-signature, then exclusive C14N"
        )

    digest_method = digest_method_el.get("Algorithm")
    if digest_method not in digest_methods:
        raise SignatureDigestRefused(
            f"digest method {describe_algorithm(digest_method)} is not allowed; use SHA-256"
        )
    _algorithm(digest_method_el)
    _only_attributes(digest_value_el, _NONE)
    digest_value = _base64(digest_value_el, "DigestValue")
    if len(digest_value) != _SHA256_BYTES:
        raise SignatureStructure("ds:DigestValue is not a SHA-256 digest")

    _only_attributes(signature_value_el, _ID_ONLY)
    signature_value = _base64(signature_value_el, "SignatureValue")

    if key_info is None:
        raise SignatureKeyInfoRefused(
            "the signature must carry its X.509 certificate in ds:KeyInfo"
        )
    certificate = _key_info_certificate(key_info)
    return SignatureParts(
        signature=signature,
        signed_info=signed_info,
        signature_method=signature_method,
        digest_value=digest_value,
        signature_value=signature_value,
        certificate=certificate,
    )


def _key_info_certificate(key_info: etree._Element) -> x509.Certificate:
    _only_attributes(key_info, _ID_ONLY)
    try:
        items = _child_elements(key_info)
    except SignatureStructure as exc:
        raise SignatureKeyInfoRefused(str(exc)) from None
    if len(items) != 1 or items[0].tag != _X509_DATA:
        found = ", ".join(_quoted(_local(i.tag), 60) for i in items[:5]) or "nothing"
        raise SignatureKeyInfoRefused(
            f"ds:KeyInfo must hold exactly one ds:X509Data and nothing else (found {found})"
        )
    try:
        data = _child_elements(items[0])
    except SignatureStructure as exc:
        raise SignatureKeyInfoRefused(str(exc)) from None
    if items[0].attrib:
        raise SignatureKeyInfoRefused("ds:X509Data may not have attributes")
    if len(data) != 1 or data[0].tag != _X509_CERTIFICATE:
        found = ", ".join(_quoted(_local(i.tag), 60) for i in data[:5]) or "nothing"
        raise SignatureKeyInfoRefused(
            f"ds:X509Data must hold exactly one ds:X509Certificate and nothing else (found {found})"
        )
    if data[0].attrib:
        raise SignatureKeyInfoRefused("ds:X509Certificate may not have attributes")
    der = _base64(data[0], "X509Certificate")
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise SignatureKeyInfoRefused(
            f"the certificate is larger than {MAX_CERTIFICATE_BYTES} bytes"
        )
    try:
        return _load_certificate(der)
    except (SignatureStructure, ValueError):
        raise SignatureKeyInfoRefused("ds:X509Certificate is not a readable certificate") from None


@lru_cache(maxsize=256)
def _load_certificate(der: bytes) -> x509.Certificate:
    # Certificates are immutable; the same few signers sign most documents.
    cert = x509.load_der_x509_certificate(der)
    # cryptography parses lazily: touch every field the checks read, so a
    # corrupt certificate is refused here and not halfway through them.
    try:
        _ = (cert.issuer, cert.subject, cert.extensions, cert.not_valid_before_utc)
        _ = (cert.not_valid_after_utc, cert.signature_algorithm_oid)
        cert.public_key()
    except UnsupportedAlgorithm:
        raise ValueError("unsupported algorithm in certificate") from None
    return cert


_ID_ATTRIBUTES = etree.XPath(
    "descendant-or-self::*/@Id | descendant-or-self::*/@ID"
    " | descendant-or-self::*/@id | descendant-or-self::*/@xml:id"
)


def check_unique_ids(root: etree._Element) -> None:
    """Refuse (XML_DUPLICATE_ID) two ID attributes with the same value.

    ID attributes are ``Id``, ``ID`` and ``id`` (no namespace) and ``xml:id``,
    all compared together and without surrounding whitespace, so that no ID
    resolver, whichever attribute it reads, can be pointed at a second
    element. (The protocol's signatures never resolve IDs: the one reference
    is URI="".)
    """
    seen: set[str] = set()
    values = _ID_ATTRIBUTES(root)
    assert isinstance(values, list)
    for value in values:
        key = str(value).strip()
        if key in seen:
            raise DuplicateId("two attributes (Id, ID, id or xml:id) carry the same ID value")
        seen.add(key)


# --- canonicalization amplification -------------------------------------------------

# Exclusive C14N repeats a namespace declaration on every element that uses the
# prefix when no output ancestor does: a 120 KB document declaring one long
# namespace URI on a root that does not use it canonicalizes to 80 MB. Refuse
# such documents before any canonicalization (ours, signxml's or xmlsec1's).
_NS_DECLARATION = re.compile(rb"""xmlns(?::[^\s=]*)?\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_COUNT_NODES = etree.XPath("count(//* | //@*)")
_COUNT_IN_NS = etree.XPath("count(//*[namespace-uri()=$u] | //@*[namespace-uri()=$u])")
MIN_CANONICAL_ALLOWANCE = 1024 * 1024


def _decode_attribute(raw: bytes) -> str | None:
    # The declared URI as the parser saw it (character references decoded);
    # None for a look-alike inside a CDATA section, which declares nothing.
    try:
        element = etree.fromstring(
            b'<x a="' + raw.replace(b'"', b"&quot;") + b'"/>', hardened_parser()
        )
    except etree.XMLSyntaxError:
        return None
    return element.get("a") or ""


def check_canonical_size(data: bytes, root: etree._Element) -> None:
    """Refuse (DOCUMENT_TOO_LARGE) a document whose canonical form could explode.

    Bounds the bytes of namespace declarations exclusive C14N can emit (each
    element or attribute in a namespace may carry its declaration) by
    ``max(4 * len(data), 1 MiB)``: first with a coarse bound (nodes times the
    longest declaration), then per namespace. Ordinary documents pass on the
    coarse bound.
    """
    longest: dict[bytes, int] = {}
    for match in _NS_DECLARATION.finditer(data):
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        longest[raw] = max(longest.get(raw, 0), len(match.group(0)) + 1)
    if not longest:
        return
    allowance = max(4 * len(data), MIN_CANONICAL_ALLOWANCE)
    nodes = _COUNT_NODES(root)
    assert isinstance(nodes, float)
    if nodes * max(longest.values()) <= allowance:
        return
    per_uri: dict[str, int] = {}
    for raw, length in longest.items():
        uri = _decode_attribute(raw)
        if uri is None:
            continue
        per_uri[uri] = max(per_uri.get(uri, 0), length)
    estimate = 0.0
    for uri, length in per_uri.items():
        count = _COUNT_IN_NS(root, u=uri)
        assert isinstance(count, float)
        estimate += count * length
        if estimate > allowance:
            raise DocumentTooLarge(
                "the document's canonical form would be too large"
                " (namespace declarations repeated on many elements)"
            )
