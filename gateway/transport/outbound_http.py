"""The one outbound HTTP request path: peers, push callbacks and translation engines.

Every HTTP request the node makes goes through :func:`send` and
:func:`read_body` on a plain ``twisted.web.client.Agent``, with none of the
wrappers a convenience client adds (treq always adds content decoding and a
cookie jar, and follows redirects by default). The rules, each learned from
an attack that worked on an earlier version:

* **No redirects.** Any 3xx answer (except 304 Not Modified, which is a
  cache answer, not a redirect) is a failure with its own stable code; the
  ``Location`` is never requested, so a hostile server cannot steer the
  node to an address of its choosing (SSRF) outside the pinned-TLS policy.
* **No content encodings.** Requests say ``Accept-Encoding: identity``; an
  answer with any other ``Content-Encoding`` is refused from its headers,
  without reading a byte of its body, so nothing is ever inflated
  (decompression bombs).
* **Bodies are capped while they stream.** A declared ``Content-Length``
  over the cap is refused before reading; otherwise the connection is cut
  as soon as the cap is passed.
* **Timeouts run on the injected clock** (:func:`with_timeout`); a timed-out
  request is cancelled, which closes its connection.

What each refusal is called (its error class and stable code) belongs to the
caller's domain: a :class:`Refusals` names them. Nothing here logs request
or response bodies, or the ``Location`` a server answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hyperlink import URL
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from gateway import __version__

USER_AGENT = f"imi-gateway/{__version__}".encode("ascii")
#: HTTP 304 Not Modified: a cache answer without a body, not a redirect.
NOT_MODIFIED = 304


@dataclass(frozen=True)
class Refusals:
    """The errors a caller reports for each refusal; each takes a message without values."""

    redirected: Callable[[str], Exception]
    encoded: Callable[[str], Exception]
    too_large: Callable[[str], Exception]


def make_agent(
    reactor: Any,
    policy: IPolicyForHTTPS,
    *,
    max_per_host: int,
    idle_seconds: int,
    connect_timeout: float | None = None,
) -> tuple[Agent, HTTPConnectionPool]:
    """A plain Agent with its own persistent connection pool (close the pool at shutdown)."""
    pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]  # untyped in Twisted
    pool.maxPersistentPerHost = max_per_host
    pool.cachedConnectionTimeout = idle_seconds
    agent = Agent(reactor, contextFactory=policy, pool=pool, connectTimeout=connect_timeout)  # type: ignore[no-untyped-call]  # Agent() is untyped
    return agent, pool


@implementer(IBodyProducer)
class BytesProducer:
    """A request body already in memory (no cooperator, no global reactor)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def send(
    agent: IAgent,
    method: str,
    url: str,
    refusals: Refusals,
    *,
    what: str,
    body: bytes | None = None,
    headers: Mapping[bytes, bytes] | None = None,
) -> Deferred[IResponse]:
    """One request; the response once its status and headers pass :func:`check_head`.

    ``what`` names the other side in error messages (never a URL's path or query).
    """
    all_headers = Headers({b"User-Agent": [USER_AGENT], b"Accept-Encoding": [b"identity"]})
    for name, value in (headers or {}).items():
        all_headers.setRawHeaders(name, [value])
    producer = BytesProducer(body) if body is not None else None
    uri = URL.from_text(url).to_uri().to_text().encode("ascii")  # non-ASCII percent-encoded
    d: Deferred[IResponse] = agent.request(method.encode("ascii"), uri, all_headers, producer)
    d.addCallback(check_head, refusals, what)
    return d


def check_head(response: IResponse, refusals: Refusals, what: str) -> IResponse:
    """Refuse a redirect or an encoded answer from its headers; its body is never read."""
    if 300 <= response.code < 400 and response.code != NOT_MODIFIED:
        discard(response)
        raise refusals.redirected(
            f"{what} answered HTTP {response.code} (a redirect); redirects are never followed"
        )
    encodings = [
        coding.strip().lower()
        for raw in response.headers.getRawHeaders(b"content-encoding", [])
        for coding in raw.split(b",")
        if coding.strip()
    ]
    if any(coding != b"identity" for coding in encodings):
        discard(response)
        raise refusals.encoded(
            f"{what} answered with a Content-Encoding; only identity is accepted"
        )
    return response


def discard(response: IResponse) -> None:
    """Close the response's connection without reading its body."""
    response.deliverBody(_Discarder())  # type: ignore[no-untyped-call]  # IResponse.deliverBody is untyped


class _Discarder(Protocol):
    def makeConnection(self, transport: Any) -> None:
        _cut(transport)  # aborts the connection: nothing more is read


def _cut(transport: Any) -> None:
    """Abort a response body's connection (its transport is the body's producer)."""
    transport.stopProducing()


class LimitedBody(Protocol):
    """Collects a response body up to a limit; the connection is cut when it is passed."""

    def __init__(self, max_bytes: int, too_large: Callable[[], Exception]) -> None:
        self.max_bytes = max_bytes
        self._too_large = too_large
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, _: Deferred[bytes]) -> None:
        if self.transport is not None:
            _cut(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            self.chunks.clear()
            if self.transport is not None:
                _cut(self.transport)
            self.finished.errback(self._too_large())
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if isinstance(reason.value, ResponseDone | PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


def read_body(
    response: IResponse, max_bytes: int, refusals: Refusals, *, what: str
) -> Deferred[bytes]:
    """Read a response body of at most ``max_bytes``, cut off beyond.

    A declared length over the cap is refused without reading. Cancelling the
    returned Deferred closes the connection.
    """

    def too_large() -> Exception:
        return refusals.too_large(f"{what} answered more than the limit of {max_bytes} bytes")

    if isinstance(response.length, int) and response.length > max_bytes:
        discard(response)
        return fail(too_large())
    if response.length == 0:
        return succeed(b"")
    protocol = LimitedBody(max_bytes, too_large)
    response.deliverBody(protocol)  # type: ignore[no-untyped-call]  # IResponse.deliverBody is untyped
    return protocol.finished


def with_timeout(
    d: Deferred[Any], seconds: float, clock: IReactorTime, on_timeout: Callable[[], Exception]
) -> Deferred[Any]:
    """Cancel ``d`` after ``seconds`` on ``clock``; it then fails with ``on_timeout()``."""
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        d.cancel()

    call: IDelayedCall = clock.callLater(seconds, expire)

    def done(result: object) -> object:
        if call.active():
            call.cancel()
        if timed_out and isinstance(result, Failure):
            # Cancelling an Agent request fails it with ResponseNeverReceived or
            # CancelledError, depending on how far it got: all mean "timed out".
            return Failure(on_timeout())  # type: ignore[no-untyped-call]  # Failure() is untyped
        return result

    return d.addBoth(done)
