"""The one trust reload of a running node (SIGHUP, ``imi-gateway reload``, a directory update).

Re-reads the trust stores and applies them everywhere trust is used: the
peer listener's accepted client CAs, the outbound TLS pins (peer nodes and
push callbacks), and the connections open on the API and peer listeners
(closed when their certificate is no longer trusted). A reload that changes
what the node trusts is recorded in the audit log (TRUST_CHANGED).

It also re-reads the node's own keys (:class:`NodeIdentity`): after ``keys
rotate`` the reload makes the new signing key sign (:class:`RotatingSigner`)
and the new TLS certificate be presented on new connections, by the
listeners and the outbound client. Connections already open keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.core.audit import Event, node_actor
from gateway.core.signing import Signer
from gateway.core.xmlparse import DEFAULT_LIMITS, ParseLimits
from gateway.keystore import KeyStoreError, NodeKeys, NodeTrust, trust_listing
from gateway.keystore.load import reload_node_keys
from gateway.service.runtime import Runtime
from gateway.service.trust import NodeTrustStores, TrustChanges
from gateway.storage.audit import append_audit_txn
from gateway.transport.client import netloc_of
from gateway.transport.http import LimitedSite
from gateway.transport.tls import PinnedPeersPolicy, ReloadableServerOptions

log = Logger()


class RotatingSigner(Signer):
    """The node's signer, whose key a rotation replaces while the node runs.

    Every call goes to the current :class:`Signer`, read once per call, so a
    signature made while the key is swapped uses the old key or the new one,
    never a mix.
    """

    def __init__(self, signer: Signer) -> None:  # no super().__init__: it only delegates
        self._current = signer

    def use(self, signer: Signer) -> None:
        self._current = signer

    @property
    def certificate(self) -> Any:
        return self._current.certificate

    @property
    def signature_method(self) -> str:
        return self._current.signature_method

    def sign(self, root: Any) -> bytes:
        return self._current.sign(root)

    def sign_bytes(self, data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> bytes:
        return self._current.sign_bytes(data, limits)


class NodeIdentity:
    """The node's own keys as the running node uses them; :meth:`reload` applies a rotation."""

    def __init__(
        self,
        keys: NodeKeys,
        signer: RotatingSigner,
        *,
        servers: list[ReloadableServerOptions],
        client: PinnedPeersPolicy,
    ) -> None:
        self.keys = keys
        self._signer = signer
        self._servers = servers
        self._client = client

    def reload(self) -> bool:
        """Re-read the keys; if the signing or TLS key changed, use the new ones. True if so."""
        try:
            fresh = reload_node_keys(self.keys.node_dir)
        except KeyStoreError:
            log.failure("The node's keys could not be read; the node keeps its current keys")
            return False
        old = self.keys
        if (fresh.signing.fingerprint, fresh.tls.fingerprint) == (
            old.signing.fingerprint,
            old.tls.fingerprint,
        ):
            return False
        if fresh.ca.fingerprint != old.ca.fingerprint:
            log.warn("The node CA changed on disk: restart the node to use it; keys not reloaded")
            return False
        self._signer.use(Signer(fresh.signing.key, fresh.signing.certificate))
        for server in self._servers:
            server.set_identity(fresh.tls.key, fresh.tls.certificate)
        self._client.set_identity(fresh.tls.key, fresh.tls.certificate)
        self.keys = fresh
        log.info(
            "Node keys rotated: now signing with sha256 {signing}, presenting TLS sha256 {tls}",
            signing=fresh.signing.fingerprint,
            tls=fresh.tls.fingerprint,
        )
        return True


class TrustPins:
    """What the node's TLS trusts, computed from the current trust stores."""

    def __init__(
        self,
        keys: NodeKeys,
        trust: NodeTrustStores,
        peer_urls: dict[str, str],
        push_urls: dict[str, str],
    ) -> None:
        self._keys = keys
        self._trust = trust
        self._peer_urls = peer_urls
        self._push_urls = push_urls

    def pinned_servers(self) -> dict[tuple[str, int], tuple[Any, Any]]:
        """The outbound TLS pins from the current trust: peer nodes and push callbacks."""
        raw = self._trust.raw
        pins: dict[tuple[str, int], tuple[Any, Any]] = {
            netloc_of(url): (raw.peers[peer].ca, raw.peers[peer].tls_set)
            for peer, url in self._peer_urls.items()
            if peer in raw.peers
        }
        for authority, url in self._push_urls.items():
            # A push callback must present the authority's own registered certificate.
            registered = self._trust.national_certificates.get(authority)
            if registered:
                pins[netloc_of(url)] = (self._keys.ca.certificate, registered[-1])
        return pins

    def peer_cas(self) -> list[Any]:
        """The CAs the peer listener accepts client certificates from."""
        return list(self._trust.peer_cas().values()) or [self._keys.ca.certificate]


class TrustReloader:
    """Calling it reloads trust and applies it to the running node."""

    def __init__(
        self,
        trust: NodeTrustStores,
        pins: TrustPins,
        *,
        policy: PinnedPeersPolicy,
        peer_tls: ReloadableServerOptions,
        guarded: list[tuple[Any, LimitedSite]],
        reload_peer_urls: Callable[[], list[str]] = list,
        peer_moved: Callable[[str], None] = lambda peer: None,
        trust_changed: Callable[[TrustChanges], object] = lambda changes: None,
        identity: NodeIdentity | None = None,
    ) -> None:
        """``reload_peer_urls`` re-reads the peers' URLs and names the moved peers;
        ``peer_moved`` is told of each (its directory is synchronised at once);
        ``trust_changed`` is told when the reload changed what the node trusts
        (it records TRUST_CHANGED in the audit log)."""
        self._trust = trust
        self._pins = pins
        self._policy = policy
        self._peer_tls = peer_tls
        self._guarded = guarded
        self._reload_peer_urls = reload_peer_urls
        self._peer_moved = peer_moved
        self._trust_changed = trust_changed
        self._identity = identity

    def __call__(self) -> TrustChanges:
        if self._identity is not None:
            self._identity.reload()
        changes = self._trust.reload()
        moved = self._reload_peer_urls()
        self._peer_tls.set_client_cas(self._pins.peer_cas())
        self._policy.set_peers(self._pins.pinned_servers())
        for peer in moved:
            self._peer_moved(peer)
        closed = sum(guard.close_untrusted(site.channels) for guard, site in self._guarded)
        log.info(
            "Trust reloaded: national systems {national} (+{national_added} "
            "-{national_removed}), peers {peers} (+{peers_added} -{peers_removed}), "
            "revoked {revoked} (+{revoked_added}); closed {closed} connection(s) "
            "no longer trusted",
            national=changes.national_total,
            national_added=changes.national_added,
            national_removed=changes.national_removed,
            peers=changes.peers_total,
            peers_added=changes.peers_added,
            peers_removed=changes.peers_removed,
            revoked=changes.revoked_total,
            revoked_added=changes.revoked_added,
            closed=closed,
        )
        if changes.changed:
            self._trust_changed(changes)
        return changes


def record_trust_change(runtime: Runtime, trust: NodeTrust) -> Deferred[object]:
    """Record TRUST_CHANGED (actor this node) with the keyed digest of the trust now applied.

    Its own small transaction: the change is in memory and in files, not in
    the database. A failure to record is logged.
    """
    digest = runtime.audit_key.digest(trust_listing(trust))
    d: Deferred[object] = runtime.db.run_txn(
        append_audit_txn,
        at=runtime.clock.now(),
        event=Event.TRUST_CHANGED,
        actor=node_actor(runtime.node_id),
        digest=digest,
    )
    d.addErrback(lambda failure: log.failure("Recording a trust change failed", failure))
    return d


__all__ = ["NodeIdentity", "RotatingSigner", "TrustPins", "TrustReloader", "record_trust_change"]
