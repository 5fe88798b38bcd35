"""``GET /ready``: whether the node can do its work now (``/health`` only says it is alive).

The node is ready when all of these hold; otherwise ``/ready`` answers 503
and names each that does not (codes and ids only):

* it is running (not starting, not stopping);
* its database answers a query;
* its keys are loaded (the signer and the TLS key, loaded once at start);
* its listeners are bound (the national-system API and the peer API);
* every configured peer's trust is loaded (the peer bundle was imported).

A load balancer or an orchestrator sends traffic only to a ready node;
systemd hears READY=1 when the node has started (``gateway.node.process``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from gateway.node.listeners import Listener


class Readiness:
    """The readiness checks of one node (see the module docstring)."""

    def __init__(
        self,
        *,
        running: Callable[[], bool],
        database: Callable[[], Deferred[Any]],
        keys_loaded: Callable[[], bool],
        configured_peers: Callable[[], Iterable[str]],
        trusted_peers: Callable[[], Iterable[str]],
    ) -> None:
        self._running = running
        self._database = database
        self._keys_loaded = keys_loaded
        self._listeners: list[Listener] = []
        self._configured_peers = configured_peers
        self._trusted_peers = trusted_peers

    def watch(self, *listeners: Listener) -> None:
        """Count ``listeners`` among the checks (they are built after the health resource)."""
        self._listeners.extend(listeners)

    def check(self) -> Deferred[list[str]]:
        """The reasons the node is not ready (empty when it is)."""
        return ensureDeferred(self._reasons())

    async def _reasons(self) -> list[str]:
        reasons: list[str] = []
        if not self._running():
            reasons.append("NODE_NOT_RUNNING: the node is starting or stopping")
        try:
            await self._database()
        except Exception as exc:
            code = getattr(exc, "code", type(exc).__name__)
            reasons.append(f"{code}: the database does not answer")
        if not self._keys_loaded():
            reasons.append("KEYS_NOT_LOADED: the node's keys are not loaded")
        for listener in self._listeners:
            if not listener.running or not listener.bound:
                reasons.append(f"LISTENER_DOWN: the {listener.name} is not listening")
        missing = sorted(set(self._configured_peers()) - set(self._trusted_peers()))
        for peer in missing:
            reasons.append(f"PEER_TRUST_MISSING: no trust is loaded for peer {peer}")
        return reasons


__all__ = ["Readiness"]
