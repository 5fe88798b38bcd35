"""The node's listeners: the national-system API, the peer API, health and metrics.

Each :class:`Listener` is a service that listens on one address while
running, on a :class:`~gateway.transport.http.LimitedSite` with the node's
limits. :func:`build_listeners` mounts the API resources under their guards
and returns the three listeners (added last to the node's service tree, so
they stop first). A worker process of a multi-process node
(:mod:`gateway.node.workers`) does not bind: it adopts the listening sockets
its supervisor bound once and handed down (``adopted``: file descriptors by
listener key), so every worker accepts connections on the same ports.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.resource import Resource

from gateway.config import NodeConfig
from gateway.service.metrics import NodeMetrics
from gateway.transport.http import LimitedSite

log = Logger()

#: Accepted connections the kernel queues until the node takes them (Twisted's default is 50:
#: a burst of connections would wait for SYN-ACK retransmissions, seconds each).
LISTEN_BACKLOG = 511


class Listener(Service):
    """Listens on one address and port while running; ``port`` is the bound port (useful with 0)."""

    def __init__(self, name: str, listen: Callable[[], IListeningPort], site: LimitedSite) -> None:
        self.name = name
        self._listen = listen
        self._site = site
        self._port: IListeningPort | None = None

    @property
    def site(self) -> LimitedSite:
        return self._site

    def _bound(self) -> IPv4Address | IPv6Address:
        """The TCP address the listener is bound to."""
        assert self._port is not None, f"{self.name} is not listening"
        bound = self._port.getHost()
        assert isinstance(bound, IPv4Address | IPv6Address), f"{self.name} listens on TCP"
        return bound

    @property
    def bound(self) -> bool:
        """True while the listener holds its port."""
        return self._port is not None

    @property
    def port(self) -> int:
        return int(self._bound().port)

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for IPv6) that the listener is bound to."""
        bound = self._bound()
        host = str(bound.host)
        return f"[{host}]:{bound.port}" if ":" in host else f"{host}:{bound.port}"

    def privilegedStartService(self) -> None:
        """Bind the port before any service starts: ``imi-gateway run`` calls this on the
        whole tree first, so a port in use stops the start before anything else runs
        (connections are taken only once the reactor turns, after ``startService``)."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]  # Service.privilegedStartService is untyped
        if self._port is None:
            self._port = self._listen()

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        if self._port is None:
            self._port = self._listen()
        bound = self._bound()
        log.info(
            "{name} listening on {address} (at most {limit} connections)",
            name=self.name,
            address=self.address,
            host=str(bound.host),
            port=int(bound.port),
            limit=self._site.max_connections,
        )

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        port, self._port = self._port, None
        self._site.close_connections()
        return maybeDeferred(port.stopListening) if port is not None else None


@dataclass(frozen=True)
class Listeners:
    api: Listener
    peer: Listener
    health: Listener

    def __iter__(self) -> Any:
        return iter((self.api, self.peer, self.health))


class SiteFactory:
    """Builds the node's limited sites (the same limits, metrics and reactor for each)."""

    def __init__(self, config: NodeConfig, reactor: Any, metrics: NodeMetrics) -> None:
        self._config = config
        self._reactor = reactor
        self._metrics = metrics

    def __call__(
        self, resource: Resource, name: str, max_connections: int, max_body_bytes: int
    ) -> LimitedSite:
        limits = self._config.limits
        return LimitedSite(
            resource,
            reactor=self._reactor,
            max_body_bytes=max_body_bytes,
            request_deadline_seconds=limits.request_deadline_seconds,
            handshake_timeout_seconds=limits.handshake_timeout_seconds,
            max_header_bytes=limits.max_header_bytes,
            max_connections=max_connections,
            name=name,
            on_connection_refused=self._metrics.connections_refused.labels(name).inc,
        )


def build_listeners(
    config: NodeConfig,
    reactor: Any,
    *,
    api_site: LimitedSite,
    api_tls: Any,
    peer_site: LimitedSite,
    peer_tls: Any,
    health_site: LimitedSite,
    adopted: Mapping[str, int] | None = None,
) -> Listeners:
    """The three listeners on the configured addresses (not started).

    ``adopted`` (keys ``api``, ``peer``, ``metrics``): listening sockets bound
    by a supervisor, adopted instead of bound (``reactor.adoptStreamPort``).
    """

    def listen(key: str, port: int, host: str, factory: Any) -> Callable[[], IListeningPort]:
        if adopted is not None:
            fd = adopted[key]
            os.set_blocking(fd, False)  # Twisted's ports are non-blocking
            return lambda: reactor.adoptStreamPort(fd, socket_family(fd), factory)
        return lambda: reactor.listenTCP(port, factory, backlog=LISTEN_BACKLOG, interface=host)

    api = Listener(
        "national-system API",
        listen("api", config.api.port, config.api.host, api_site.listening_factory(api_tls)),
        api_site,
    )
    peer = Listener(
        "peer API",
        listen("peer", config.peer.port, config.peer.host, peer_site.listening_factory(peer_tls)),
        peer_site,
    )
    health = Listener(
        "health and metrics",
        listen(
            "metrics", config.metrics.port, config.metrics.host, health_site.listening_factory()
        ),
        health_site,
    )
    return Listeners(api, peer, health)


def build_console_listener(
    config: NodeConfig,
    reactor: Any,
    *,
    site: LimitedSite,
    tls: Any | None,
    adopted_fd: int | None = None,
) -> Listener:
    """The admin console's listener (HTTPS unless ``[console] tls = false``).

    ``adopted_fd``: its listening socket, bound by a supervisor (``run --workers``).
    """
    console = config.console
    factory = site.listening_factory(tls) if tls is not None else site.listening_factory()
    if adopted_fd is not None:
        fd = adopted_fd
        os.set_blocking(fd, False)  # Twisted's ports are non-blocking
        return Listener(
            "admin console",
            lambda: reactor.adoptStreamPort(fd, socket_family(fd), factory),
            site,
        )
    return Listener(
        "admin console",
        lambda: reactor.listenTCP(console.port, factory, interface=console.host),
        site,
    )


def socket_family(fd: int) -> socket.AddressFamily:
    """The address family of the socket open on ``fd`` (which stays open)."""
    probe = socket.socket(fileno=fd)
    try:
        return probe.family
    finally:
        probe.detach()


__all__ = [
    "LISTEN_BACKLOG",
    "Listener",
    "Listeners",
    "SiteFactory",
    "build_console_listener",
    "build_listeners",
    "socket_family",
]
