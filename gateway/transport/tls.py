"""TLS context factories and client identities: pinned, mutually authenticated, TLS 1.2+ only.

* The peer listener asks every client for a certificate and accepts only
  certificates issued by the CA of a peer node this node has imported;
  ``peer_of_certificate`` then pins the exact TLS certificate and names the
  node (a peer's national-system certificate, same CA, is refused).
* The national-system listener accepts only client certificates issued by
  this node's own CA; ``authority_of_certificate`` names the authority,
  refusing revoked certificates, certificates outside their validity and
  certificates not registered for that authority.
* Both listeners' contexts are :class:`ReloadableServerOptions`: a trust
  reload replaces the client CAs for new connections.
* The outbound client trusts, for each peer, that peer's CA only (never a
  public CA bundle), checks the pinned certificate, and presents this node's
  TLS certificate; :meth:`PinnedPeersPolicy.set_peers` replaces the pins on a
  reload.
* A pin is one certificate or a set of them (:data:`Pin`): during a peer's
  key rotation its old and new TLS certificates are both accepted. After this
  node's own rotation, ``set_identity`` makes the listeners and the client
  present the new key and certificate on new connections.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLContextFactory
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from gateway.core.certs import authority_id_of, node_id_of, within_validity
from gateway.core.errors import Unauthorized
from gateway.core.pki import PrivateKey

#: The TLS certificate(s) pinned for a peer: one, or several during its key rotation.
Pin = x509.Certificate | tuple[x509.Certificate, ...]


def _pin_set(pin: Pin) -> tuple[x509.Certificate, ...]:
    return pin if isinstance(pin, tuple) else (pin,)


class UnknownPeer(Unauthorized):
    """The TLS client certificate is not the pinned certificate of a known peer node."""

    code = "PEER_UNKNOWN"


class UnknownClient(Unauthorized):
    """The TLS client certificate does not belong to a registered national system."""

    code = "CLIENT_CERTIFICATE_UNKNOWN"


@lru_cache(maxsize=1024)
def _fingerprint(cert: x509.Certificate) -> bytes:
    # Cached: every request checks the caller's and the registered certificates.
    return cert.fingerprint(hashes.SHA256())


def _ossl_cert(cert: x509.Certificate) -> crypto.X509:
    return crypto.X509.from_cryptography(cert)


def server_options(
    key: PrivateKey,
    certificate: x509.Certificate,
    client_cas: Iterable[x509.Certificate],
) -> ssl.CertificateOptions:
    """Server TLS options requiring a client certificate issued by ``client_cas``."""
    cas = [_ossl_cert(c) for c in client_cas]
    return ssl.CertificateOptions(
        # cryptography objects: pyOpenSSL deprecates its own X509/PKey wrappers here, while
        # Twisted's signature still names them.
        privateKey=key,  # type: ignore[arg-type]  # Twisted types it as pyOpenSSL's PKey
        certificate=certificate,  # type: ignore[arg-type]  # and this as pyOpenSSL's X509
        verify=True,
        caCerts=cas,
        requireCertificate=True,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        enableSessions=False,
    )


@implementer(IOpenSSLContextFactory)
class ReloadableServerOptions:
    """A server context factory whose client CAs can be replaced while the listener runs.

    Twisted asks ``getContext()`` for every new connection, so after
    :meth:`set_client_cas` new connections are verified against the new CAs;
    connections already open keep theirs (the listener's guard and
    ``close_untrusted`` deal with those).
    """

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        client_cas: Iterable[x509.Certificate],
    ) -> None:
        self._key = key
        self._certificate = certificate
        self._client_cas = list(client_cas)
        self._options = server_options(key, certificate, self._client_cas)

    def set_client_cas(self, client_cas: Iterable[x509.Certificate]) -> None:
        self._client_cas = list(client_cas)
        self._options = server_options(self._key, self._certificate, self._client_cas)

    def set_identity(self, key: PrivateKey, certificate: x509.Certificate) -> None:
        """Present ``certificate`` (with ``key``) on new connections (after a key rotation)."""
        self._key, self._certificate = key, certificate
        self._options = server_options(key, certificate, self._client_cas)

    def getContext(self) -> SSL.Context:
        return self._options.getContext()


def _check_validity(cert: x509.Certificate, now: datetime, refuse: type[Unauthorized]) -> None:
    # The caller's refusal, not CERTIFICATE_EXPIRED: a guard's answer tells nothing more.
    if not within_validity(cert, now):
        raise refuse("the TLS client certificate is outside its validity period")


def connection_certificate(transport: Any) -> x509.Certificate | None:
    """The client certificate of a TLS connection (a twisted transport), if any."""
    get = getattr(transport, "getPeerCertificate", None)
    cert = get() if get else None
    return cert.to_cryptography() if cert is not None else None


def peer_certificate(request: Any) -> x509.Certificate | None:
    """The client certificate of a twisted.web request, if any."""
    return connection_certificate(request.channel.transport if request.channel else None)


def peer_of_certificate(
    cert: x509.Certificate | None,
    pinned_tls: Mapping[str, Pin],
    revoked: frozenset[str],
    now: datetime,
) -> str:
    """The node id of the known peer one of whose pinned TLS certificates is exactly ``cert``."""
    if cert is None:
        raise UnknownPeer("no TLS client certificate was presented")
    node_id = node_id_of(cert)
    pinned = pinned_tls.get(node_id or "")
    if (
        node_id is None
        or pinned is None
        or _fingerprint(cert) not in {_fingerprint(p) for p in _pin_set(pinned)}
        or _fingerprint(cert).hex() in revoked
    ):
        raise UnknownPeer()
    _check_validity(cert, now, UnknownPeer)
    return node_id


def authority_of_certificate(
    cert: x509.Certificate | None,
    registered: Mapping[str, tuple[x509.Certificate, ...]],
    revoked: frozenset[str],
    now: datetime,
) -> str:
    """The authority id ``cert`` is registered for (not revoked, inside its validity)."""
    if cert is None:
        raise UnknownClient("no TLS client certificate was presented")
    authority = authority_id_of(cert)
    expected = {_fingerprint(c) for c in registered.get(authority or "", ())}
    if (
        authority is None
        or _fingerprint(cert) not in expected
        or _fingerprint(cert).hex() in revoked
    ):
        raise UnknownClient()
    _check_validity(cert, now, UnknownClient)
    return authority


@implementer(IOpenSSLClientConnectionCreator)
class _PinnedClientCreator:
    """Client TLS towards one peer: its CA only, and exactly one of its pinned TLS certificates.

    The pin replaces host-name verification (Twisted's check through
    service_identity does not understand our ``urn:`` identity URIs), so a
    certificate is accepted only if it is one imported for the peer.
    """

    def __init__(self, options: ssl.CertificateOptions, pinned: Pin, host: str):
        self._context = options.getContext()
        pinned_der = {p.public_bytes(Encoding.DER) for p in _pin_set(pinned)}

        def verify(conn: Any, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
            if not ok:
                return False
            if depth == 0:
                return cert.to_cryptography().public_bytes(Encoding.DER) in pinned_der
            return True

        self._context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify)
        self._host = host.encode("idna")

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tls_protocol)
        connection.set_tlsext_host_name(self._host)
        return connection


@implementer(IPolicyForHTTPS)
class PinnedPeersPolicy:
    """An HTTPS policy for treq/Agent: each peer address gets that peer's CA and pinned cert."""

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        peers: Mapping[tuple[str, int], tuple[x509.Certificate, Pin]],
    ) -> None:
        """``peers`` maps a peer URL's (host, port) to (that peer's CA, its TLS certificate(s))."""
        self._key = key
        self._certificate = certificate
        self.set_peers(peers)

    def set_identity(self, key: PrivateKey, certificate: x509.Certificate) -> None:
        """Present ``certificate`` on new connections (after a key rotation); keeps the pins."""
        self._key, self._certificate = key, certificate
        self.set_peers(self._peers)

    def set_peers(self, peers: Mapping[tuple[str, int], tuple[x509.Certificate, Pin]]) -> None:
        """Replace the pinned peers (on a trust reload); new connections use them."""
        self._peers = dict(peers)
        self._creators = {
            netloc: _PinnedClientCreator(
                ssl.CertificateOptions(
                    privateKey=self._key,  # type: ignore[arg-type]  # as in server_options
                    certificate=self._certificate,  # type: ignore[arg-type]  # as in server_options
                    verify=True,
                    caCerts=[_ossl_cert(ca)],
                    raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
                ),
                tls,
                netloc[0],
            )
            for netloc, (ca, tls) in peers.items()
        }

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        creator = self._creators.get((hostname.decode("ascii"), port))
        if creator is None:
            raise UnknownPeer(f"{hostname.decode()}:{port} is not the address of a known peer node")
        return creator
