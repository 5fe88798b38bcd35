"""Trust decisions: pinned certificates, the node CA, validity, revocation, identities."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core import certs, pki
from gateway.core.certs import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateUnreadable,
    CertificateUntrusted,
    KeyUnreadable,
    TrustStore,
    check_certificate,
)
from tests.vectors.hostile import World, issue_custom, make_world

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def w() -> World:
    return make_world(NOW)


def test_certificate_issued_by_trusted_ca_is_accepted(w: World) -> None:
    check_certificate(w.ec.certificate, TrustStore(cas=(w.ca.certificate,)), NOW)


def test_pinned_certificate_is_accepted_without_any_ca(w: World) -> None:
    check_certificate(w.ec.certificate, TrustStore(pinned=(w.ec.certificate,)), NOW)


def test_self_signed_pinned_certificate_is_accepted(w: World) -> None:
    check_certificate(w.attacker.certificate, TrustStore(pinned=(w.attacker.certificate,)), NOW)


def test_certificate_of_another_ca_is_untrusted(w: World) -> None:
    with pytest.raises(CertificateUntrusted):
        check_certificate(w.other.certificate, TrustStore(cas=(w.ca.certificate,)), NOW)


def test_lookalike_issuer_name_without_the_ca_signature_is_untrusted(w: World) -> None:
    # Same issuer name as the trusted CA, signed by another key.
    impostor_ca = pki.Issued(pki.generate_key(), w.ca.certificate)
    forged = issue_custom(
        impostor_ca, pki.generate_key(), subject="NO-HELSEDIR", not_before=NOW, days=30
    )
    assert forged.certificate.issuer == w.ca.certificate.subject
    with pytest.raises(CertificateUntrusted):
        check_certificate(forged.certificate, TrustStore(cas=(w.ca.certificate,)), NOW)


def test_pinning_one_certificate_does_not_trust_another_from_the_same_ca(w: World) -> None:
    with pytest.raises(CertificateUntrusted):
        check_certificate(w.rsa.certificate, TrustStore(pinned=(w.ec.certificate,)), NOW)


def test_ca_certificate_itself_cannot_be_a_signer(w: World) -> None:
    with pytest.raises(CertificateUntrusted, match="CA certificate"):
        check_certificate(w.ca.certificate, TrustStore(cas=(w.ca.certificate,)), NOW)


def test_trust_store_refuses_a_non_ca_as_ca(w: World) -> None:
    with pytest.raises(ValueError, match="not a CA"):
        TrustStore(cas=(w.ec.certificate,))


@pytest.mark.parametrize(
    ("at", "error"),
    [
        (lambda c: c.not_valid_before_utc - timedelta(seconds=1), CertificateNotYetValid),
        (lambda c: c.not_valid_after_utc + timedelta(seconds=1), CertificateExpired),
    ],
    ids=["before", "after"],
)
def test_validity_period_is_enforced_at_the_given_time(w: World, at, error) -> None:  # type: ignore[no-untyped-def]
    trust = TrustStore(cas=(w.ca.certificate,))
    with pytest.raises(error):
        check_certificate(w.ec.certificate, trust, at(w.ec.certificate))
    check_certificate(w.ec.certificate, trust, w.ec.certificate.not_valid_before_utc)
    check_certificate(w.ec.certificate, trust, w.ec.certificate.not_valid_after_utc)


def test_pinned_certificate_must_still_be_valid(w: World) -> None:
    with pytest.raises(CertificateExpired):
        check_certificate(w.expired.certificate, TrustStore(pinned=(w.expired.certificate,)), NOW)


def test_expired_ca_invalidates_what_it_issued(w: World) -> None:
    outliving = issue_custom(
        w.ca, pki.generate_key(), subject="NO-LONG", not_before=NOW, days=20 * 365
    ).certificate
    trust = TrustStore(cas=(w.ca.certificate,))
    check_certificate(outliving, trust, NOW)
    after_ca = w.ca.certificate.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(CertificateExpired, match="CA"):
        check_certificate(outliving, trust, after_ca)


def test_revoked_certificate_is_refused_even_when_pinned(w: World) -> None:
    fp = certs.fingerprint(w.ec.certificate)
    trust = TrustStore(pinned=(w.ec.certificate,), revoked=frozenset({fp}))
    with pytest.raises(CertificateRevoked):
        check_certificate(w.ec.certificate, trust, NOW)


def test_revoked_ca_revokes_everything_it_issued(w: World) -> None:
    trust = TrustStore(cas=(w.ca.certificate,)).with_revoked(certs.fingerprint(w.ca.certificate))
    with pytest.raises(CertificateRevoked, match="CA"):
        check_certificate(w.ec.certificate, trust, NOW)


def test_revoked_fingerprints_are_normalised(w: World) -> None:
    fp = certs.fingerprint(w.ec.certificate)
    colons = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    trust = TrustStore(cas=(w.ca.certificate,), revoked=frozenset({colons}))
    assert trust.revoked == frozenset({fp})
    with pytest.raises(CertificateRevoked):
        check_certificate(w.ec.certificate, trust, NOW)
    with pytest.raises(ValueError):
        TrustStore(revoked=frozenset({"abc"}))


def test_naive_time_is_a_programming_error(w: World) -> None:
    with pytest.raises(ValueError, match="timezone"):
        check_certificate(
            w.ec.certificate, TrustStore(pinned=(w.ec.certificate,)), datetime(2026, 3, 2)
        )


def test_empty_trust_store_trusts_nothing(w: World) -> None:
    with pytest.raises(CertificateUntrusted):
        check_certificate(w.ec.certificate, TrustStore(), NOW)


def test_certificate_errors_are_signature_errors_with_distinct_codes() -> None:
    from gateway.core.errors import InvalidSignature

    classes = [CertificateUntrusted, CertificateExpired, CertificateNotYetValid, CertificateRevoked]
    assert all(issubclass(c, InvalidSignature) for c in classes)
    assert len({c.code for c in classes}) == 4


def test_fingerprint_is_sha256_of_der(w: World) -> None:
    der = w.ec.certificate.public_bytes(serialization.Encoding.DER)
    assert certs.fingerprint(w.ec.certificate) == hashlib.sha256(der).hexdigest()


def test_identity_of_national_system_and_node_certificates(w: World) -> None:
    assert certs.authority_id_of(w.ec.certificate) == "NO-HELSEDIR"
    assert certs.node_id_of(w.ec.certificate) is None
    node = pki.issue_node_signing(w.ca, "NO", now=NOW)
    assert certs.node_id_of(node.certificate) == "NO"
    assert certs.authority_id_of(node.certificate) is None
    assert certs.authority_id_of(w.ca.certificate) is None


def _with_uris(w: World, *uris: str) -> x509.Certificate:
    key = pki.generate_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(w.ca.certificate.subject)
        .issuer_name(w.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    )
    from cryptography.hazmat.primitives import hashes

    return builder.sign(w.ca.key, hashes.SHA256())


def test_ambiguous_or_malformed_identity_is_no_identity(w: World) -> None:
    two = _with_uris(w, "urn:imi-gateway:authority:NO-A", "urn:imi-gateway:authority:NO-B")
    assert certs.authority_id_of(two) is None
    assert certs.authority_id_of(_with_uris(w, "urn:imi-gateway:authority:no-lower")) is None
    assert certs.authority_id_of(_with_uris(w, "urn:imi-gateway:authority:US-NSA")) is None
    assert certs.node_id_of(_with_uris(w, "urn:imi-gateway:node:XX")) is None
    same_twice = _with_uris(w, "urn:imi-gateway:authority:NO-A", "urn:imi-gateway:authority:NO-A")
    assert certs.authority_id_of(same_twice) == "NO-A"


def test_pem_round_trips(w: World) -> None:
    pem = certs.dump_pem_certificate(w.ec.certificate)
    assert certs.load_pem_certificate(pem) == w.ec.certificate
    both = pem + certs.dump_pem_certificate(w.ca.certificate)
    assert certs.load_pem_certificates(both) == (w.ec.certificate, w.ca.certificate)
    key_pem = certs.dump_pem_private_key(w.ec.key)
    assert certs.load_pem_private_key(key_pem).private_numbers() == w.ec.key.private_numbers()  # type: ignore[union-attr]
    encrypted = certs.dump_pem_private_key(w.ec.key, b"secret")
    assert b"ENCRYPTED" in encrypted
    certs.load_pem_private_key(encrypted, b"secret")


def test_trust_store_from_pem(w: World) -> None:
    trust = TrustStore.from_pem(
        pinned=[certs.dump_pem_certificate(w.rsa.certificate)],
        cas=[certs.dump_pem_certificate(w.ca.certificate)],
    )
    check_certificate(w.ec.certificate, trust, NOW)
    check_certificate(w.rsa.certificate, trust, NOW)


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_unreadable_certificate_is_a_configuration_error(data: bytes) -> None:
    with pytest.raises(CertificateUnreadable) as info:
        certs.load_pem_certificate(data)
    assert info.value.exit_status == 3


def test_unreadable_key_or_wrong_password_is_a_configuration_error(w: World) -> None:
    with pytest.raises(KeyUnreadable):
        certs.load_pem_private_key(b"garbage")
    encrypted = certs.dump_pem_private_key(w.ec.key, b"secret")
    with pytest.raises(KeyUnreadable):
        certs.load_pem_private_key(encrypted, b"wrong")
    with pytest.raises(KeyUnreadable):
        certs.load_pem_private_key(encrypted)


def test_unknown_critical_extension_is_untrusted(w: World) -> None:
    from cryptography.hazmat.primitives import hashes

    key = pki.generate_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_with_uris(w, "urn:x").subject)
        .issuer_name(w.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True,
        )
        .sign(w.ca.key, hashes.SHA256())
    )
    with pytest.raises(CertificateUntrusted, match="critical extension"):
        check_certificate(cert, TrustStore(cas=(w.ca.certificate,)), NOW)
