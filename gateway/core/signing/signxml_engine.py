"""The signxml engine: the reference implementation the fast engine is checked against.

signxml is configured as tightly as it goes: the certificate is *given*
(``x509_cert``, already checked against the node's trust store), so neither
its CA-file default nor a key embedded in the document can ever be used; the
signature must be a child of the root; exactly one reference; only the
profile's signature and digest methods; the X.509 validity period is checked
at the caller's ``now``. signxml's exceptions are mapped onto our stable codes.

Structure, algorithms and certificates must already have been checked by
:func:`gateway.core.signing.verify`; this module never decides trust.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidDigest, SignXMLException
from signxml.exceptions import InvalidSignature as SignXMLInvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.core.certs import PrivateKey
from gateway.core.errors import MalformedXML
from gateway.core.signing.errors import DigestMismatch, SignatureMismatch, SignatureStructure
from gateway.core.signing.fast import XML_DECLARATION, signature_method_for
from gateway.core.signing.profile import ECDSA_SHA256, RSA_SHA256
from gateway.core.xmlparse import hardened_parser

_METHODS = {
    RSA_SHA256: SignatureMethod.RSA_SHA256,
    ECDSA_SHA256: SignatureMethod.ECDSA_SHA256,
}


def _config(signature_methods: frozenset[str], now: datetime) -> SignatureConfiguration:
    return SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=frozenset(_METHODS[m] for m in signature_methods),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        ignore_ambiguous_key_info=False,
        verification_time=now,
        default_reference_c14n_method=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )


def verify(
    data: bytes,
    certificate: x509.Certificate,
    *,
    now: datetime,
    signature_methods: frozenset[str],
) -> bytes:
    """Verify ``data`` with signxml against exactly ``certificate``; return the signed bytes."""
    try:
        result = XMLVerifier().verify(
            data,
            x509_cert=certificate,
            parser=hardened_parser(),
            expect_config=_config(signature_methods, now),
        )
    except etree.C14NError:
        raise MalformedXML(
            "the document cannot be canonicalized (are all namespace URIs absolute?)"
        ) from None
    except InvalidDigest:
        raise DigestMismatch("the signed content does not match the signature's digest") from None
    except SignXMLInvalidSignature as exc:
        raise SignatureMismatch(
            f"the signature does not verify with the certificate's key ({type(exc).__name__})"
        ) from None
    except (SignXMLException, etree.DocumentInvalid, ValueError) as exc:
        raise SignatureStructure(f"signxml refused the signature: {type(exc).__name__}") from None
    if isinstance(result, list):  # expect_references=1 makes this impossible
        raise SignatureStructure("exactly one reference is allowed")
    signed: bytes = result.signed_data
    return signed


def sign(root: etree._Element, key: PrivateKey, certificate: x509.Certificate) -> bytes:
    """Sign a copy of ``root`` with signxml in the profile; return the document bytes."""
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=_METHODS[signature_method_for(key)],
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(root, key=key, cert=[certificate])
    return XML_DECLARATION + etree.tostring(
        signed, encoding="UTF-8", xml_declaration=False, with_tail=False
    )
