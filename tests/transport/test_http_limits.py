"""The HTTP edge refuses oversize bodies before buffering them and cuts off slow clients."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from gateway.transport.http import LimitedRequest, LimitedSite


class Echo(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render_POST(self, request):
        body = request.content.read()
        self.bodies.append(body)
        return b"got %d" % len(body)


class RawClient(protocol.Protocol):
    """Sends bytes as told and collects everything the server answers."""

    def __init__(self) -> None:
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.closed.callback(self.received)


@pytest.fixture
def server():
    clock = Clock()
    echo = Echo()
    site = LimitedSite(echo, reactor=clock, max_body_bytes=1024 * 1024, request_deadline_seconds=10)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield port.getHost().port, clock, echo
    port.stopListening()


async def _connect(port: int) -> RawClient:
    return await protocol.ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", port)


def _post(length: int, body: bytes = b"") -> bytes:
    return (b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % length) + body


@pytest_twisted.ensureDeferred
async def test_declared_oversize_body_is_refused_with_413_before_reading_it(server) -> None:
    port, _clock, echo = server
    client = await _connect(port)
    client.transport.write(_post(50 * 1024 * 1024))
    answer = await client.closed
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"<Code>DOCUMENT_TOO_LARGE</Code>" in answer
    assert echo.bodies == []


@pytest_twisted.ensureDeferred
async def test_chunked_body_is_cut_off_once_it_passes_the_cap(server) -> None:
    port, _clock, echo = server
    client = await _connect(port)
    chunk = b"x" * 65536
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    client.transport.write(head + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 20)
    answer = await client.closed
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert echo.bodies == []


@pytest_twisted.ensureDeferred
async def test_body_under_the_cap_is_accepted_in_memory(server) -> None:
    port, _clock, echo = server
    client = await _connect(port)
    body = b"y" * 300_000  # larger than twisted's 100 kB spill-to-disk threshold
    client.transport.write(
        _post(len(body), body).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n")
    )
    answer = await client.closed
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert echo.bodies == [body]


def test_request_content_is_never_a_temporary_file() -> None:
    request = LimitedRequest.__new__(LimitedRequest)

    class _Site:
        max_body_bytes = 10 * 1024 * 1024

    class _Channel:
        site = _Site()

    request.channel = _Channel()
    request.gotLength(5 * 1024 * 1024)
    import io

    assert isinstance(request.content, io.BytesIO)


@pytest_twisted.ensureDeferred
async def test_trickling_client_is_cut_off_while_others_are_served(server) -> None:
    port, clock, echo = server
    slow = await _connect(port)
    slow.transport.write(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Le")
    # The slow client keeps trickling a byte now and then, which would reset an idle timeout.
    for _ in range(9):
        await _roundtrip()
        clock.advance(1)
        slow.transport.write(b"n")
    # Meanwhile a normal client is served.
    normal = await _connect(port)
    normal.transport.write(
        b"POST /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    )
    assert (await normal.closed).startswith(b"HTTP/1.1 200 ")
    clock.advance(2)  # past the 10 s total deadline of the slow request
    answer = await slow.closed
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert echo.bodies == [b"ok"]


async def _roundtrip() -> None:
    """Let the loopback connection carry what was written (timers run on the fake clock)."""
    d = defer.Deferred()
    reactor.callLater(0.01, d.callback, None)
    await d
