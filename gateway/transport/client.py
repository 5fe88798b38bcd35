"""The HTTPS client a node uses towards its peers (and national-system callbacks).

Persistent connections (one pool per node), mutual TLS with the node's TLS
certificate, each peer verified against its own CA only (see
``gateway.transport.tls.PinnedPeersPolicy``), a timeout per request on the
injected reactor, and a cap on response sizes. Errors come back as
``PeerUnreachable`` (network, TLS or timeout: retry later) or as an
``HTTPAnswer`` with the peer's status and body (the caller decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import treq
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS

from gateway.core.errors import Unavailable


class PeerUnreachable(Unavailable):
    """The peer node could not be reached (network, TLS or timeout); the message stays queued."""

    code = "PEER_UNREACHABLE"


class ResponseTooLarge(Unavailable):
    """The peer's answer exceeded the response size limit."""

    code = "PEER_RESPONSE_TOO_LARGE"


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
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = max_connections_per_host
        self._pool.cachedConnectionTimeout = 120
        self._client = treq.client.HTTPClient(
            Agent(reactor, contextFactory=policy, pool=self._pool)
        )
        self._timeout = timeout_seconds
        self._max = max_response_bytes

    @inlineCallbacks
    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/xml",
    ) -> Any:
        headers = {"Content-Type": [content_type]} if body is not None else {}
        try:
            response = yield self._client.request(
                method, url, data=body, headers=headers, timeout=self._timeout
            )
            length = response.length
            if isinstance(length, int) and length > self._max:
                response.original.deliverBody(_Discarder())
                raise ResponseTooLarge()
            chunks: list[bytes] = []
            size = [0]

            def collect(data: bytes) -> None:
                size[0] += len(data)
                if size[0] > self._max:
                    raise ResponseTooLarge()
                chunks.append(data)

            yield treq.collect(response, collect)
        except (ResponseTooLarge, PeerUnreachable):
            raise
        except Exception as exc:  # network, TLS, timeout: all mean "try again later"
            raise PeerUnreachable(
                f"{method} {urlsplit(url).netloc} failed: {type(exc).__name__}"
            ) from None
        content_type_header = response.headers.getRawHeaders(b"content-type", [b""])[0]
        return HTTPAnswer(response.code, b"".join(chunks), content_type_header.decode("latin-1"))

    def post(self, url: str, body: bytes) -> Deferred[HTTPAnswer]:
        return self.request("POST", url, body=body)  # type: ignore[no-any-return]

    def get(self, url: str) -> Deferred[HTTPAnswer]:
        return self.request("GET", url)  # type: ignore[no-any-return]

    def close(self) -> Deferred[None]:
        return self._pool.closeCachedConnections()  # type: ignore[no-any-return]


class _Discarder:
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass
