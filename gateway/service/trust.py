"""Which certificates the node trusts for what, built from its key store.

One place turns ``keystore.NodeTrust`` (files in the node directory) into the
``TrustStore`` objects the verifiers take:

* ``national``: the registered national-system certificates of this node's
  authorities, pinned (a certificate merely issued by the node CA but not
  registered for an authority is refused);
* ``envelopes(peer)``: the peer node's signing certificate, pinned (old and
  new during the peer's key rotation);
* ``peer_authorities(peer)``: certificates of the peer's authorities: those
  its signed directory lists (pinned), else any issued by the peer's node CA;
* the TLS material for listeners and the client.

Revoked fingerprints apply to every store. ``reload()`` re-reads the node
directory and returns what changed (counts only, for the log). The node's
one trust-reload entry point (``NodeParts.reload_trust``, run on SIGHUP, by
``imi-gateway reload`` and after a peer's directory changes) calls it and
then hands the new trust to the listeners' TLS contexts, the outbound
client's pins, and closes connections whose certificate is no longer
trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from gateway.core.certs import TrustStore
from gateway.keystore import NodeTrust, certificate_fingerprint, load_trust

DirectoryCerts = Callable[[str], Mapping[str, tuple[x509.Certificate, ...]]]


@dataclass(frozen=True)
class TrustChanges:
    """What a reload changed: counts only (no fingerprints, no names of persons)."""

    national_added: int
    national_removed: int
    peers_added: int
    peers_removed: int
    revoked_added: int
    national_total: int
    peers_total: int
    revoked_total: int

    @property
    def changed(self) -> bool:
        return any(
            (
                self.national_added,
                self.national_removed,
                self.peers_added,
                self.peers_removed,
                self.revoked_added,
            )
        )


def _fingerprints(trust: NodeTrust) -> frozenset[str]:
    return frozenset(certificate_fingerprint(c) for certs in trust.national.values() for c in certs)


def _peer_pins(trust: NodeTrust) -> frozenset[tuple[str, str]]:
    return frozenset(
        (peer, certificate_fingerprint(c)) for peer, p in trust.peers.items() for c in p.tls_set
    )


class NodeTrustStores:
    def __init__(self, node_dir: Path, directory_certs: DirectoryCerts | None = None) -> None:
        self._node_dir = node_dir
        self._directory_certs = directory_certs
        self.reload()

    def reload(self) -> TrustChanges:
        """Re-read the trust store; returns what changed since the last read."""
        trust: NodeTrust = load_trust(self._node_dir)
        old: NodeTrust | None = getattr(self, "raw", None)
        revoked = trust.revoked
        authorities: dict[str, TrustStore] = {}
        for peer, p in trust.peers.items():
            listed = self._directory_certs(peer) if self._directory_certs else {}
            if listed:
                pinned = tuple(c for certs in listed.values() for c in certs)
                authorities[peer] = TrustStore(pinned=pinned, revoked=revoked)
            else:
                authorities[peer] = TrustStore(cas=(p.ca,), revoked=revoked)
        # Built aside, then swapped: a verifier on another thread sees the old stores or the new.
        self._authorities = authorities
        self._envelopes = {
            peer: TrustStore(pinned=p.signing_set, revoked=revoked)
            for peer, p in trust.peers.items()
        }
        self.national = TrustStore(
            pinned=tuple(c for certs in trust.national.values() for c in certs), revoked=revoked
        )
        self.raw = trust
        before_national = _fingerprints(old) if old else frozenset()
        before_peers = _peer_pins(old) if old else frozenset()
        before_revoked = old.revoked if old else frozenset()
        national, peers = _fingerprints(trust), _peer_pins(trust)
        return TrustChanges(
            national_added=len(national - before_national),
            national_removed=len(before_national - national),
            peers_added=len(peers - before_peers),
            peers_removed=len(before_peers - peers),
            revoked_added=len(revoked - before_revoked),
            national_total=len(national),
            peers_total=len(peers),
            revoked_total=len(revoked),
        )

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

    def peer_tls(self) -> Mapping[str, tuple[x509.Certificate, ...]]:
        """Each peer's pinned TLS certificates (old and new during its key rotation)."""
        return {peer: p.tls_set for peer, p in self.raw.peers.items()}

    def peer_cas(self) -> Mapping[str, x509.Certificate]:
        return {peer: p.ca for peer, p in self.raw.peers.items()}
