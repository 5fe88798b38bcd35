"""Connection-level limits of every listener: handshake timeout, header limit, connection cap.

Plain HTTP on loopback with the site's timers on a ``Clock``, so the
timeouts are exact and nothing sleeps. The same limits over real TLS on a
real node are in tests/service/test_listener_limits.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.web.resource import Resource

from gateway.transport.http import LimitedSite


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


class RawClient(protocol.Protocol):
    """Sends bytes as told and collects everything the server answers until it closes."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(self.received)


class Site:
    """A LimitedSite (default limits unless told) listening on 127.0.0.1, port 0."""

    def __init__(self, **limits: Any) -> None:
        self.clock = Clock()
        self.refusals: list[None] = []
        self.site = LimitedSite(
            Hello(),
            reactor=self.clock,
            max_body_bytes=1024 * 1024,
            request_deadline_seconds=30,
            on_connection_refused=lambda: self.refusals.append(None),
            **limits,
        )
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")

    async def connect(self) -> RawClient:
        number = self.port.getHost().port
        return await protocol.ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", number)

    async def settle(self) -> None:
        """Let the real reactor deliver what is in flight on loopback (a round trip)."""
        client = await self.connect()
        client.transport.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        await client.closed


@pytest.fixture
def site():
    made: list[Site] = []

    def make(**limits: Any) -> Site:
        made.append(Site(**limits))
        return made[-1]

    yield make
    for s in made:
        for channel in list(s.site.channels):
            channel.transport.abortConnection()
        s.port.stopListening()


GET = b"GET / HTTP/1.1\r\nHost: t\r\n"


@pytest_twisted.ensureDeferred
async def test_a_silent_connection_is_closed_at_the_10_s_default_handshake_timeout(site) -> None:
    s = site()
    silent = await s.connect()
    await s.settle()
    s.clock.advance(9.9)
    await s.settle()
    assert not silent.closed.called
    s.clock.advance(0.2)
    assert await silent.closed == b""  # closed without an answer: no request was started
    assert s.site.handshake_timeouts == 1


@pytest_twisted.ensureDeferred
async def test_the_handshake_timeout_is_configurable_and_spares_a_started_request(site) -> None:
    s = site(handshake_timeout_seconds=2)
    silent = await s.connect()
    talking = await s.connect()
    talking.transport.write(GET)  # the first request bytes arrive in time
    await s.settle()
    s.clock.advance(2.5)
    assert await silent.closed == b""
    talking.transport.write(b"\r\n")
    await s.settle()
    assert b"HTTP/1.1 200 " in talking.received and not talking.closed.called


@pytest_twisted.ensureDeferred
async def test_a_100_kb_header_line_is_answered_431_at_once(site) -> None:
    s = site()
    client = await s.connect()
    client.transport.write(GET + b"X-Long: " + b"a" * 100_000)  # no end of line, ever
    answer = await client.closed  # no clock advanced: the answer does not wait for a timeout
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert b"<Code>HEADERS_TOO_LARGE</Code>" in answer
    assert b"aaaa" not in answer


@pytest_twisted.ensureDeferred
async def test_many_headers_over_the_total_limit_are_answered_431(site) -> None:
    s = site(max_header_bytes=4096)
    client = await s.connect()
    client.transport.write(GET + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(30)))
    answer = await client.closed
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"<Code>HEADERS_TOO_LARGE</Code>" in answer
    assert b"4096" in answer


@pytest_twisted.ensureDeferred
async def test_headers_under_the_limit_are_served_and_the_count_restarts_per_request(site) -> None:
    s = site(max_header_bytes=4096)
    client = await s.connect()
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(15))  # ~3.2 KB
    client.transport.write((GET + headers + b"\r\n") * 2 + GET + b"Connection: close\r\n\r\n")
    answer = await client.closed
    assert answer.count(b"HTTP/1.1 200 ") == 3, answer


@pytest_twisted.ensureDeferred
async def test_connections_over_the_cap_are_closed_at_once_and_counted(site) -> None:
    s = site(max_connections=3)
    held = [await s.connect() for _ in range(3)]
    await_refused = [await s.connect() for _ in range(2)]
    for client in await_refused:
        assert await client.closed == b""  # closed on accept, no clock advanced
    assert len(s.refusals) == 2 and s.site.refused_connections == 2
    assert len(s.site.channels) == 3
    held[0].transport.loseConnection()
    await held[0].closed
    client = await s.connect()  # a free slot again
    client.transport.write(GET + b"Connection: close\r\n\r\n")
    assert (await client.closed).startswith(b"HTTP/1.1 200 ")


@pytest_twisted.ensureDeferred
async def test_refused_connections_are_logged_at_warn_once_a_minute_not_once_each(site) -> None:
    s = site(max_connections=1, handshake_timeout_seconds=200)  # the held one outlives a minute
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if "connection(s) refused" in event.get("log_format", ""):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        await s.connect()
        for _ in range(5):
            assert await (await s.connect()).closed == b""
        s.clock.advance(61)
        for _ in range(3):
            assert await (await s.connect()).closed == b""
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [e["count"] for e in events] == [1, 5]  # the first, then the rest of the minute
    assert all(e["log_level"] == LogLevel.warn for e in events)
    assert s.site.refused_connections == 8
