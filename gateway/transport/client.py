"""The HTTPS client a node uses towards its peers (and national-system callbacks).

Persistent connections (one pool per node), mutual TLS with the node's TLS
certificate, each peer verified against its own CA only (see
``gateway.transport.tls.PinnedPeersPolicy``), a timeout per request on the
injected reactor, and a cap on response sizes. Requests go through the one
hardened outbound path (``gateway.transport.outbound_http``): redirects are
never followed and content encodings never accepted.

Errors come back as ``PeerUnreachable`` (network, TLS or timeout),
``PeerRedirected``, ``PeerContentEncoded`` or ``ResponseTooLarge`` (all
``Unavailable``: retry later), or as an ``HTTPAnswer`` with the peer's status
and body (the caller decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS, IResponse

from gateway.core.errors import GatewayError, Unavailable
from gateway.transport.outbound_http import Refusals, make_agent, read_body, send, with_timeout


class PeerUnreachable(Unavailable):
    """The peer node could not be reached (network, TLS or timeout); the message stays queued."""

    code = "PEER_UNREACHABLE"


class ResponseTooLarge(Unavailable):
    """The peer's answer exceeded the response size limit."""

    code = "PEER_RESPONSE_TOO_LARGE"


class PeerRedirected(Unavailable):
    """The peer (or push callback) answered with a redirect; redirects are never followed."""

    code = "PEER_REDIRECTED"


class PeerContentEncoded(Unavailable):
    """The peer (or push callback) answered with a content encoding (e.g. gzip); only identity is accepted."""

    code = "PEER_CONTENT_ENCODED"


PEER_REFUSALS = Refusals(
    redirected=PeerRedirected, encoded=PeerContentEncoded, too_large=ResponseTooLarge
)


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    body: bytes
    content_type: str


def netloc_of(url: str) -> tuple[str, int]:
    """(host, port) of an https URL, for the pinned-peers TLS policy."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url!r}")
    return parts.hostname, parts.port or 443


class HTTPSClient:
    def __init__(
        self,
        reactor: Any,
        policy: IPolicyForHTTPS,
        *,
        timeout_seconds: float = 30,
        max_response_bytes: int = 16 * 1024 * 1024,
        max_connections_per_host: int = 4,
    ) -> None:
        self._reactor = reactor
        self._agent, self._pool = make_agent(
            reactor, policy, max_per_host=max_connections_per_host, idle_seconds=120
        )
        self._timeout = timeout_seconds
        self._max = max_response_bytes

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/xml",
    ) -> Deferred[HTTPAnswer]:
        what = f"{method} {urlsplit(url).netloc}"
        headers = {b"Content-Type": content_type.encode("ascii")} if body is not None else {}

        def answer(response: IResponse) -> Deferred[HTTPAnswer]:
            kind = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1")
            d = read_body(response, self._max, PEER_REFUSALS, what=what)
            return d.addCallback(lambda data: HTTPAnswer(response.code, data, kind))

        sent = send(self._agent, method, url, PEER_REFUSALS, what=what, body=body, headers=headers)
        d = with_timeout(
            sent.addCallback(answer),
            self._timeout,
            self._reactor,
            lambda: PeerUnreachable(f"{what} failed: no answer within {self._timeout:g} s"),
        )
        return d.addErrback(_unreachable, what)

    def post(self, url: str, body: bytes) -> Deferred[HTTPAnswer]:
        return self.request("POST", url, body=body)

    def get(self, url: str) -> Deferred[HTTPAnswer]:
        return self.request("GET", url)

    def close(self) -> Deferred[None]:
        closed: Deferred[None] = self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]  # untyped in Twisted
        return closed


def _unreachable(failure: Failure, what: str) -> Failure:
    """Network, TLS and protocol failures all mean "try again later": PeerUnreachable."""
    if isinstance(failure.value, GatewayError):
        return failure
    unreachable = PeerUnreachable(f"{what} failed: {type(failure.value).__name__}")
    return Failure(unreachable)  # type: ignore[no-untyped-call]  # Failure() is untyped
