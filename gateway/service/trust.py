"""Which certificates the node trusts for what, built from its key store.

One place turns ``keystore.NodeTrust`` (files in the node directory) into the
``TrustStore`` objects the verifiers take:

* ``national``: the registered national-system certificates of this node's
  authorities, pinned (a certificate merely issued by the node CA but not
  registered for an authority is refused);
* ``envelopes(peer)``: the peer node's signing certificate, pinned;
* ``peer_authorities(peer)``: certificates of the peer's authorities: those
  its signed directory lists (pinned), else any issued by the peer's node CA;
* the TLS material for listeners and the client.

Revoked fingerprints apply to every store. ``reload()`` re-reads the node
directory for the verifiers (the node calls it after a peer's directory
changes); listeners and the HTTPS client keep the TLS material they were
started with, so a new peer or a revocation takes full effect on restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography import x509

from gateway.core.certs import TrustStore
from gateway.keystore import NodeTrust, load_trust

DirectoryCerts = Callable[[str], Mapping[str, tuple[x509.Certificate, ...]]]


class NodeTrustStores:
    def __init__(self, node_dir: Path, directory_certs: DirectoryCerts | None = None) -> None:
        self._node_dir = node_dir
        self._directory_certs = directory_certs
        self.reload()

    def reload(self) -> None:
        trust: NodeTrust = load_trust(self._node_dir)
        self.raw = trust
        revoked = trust.revoked
        self.national = TrustStore(
            pinned=tuple(c for certs in trust.national.values() for c in certs), revoked=revoked
        )
        self._envelopes = {
            peer: TrustStore(pinned=(p.signing,), revoked=revoked)
            for peer, p in trust.peers.items()
        }
        self._authorities: dict[str, TrustStore] = {}
        for peer, p in trust.peers.items():
            listed = self._directory_certs(peer) if self._directory_certs else {}
            if listed:
                pinned = tuple(c for certs in listed.values() for c in certs)
                self._authorities[peer] = TrustStore(pinned=pinned, revoked=revoked)
            else:
                self._authorities[peer] = TrustStore(cas=(p.ca,), revoked=revoked)

    @property
    def peer_ids(self) -> frozenset[str]:
        return frozenset(self.raw.peers)

    @property
    def national_certificates(self) -> Mapping[str, tuple[x509.Certificate, ...]]:
        """The registered certificates of each authority (several during a rotation)."""
        return self.raw.national

    def envelopes(self, peer: str) -> TrustStore:
        return self._envelopes[peer]

    def peer_authorities(self, peer: str) -> TrustStore:
        return self._authorities[peer]

    def peer_tls(self) -> Mapping[str, x509.Certificate]:
        return {peer: p.tls for peer, p in self.raw.peers.items()}

    def peer_cas(self) -> Mapping[str, x509.Certificate]:
        return {peer: p.ca for peer, p in self.raw.peers.items()}
