"""Signing and verifying protocol documents: the profile, the signed tree, the policy."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gateway.core import certs, pki
from gateway.core.errors import (
    DuplicateId,
    ForbiddenXMLConstruct,
    GatewayError,
    InvalidSignature,
    SchemaInvalid,
)
from gateway.core.ns import DS_NS
from gateway.core.signing import (
    DEFAULT_ENGINE,
    DEFAULT_POLICY,
    ECDSA_SHA256,
    ENGINES,
    RSA_SHA256,
    KeyCertificateMismatch,
    SignaturePolicy,
    SignatureStructure,
    Signer,
    SigningKeyUnsupported,
    verify,
    verify_and_validate,
)
from gateway.core.signing import profile as sigprofile
from gateway.core.xmlparse import ParseLimits, parse_xml
from tests.vectors.hostile import World, document, make_world

DS = f"{{{DS_NS}}}"


@pytest.fixture(scope="module")
def w() -> World:
    return make_world()


def _code(excinfo: pytest.ExceptionInfo[GatewayError]) -> str:
    return excinfo.value.code


@pytest.mark.parametrize("verify_engine", ENGINES)
@pytest.mark.parametrize("sign_engine", ENGINES)
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_round_trip_every_engine_pair(
    w: World, kind: str, sign_engine: str, verify_engine: str
) -> None:
    issued = w.ec if kind == "ec" else w.rsa
    data = w.sign(document("request.xml"), issued, engine=sign_engine)
    verified = verify(data, w.trust, now=w.now, engine=verify_engine)  # type: ignore[arg-type]
    assert verified.certificate == issued.certificate
    assert verified.authority_id == "NO-HELSEDIR"
    assert verified.node_id is None
    assert verified.fingerprint == certs.fingerprint(issued.certificate)


def test_fast_engine_is_the_default() -> None:
    assert DEFAULT_ENGINE == "fast"


def test_signature_is_the_profile_and_the_last_child(w: World) -> None:
    data = w.sign(document("request.xml"))
    root = parse_xml(data)
    signature = root[-1]
    assert signature.tag == DS + "Signature"
    assert [e.get("Algorithm") for e in signature.iter(DS + "Transform")] == [
        sigprofile.ENVELOPED,
        sigprofile.EXC_C14N,
    ]
    assert signature.find(f"{DS}SignedInfo/{DS}SignatureMethod").get("Algorithm") == ECDSA_SHA256  # type: ignore[union-attr]
    assert signature.find(f"{DS}SignedInfo/{DS}Reference").get("URI") == ""  # type: ignore[union-attr]
    cert = signature.find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert cert is not None and cert.text
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')


def test_rsa_key_signs_with_rsa_sha256(w: World) -> None:
    assert Signer(w.rsa.key, w.rsa.certificate).signature_method == RSA_SHA256
    assert Signer(w.ec.key, w.ec.certificate).signature_method == ECDSA_SHA256


def test_verified_carries_exact_bytes_and_their_sha256(w: World) -> None:
    data = w.sign(document("request.xml"))
    verified = verify(data, w.trust, now=w.now)
    assert verified.data is data
    assert verified.sha256 == hashlib.sha256(data).hexdigest()


def test_verified_root_is_the_signed_content_plus_its_signature(w: World) -> None:
    data = w.sign(document("request.xml"))
    verified = verify(data, w.trust, now=w.now)
    root = verified.root
    assert root[-1].tag == DS + "Signature"
    assert root.getroottree().docinfo.doctype == ""
    assert (
        root.findtext(
            "{urn:imi-gateway:protocol:1}Header/{urn:imi-gateway:protocol:1}ReceiverAuthority"
        )
        == "PT-OMD"
    )
    expected = parse_xml(data)
    expected.remove(expected[-1])
    without = parse_xml(etree.tostring(root))
    without.remove(without[-1])
    assert etree.tostring(without, method="c14n", exclusive=True) == etree.tostring(
        expected, method="c14n", exclusive=True
    )


def test_verified_root_hides_namespace_bindings_the_signature_does_not_cover(w: World) -> None:
    # A prefix used only inside text (as a QName would be) is not visibly
    # utilized, so exclusive C14N does not sign its binding: an attacker could
    # rebind it. The signed tree must not offer the binding at all.
    data = w.sign(b'<Doc xmlns="urn:x" xmlns:t="urn:types"><V>t:Thing</V></Doc>')
    rebound = data.replace(b'xmlns:t="urn:types"', b'xmlns:t="urn:evil"')
    verified = verify(rebound, w.trust, now=w.now)
    assert "t" not in verified.root.nsmap
    assert verified.root[0].nsmap.get("t") is None


def test_verified_root_does_not_share_the_signature_with_the_input(w: World) -> None:
    data = w.sign(document("request.xml"))
    first = verify(data, w.trust, now=w.now)
    second = verify(data, w.trust, now=w.now)
    assert first.root is not second.root
    assert etree.tostring(first.root) == etree.tostring(second.root)


def test_signer_does_not_modify_the_tree_it_signs(w: World) -> None:
    root = parse_xml(document("request.xml"))
    before = etree.tostring(root)
    Signer(w.ec.key, w.ec.certificate).sign(root)
    assert etree.tostring(root) == before


def test_signer_signs_an_element_inside_a_bigger_tree(w: World) -> None:
    outer = parse_xml(
        b'<o:Outer xmlns:o="urn:o" xmlns="urn:imi-gateway:protocol:1" xml:lang="nn"><Inner a="1"><o:x/></Inner>tail</o:Outer>'
    )
    data = Signer(w.ec.key, w.ec.certificate).sign(outer[0])
    verified = verify(data, w.trust, now=w.now)
    assert verified.root.tag == "{urn:imi-gateway:protocol:1}Inner"
    assert verified.root.tail is None


@pytest.mark.parametrize("engine", ENGINES)
def test_signer_refuses_an_already_signed_document(w: World, engine: str) -> None:
    signed = parse_xml(w.sign(document("request.xml")))
    with pytest.raises(SignatureStructure):
        Signer(w.ec.key, w.ec.certificate, engine=engine).sign(signed)  # type: ignore[arg-type]


def test_signer_refuses_comments_and_duplicate_ids(w: World) -> None:
    signer = Signer(w.ec.key, w.ec.certificate)
    with pytest.raises(ForbiddenXMLConstruct):
        signer.sign(etree.fromstring(b"<a><!-- c --></a>"))
    with pytest.raises(ForbiddenXMLConstruct):
        signer.sign(etree.fromstring(b"<a><?pi?></a>"))
    with pytest.raises(DuplicateId):
        signer.sign(etree.fromstring(b'<a><b Id="1"/><c id="1"/></a>'))


def test_signer_refuses_a_key_that_is_not_the_certificates(w: World) -> None:
    with pytest.raises(KeyCertificateMismatch) as info:
        Signer(w.attacker.key, w.ec.certificate)
    assert info.value.exit_status == 3


def test_signer_refuses_keys_outside_the_profile(w: World) -> None:
    with pytest.raises(SigningKeyUnsupported):
        Signer(w.rsa1024.key, w.rsa1024.certificate)
    with pytest.raises(SigningKeyUnsupported):
        Signer(w.p521.key, w.p521.certificate)


def test_signer_sign_bytes_parses_with_the_hardened_parser(w: World) -> None:
    signer = Signer(w.ec.key, w.ec.certificate)
    verify(signer.sign_bytes(document("request.xml")), w.trust, now=w.now)
    with pytest.raises(GatewayError) as info:
        signer.sign_bytes(b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')
    assert _code(info) == "XML_FORBIDDEN_CONSTRUCT"


def test_unknown_engine_is_a_programming_error(w: World) -> None:
    with pytest.raises(ValueError, match="engine"):
        verify(b"<a/>", w.trust, now=w.now, engine="xmlsec")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="engine"):
        Signer(w.ec.key, w.ec.certificate, engine="xmlsec")  # type: ignore[arg-type]


def test_verify_takes_bytes_only(w: World) -> None:
    with pytest.raises(TypeError):
        verify(document("request.xml").decode(), w.trust, now=w.now)  # type: ignore[arg-type]


def test_verify_needs_a_timezone_aware_time(w: World) -> None:
    data = w.sign(document("request.xml"))
    with pytest.raises(ValueError, match="timezone"):
        verify(data, w.trust, now=datetime(2026, 3, 2))


def test_pinned_signer_is_accepted(w: World) -> None:
    data = w.sign(document("request.xml"))
    verify(data, certs.TrustStore(pinned=(w.ec.certificate,)), now=w.now)


# --- policy ------------------------------------------------------------------------------


def test_default_policy_allows_exactly_the_profile() -> None:
    assert DEFAULT_POLICY.signature_methods == frozenset({RSA_SHA256, ECDSA_SHA256})
    assert DEFAULT_POLICY.digest_methods == frozenset({sigprofile.SHA256})
    assert DEFAULT_POLICY.min_rsa_bits == 2048
    assert not DEFAULT_POLICY.parse_limits.allow_comments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"signature_methods": frozenset({"http://www.w3.org/2000/09/xmldsig#rsa-sha1"})},
        {"signature_methods": frozenset({"http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"})},
        {"signature_methods": frozenset()},
        {"digest_methods": frozenset({"http://www.w3.org/2000/09/xmldsig#sha1"})},
        {"min_rsa_bits": 1024},
        {"ec_curves": frozenset({"secp192r1"})},
        {"parse_limits": ParseLimits(allow_comments=True)},
    ],
    ids=["rsa-sha1", "hmac", "no-methods", "sha1-digest", "rsa-1024", "weak-curve", "comments"],
)
def test_policy_can_never_be_loosened(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SignaturePolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINES)
def test_policy_narrowed_to_ecdsa_refuses_rsa(w: World, engine: str) -> None:
    policy = SignaturePolicy(signature_methods=frozenset({ECDSA_SHA256}))
    verify(w.sign(document("request.xml")), w.trust, now=w.now, policy=policy, engine=engine)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature) as info:
        verify(
            w.sign(document("request.xml"), w.rsa), w.trust, now=w.now, policy=policy, engine=engine
        )  # type: ignore[arg-type]
    assert info.value.code == "SIGNATURE_ALGORITHM_REFUSED"


def test_policy_raising_rsa_minimum_refuses_rsa_2048(w: World) -> None:
    policy = SignaturePolicy(min_rsa_bits=3072)
    with pytest.raises(InvalidSignature) as info:
        verify(w.sign(document("request.xml"), w.rsa), w.trust, now=w.now, policy=policy)
    assert info.value.code == "CERTIFICATE_KEY_REFUSED"


def test_policy_parse_limits_apply(w: World) -> None:
    data = w.sign(document("request.xml"))
    policy = SignaturePolicy(parse_limits=ParseLimits(max_bytes=len(data) - 1))
    with pytest.raises(GatewayError) as info:
        verify(data, w.trust, now=w.now, policy=policy)
    assert _code(info) == "DOCUMENT_TOO_LARGE"


# --- schema ------------------------------------------------------------------------------


def test_verify_and_validate_returns_the_document_type(w: World) -> None:
    verified, doc_type = verify_and_validate(w.sign(document("request.xml")), w.trust, now=w.now)
    assert doc_type == "Request"
    assert verified.authority_id == "NO-HELSEDIR"


def test_verify_and_validate_refuses_a_correctly_signed_invalid_document(w: World) -> None:
    data = w.sign(document("request-schema-invalid.xml"))
    verify(data, w.trust, now=w.now)  # the signature itself is fine
    with pytest.raises(SchemaInvalid):
        verify_and_validate(data, w.trust, now=w.now)


# --- error codes ----------------------------------------------------------------------------


def test_every_signature_error_has_its_own_code_and_is_invalid_signature() -> None:
    from gateway.core.signing import errors as sigerrors

    classes = [getattr(sigerrors, name) for name in sigerrors.__all__]
    signature_errors = [c for c in classes if issubclass(c, InvalidSignature)]
    assert len(signature_errors) == 9
    assert len({c.code for c in classes}) == len(classes)
    for cls in classes:
        assert cls.__doc__ and cls.code.isupper()


def test_keys_made_by_pki_match_their_certificates(w: World) -> None:
    assert isinstance(w.ec.key, ec.EllipticCurvePrivateKey)
    assert isinstance(w.rsa.key, rsa.RSAPrivateKey)
    node = pki.issue_node_signing(w.ca, "NO", now=w.now)
    data = Signer(node.key, node.certificate).sign(
        parse_xml(b'<Receipt xmlns="urn:imi-gateway:protocol:1"/>')
    )
    assert verify(data, w.trust, now=w.now).node_id == "NO"
