"""TLS context factories: pinned, mutually authenticated, TLS 1.2+ only.

* The peer listener asks every client for a certificate and accepts only
  certificates issued by the CA of a peer node this node has imported;
  ``peer_identity`` then pins the exact TLS certificate and names the node.
* The national-system listener accepts only client certificates issued by
  this node's own CA; ``authority_identity`` names the authority, refusing
  revoked certificates and certificates not registered for that authority.
* The outbound client trusts, for each peer, that peer's CA only (never a
  public CA bundle), checks the host name, and presents this node's TLS
  certificate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from gateway.core.errors import Unauthorized
from gateway.core.ns import AUTHORITY_URI_PREFIX, NODE_URI_PREFIX
from gateway.core.pki import PrivateKey


class UnknownPeer(Unauthorized):
    """The TLS client certificate is not the pinned certificate of a known peer node."""

    code = "PEER_UNKNOWN"


class UnknownClient(Unauthorized):
    """The TLS client certificate does not belong to a registered national system."""

    code = "CLIENT_CERTIFICATE_UNKNOWN"


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def _ossl_cert(cert: x509.Certificate) -> crypto.X509:
    return crypto.X509.from_cryptography(cert)


def _uri_identity(cert: x509.Certificate, prefix: str) -> str | None:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = [
        u[len(prefix) :]
        for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(prefix)
    ]
    return uris[0] if len(uris) == 1 else None


def server_options(
    key: PrivateKey,
    certificate: x509.Certificate,
    client_cas: Iterable[x509.Certificate],
) -> ssl.CertificateOptions:
    """Server TLS options requiring a client certificate issued by ``client_cas``."""
    cas = [_ossl_cert(c) for c in client_cas]
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),
        certificate=_ossl_cert(certificate),
        verify=True,
        caCerts=cas,
        requireCertificate=True,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        enableSessions=False,
    )


def peer_certificate(request: Any) -> x509.Certificate | None:
    """The client certificate of a twisted.web request, if any."""
    transport = request.channel.transport if request.channel else None
    get = getattr(transport, "getPeerCertificate", None)
    cert = get() if get else None
    return cert.to_cryptography() if cert is not None else None


def peer_identity(request: Any, pinned_tls: Mapping[str, x509.Certificate]) -> str:
    """The node id of the peer on the other end of ``request``'s TLS connection."""
    cert = peer_certificate(request)
    if cert is None:
        raise UnknownPeer("no TLS client certificate was presented")
    node_id = _uri_identity(cert, NODE_URI_PREFIX)
    pinned = pinned_tls.get(node_id or "")
    if pinned is None or _fingerprint(pinned) != _fingerprint(cert):
        raise UnknownPeer()
    return node_id  # type: ignore[return-value]


def authority_identity(
    request: Any,
    registered: Mapping[str, x509.Certificate],
    revoked: frozenset[str],
) -> tuple[str, x509.Certificate]:
    """The authority id bound to ``request``'s client certificate, and the certificate."""
    cert = peer_certificate(request)
    if cert is None:
        raise UnknownClient("no TLS client certificate was presented")
    authority = _uri_identity(cert, AUTHORITY_URI_PREFIX)
    expected = registered.get(authority or "")
    if (
        authority is None
        or expected is None
        or _fingerprint(expected) != _fingerprint(cert)
        or _fingerprint(cert).hex() in revoked
    ):
        raise UnknownClient()
    return authority, cert


@implementer(IPolicyForHTTPS)
class PinnedPeersPolicy:
    """An HTTPS policy for treq/Agent: each peer host is verified against that peer's CA."""

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        peer_cas: Mapping[tuple[str, int], x509.Certificate],
    ) -> None:
        """``peer_cas`` maps a peer URL's (host, port) to the CA of that peer node."""
        pem = certificate.public_bytes(Encoding.PEM)
        self._client = ssl.PrivateCertificate.load(
            pem, ssl.KeyPair(crypto.PKey.from_cryptography_key(key)), ssl.FILETYPE_PEM
        )
        self._roots = {
            netloc: ssl.trustRootFromCertificates([ssl.Certificate(_ossl_cert(ca))])
            for netloc, ca in peer_cas.items()
        }

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        host = hostname.decode("ascii")
        root = self._roots.get((host, port))
        if root is None:
            raise UnknownPeer(f"{host}:{port} is not the address of a known peer node")
        return ssl.optionsForClientTLS(host, trustRoot=root, clientCertificate=self._client)
