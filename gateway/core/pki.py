"""Key and certificate generation for nodes, their CA and national systems (sans-IO).

Everything returns ``cryptography`` objects; writing them to disk with the
right permissions is ``gateway.keystore``'s job. Identities are bound to
certificates with a subjectAltName URI (see ``gateway.core.ns``):

* the node CA (self-signed, path length 0) issues every certificate below;
* the node signing certificate: ``urn:imi-gateway:node:<NODE_ID>``, digital
  signature only;
* the node TLS certificate: the same node URI plus DNS/IP names, server and
  client authentication (it is used both ways between peers);
* a national-system certificate: ``urn:imi-gateway:authority:<AUTHORITY_ID>``,
  digital signature and TLS client authentication, so one certificate both
  signs a national system's documents and authenticates its API calls.

Node keys are ECDSA P-256 by default (fast to sign and verify); RSA-2048/3072
is available for national systems whose HSMs need it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.ns import AUTHORITY_URI_PREFIX, NODE_URI_PREFIX

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A private key and the certificate issued for it."""

    key: PrivateKey
    certificate: x509.Certificate


def generate_key(kind: str = "ec") -> PrivateKey:
    """A new private key: ``"ec"`` (P-256), ``"rsa"`` (2048) or ``"rsa3072"``."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown key kind {kind!r} (ec, rsa, rsa3072)")


def _name(common_name: str, country: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IMI gateway"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    not_before: datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
    )


def make_ca(node_id: str, *, now: datetime, days: int = 3650, kind: str = "ec") -> Issued:
    """A self-signed node CA for ``node_id`` (a country code)."""
    key = generate_key(kind)
    name = _name(f"{node_id} node CA", node_id, "node CA")
    cert = (
        _builder(name, name, key.public_key(), now - timedelta(minutes=5), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def _issue(
    ca: Issued,
    subject: x509.Name,
    uri: str,
    *,
    now: datetime,
    days: int,
    kind: str,
    server: bool,
    client: bool,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    extra_uris: Sequence[str] = (),
) -> Issued:
    key = generate_key(kind)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    sans += [x509.UniformResourceIdentifier(u) for u in extra_uris]
    sans += [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        _builder(
            subject, ca.certificate.subject, key.public_key(), now - timedelta(minutes=5), days
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey) and server,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return Issued(key, cert)


def issue_node_signing(ca: Issued, node_id: str, *, now: datetime, days: int = 825) -> Issued:
    """The node's document-signing certificate (envelopes, receipts, deliveries)."""
    return _issue(
        ca,
        _name(f"{node_id} node signing", node_id, "node signing"),
        NODE_URI_PREFIX + node_id,
        now=now,
        days=days,
        kind="ec",
        server=False,
        client=False,
    )


def issue_node_tls(
    ca: Issued,
    node_id: str,
    *,
    now: datetime,
    days: int = 825,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
) -> Issued:
    """The node's TLS certificate: server for its listeners, client towards peers."""
    return _issue(
        ca,
        _name(f"{node_id} node TLS", node_id, "node TLS"),
        NODE_URI_PREFIX + node_id,
        now=now,
        days=days,
        kind="ec",
        server=True,
        client=True,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )


def issue_national_system(
    ca: Issued,
    authority_id: str,
    *,
    now: datetime,
    days: int = 825,
    kind: str = "ec",
) -> Issued:
    """A national-system certificate bound to ``authority_id``.

    It signs that authority's documents and authenticates its API calls; a
    national system that takes deliveries by push also serves its callback
    with it (the node pins it), so it carries server authentication too.
    """
    return _issue(
        ca,
        _name(authority_id, authority_id[:2], "national system"),
        AUTHORITY_URI_PREFIX + authority_id,
        now=now,
        days=days,
        kind=kind,
        server=True,
        client=True,
    )


def issue_coordinator(
    ca: Issued,
    coordinator_id: str,
    *,
    now: datetime,
    days: int = 825,
    kind: str = "ec",
) -> Issued:
    """A coordinator's certificate: bound to ``coordinator_id`` like a national system's
    (so the API's guard names it), and marked ``urn:imi-gateway:coordinator:<ID>``
    (only a marked certificate signs coordinator documents; see gateway.core.coordinators)."""
    return _issue(
        ca,
        _name(coordinator_id, coordinator_id[:2], "coordinator"),
        AUTHORITY_URI_PREFIX + coordinator_id,
        now=now,
        days=days,
        kind=kind,
        server=False,
        client=True,
        extra_uris=("urn:imi-gateway:coordinator:" + coordinator_id,),
    )
