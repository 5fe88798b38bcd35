"""A running node's HTTPS listeners refuse oversize bodies up front and cut off trickling clients.

Real nodes on loopback, reached over real mutual TLS by raw clients that
write exactly the bytes a hostile client would:

* a request declaring (or streaming, chunked) a 50 MB body is answered 413
  DOCUMENT_TOO_LARGE by the national API and by the peer API before the
  body is buffered: no handler is called, no temporary file is created
  (``LimitedRequest`` keeps bodies in memory and refuses at the cap), and
  the client could not push the whole body;
* a client that trickles its request a byte at a time (slowloris) is
  answered 408 REQUEST_TIMEOUT and disconnected once the total request
  deadline has passed, while other clients keep being served.

The slowloris test needs real time on the real reactor: the deadline is a
real timer of the node (set to 2 s through ``[limits]``). The test does not
sleep: it waits for the slow connection's connection-lost event; the
trickle is a LoopingCall that stops with the connection.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from gateway.core.certs import load_pem_certificate, load_pem_private_key
from gateway.core.documents import to_xml
from gateway.keystore import NodeKeys, load_node_keys
from gateway.testbed import NodeSetup, doctor_request
from gateway.transport.tls import PinnedPeersPolicy
from tests.nodes import two_nodes
from tests.service.bed import row_counts

MB = 1024 * 1024
DEADLINE = 2
LIMITS = {"NO": f"[limits]\nrequest_deadline_seconds = {DEADLINE}\n"}


class RawTLSClient(protocol.Protocol):
    """Writes what it is told over TLS and collects the whole answer until the connection ends."""

    def __init__(self) -> None:
        self.received = b""
        self.sent = 0
        #: Bytes written when the first byte of the answer arrived.
        self.sent_when_answered: int | None = None
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def write(self, data: bytes) -> None:
        self.sent += len(data)
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        if self.sent_when_answered is None:
            self.sent_when_answered = self.sent
            # Like an HTTP client given a final answer: stop sending the body.
            if self.transport.producer is not None:
                self.transport.producer.stopProducing()
                self.transport.unregisterProducer()
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        self.closed.callback(self.received)


@implementer(IPullProducer)
class BodyProducer:
    """Feeds ``total`` bytes of body, 64 KiB at a time, as fast as the connection takes them."""

    def __init__(self, client: RawTLSClient, total: int, *, chunked: bool) -> None:
        self._client = client
        self._left = total
        self._chunked = chunked

    def resumeProducing(self) -> None:
        if self._left <= 0:
            return
        piece = b"x" * min(65536, self._left)
        self._left -= len(piece)
        if self._chunked:
            self._client.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        else:
            self._client.write(piece)

    def stopProducing(self) -> None:
        self._left = 0


async def connect(port: int, key: Any, cert: Any, server: NodeKeys) -> RawTLSClient:
    """A raw TLS connection to 127.0.0.1:``port`` with a client certificate, server pinned."""
    policy = PinnedPeersPolicy(
        key, cert, {("127.0.0.1", port): (server.ca.certificate, server.tls.certificate)}
    )
    creator = policy.creatorForNetloc(b"127.0.0.1", port)
    endpoint = wrapClientTLS(creator, TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    return await connectProtocol(endpoint, RawTLSClient())


async def national_connection(setup: NodeSetup, authority: str) -> RawTLSClient:
    creds = setup.authorities[authority]
    key = load_pem_private_key(creds.key_path.read_bytes())
    cert = load_pem_certificate(creds.certificate_path.read_bytes())
    return await connect(setup.api_port, key, cert, load_node_keys(setup.node_dir))


async def peer_connection(setup: NodeSetup, sender: NodeSetup) -> RawTLSClient:
    tls = load_node_keys(sender.node_dir).tls
    return await connect(setup.peer_port, tls.key, tls.certificate, load_node_keys(setup.node_dir))


def head(path: str, *, length: int | None) -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/xml\r\n%s\r\n\r\n" % (
        path.encode(),
        framing,
    )


@pytest.fixture
def temporary_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every anonymous temporary file created in this process.

    twisted.web's stock Request spools a body over 100 kB to ``TemporaryFile()``;
    ``mkstemp`` is left alone (the node writes its own state files atomically with it).
    """
    made: list[str] = []

    def recording(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def make(*args: Any, **kwargs: Any) -> Any:
            made.append(name)
            return original(*args, **kwargs)

        return make

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, recording(name, getattr(tempfile, name)))
    return made


def handler_calls(monkeypatch: pytest.MonkeyPatch, pipeline: Any) -> list[str]:
    """Records calls reaching the node's pipeline (the handlers behind both APIs)."""
    calls: list[str] = []
    for name in ("submit", "receive_envelope"):
        original = getattr(pipeline, name)

        def wrapper(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(pipeline, name, wrapper)
    return calls


@pytest_twisted.ensureDeferred
async def test_a_50_mb_body_is_refused_with_413_before_it_is_buffered(
    tmp_path, monkeypatch, temporary_files
) -> None:
    async with two_nodes(tmp_path, extra_config=LIMITS) as (nodes, systems):
        no = nodes["NO"]
        cap = no.parts.config.limits.max_body_bytes
        assert cap < 50 * MB
        calls = handler_calls(monkeypatch, no.parts.pipeline)
        before = await row_counts(no.parts.db)
        cases = [
            ("national API, declared", "/api/v1/documents", 50 * MB),
            ("national API, chunked", "/api/v1/documents", None),
            ("peer API, declared", "/peer/v1/envelopes", 50 * MB),
            ("peer API, chunked", "/peer/v1/envelopes", None),
        ]
        for case, path, length in cases:
            if path.startswith("/api"):
                client = await national_connection(no.setup, "NO-HELSEDIR")
            else:
                client = await peer_connection(no.setup, nodes["PT"].setup)
            client.write(head(path, length=length))
            client.transport.registerProducer(
                BodyProducer(client, 50 * MB, chunked=length is None), False
            )
            answer = await client.closed
            assert answer.startswith(b"HTTP/1.1 413 "), (case, answer[:200])
            assert b"<Code>DOCUMENT_TOO_LARGE</Code>" in answer, case
            # Answered while the body was still coming: at once for a declared
            # length, at the cap for a chunked body.
            assert client.sent_when_answered is not None
            if length is None:
                assert cap <= client.sent_when_answered < cap + 8 * MB, case
            else:
                assert client.sent_when_answered < 8 * MB, case
        assert calls == []
        assert temporary_files == []
        assert await row_counts(no.parts.db) == before

        # The listeners still serve normal requests.
        helsedir = systems["NO-HELSEDIR"]
        request = doctor_request("IMI-NO-LIM-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        receipt = await helsedir.submit(helsedir.sign(to_xml(request)))
        assert receipt.items[0].message_id == request.header.document_id


@pytest_twisted.ensureDeferred
async def test_a_trickling_client_is_cut_off_at_the_deadline_while_others_are_served(
    tmp_path,
) -> None:
    async with two_nodes(tmp_path, extra_config=LIMITS) as (nodes, systems):
        no = nodes["NO"]
        assert no.parts.config.limits.request_deadline_seconds == DEADLINE
        slow_api = await national_connection(no.setup, "NO-HELSEDIR")
        slow_peer = await peer_connection(no.setup, nodes["PT"].setup)
        started = reactor.seconds()
        trickles = []
        for slow, path in ((slow_api, "/api/v1/documents"), (slow_peer, "/peer/v1/envelopes")):
            slow.write(head(path, length=100_000))
            # A byte every 50 ms: an idle timeout would never fire.
            trickle = task.LoopingCall(slow.write, b"<")
            trickle.start(0.05)
            slow.closed.addBoth(lambda result, t=trickle: (t.stop(), result)[1])
            trickles.append(trickle)

        # Meanwhile, a national system is served on the same listener.
        helsedir = systems["NO-HELSEDIR"]
        request = doctor_request("IMI-NO-LIM-2", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        receipt = await helsedir.submit(helsedir.sign(to_xml(request)))
        assert receipt.items[0].message_id == request.header.document_id
        pulled = await systems["PT-OMD"].pull(wait=10)
        assert len(pulled.deliveries) == 1  # and the peer API took NO's envelope
        assert not slow_api.closed.called and not slow_peer.closed.called

        for slow in (slow_api, slow_peer):
            answer = await slow.closed  # the connection-lost event, not a sleep
            elapsed = reactor.seconds() - started
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"<Code>REQUEST_TIMEOUT</Code>" in answer
            assert DEADLINE * 0.9 <= elapsed < DEADLINE + 5
            assert slow.sent > len(head("/api/v1/documents", length=100_000)) + 10
        assert all(not t.running for t in trickles)
