"""A running node's listeners: bound addresses, header limit, connection cap and a 500-connection flood.

Real nodes on loopback with real mutual TLS. The limits are the node's own
timers on the real reactor (set small through ``[limits]``); the tests wait
for connection events with bounded timeouts, never sleep. The flood is held
by a separate process (tests/service/flood.py) so its 500 sockets do not
share this process's descriptors or reactor.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.logger import globalLogPublisher

from gateway.core.documents import to_xml
from gateway.testbed import doctor_request, setup_nodes
from tests.nodes import start_node, two_nodes
from tests.service.test_api_limits import national_connection, peer_connection
from tests.transport.test_connection_limits import RawClient
from tests.waiting import until

ROOT = Path(__file__).resolve().parents[2]


async def raw_tcp(port: int) -> RawClient:
    return await protocol.ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", port)


def within(d: defer.Deferred[Any], seconds: float) -> defer.Deferred[Any]:
    return d.addTimeout(seconds, reactor)


@pytest_twisted.ensureDeferred
async def test_each_listener_logs_the_address_and_port_it_binds(tmp_path) -> None:
    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"]
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if "listening on" in event.get("log_format", ""):
            lines.append(event["log_format"].format(**event))

    globalLogPublisher.addObserver(observe)
    try:
        node = start_node(setup)
    finally:
        globalLogPublisher.removeObserver(observe)
    try:
        assert sorted(lines) == sorted(
            [
                f"national-system API listening on 127.0.0.1:{setup.api_port} "
                "(at most 1000 connections)",
                f"peer API listening on 127.0.0.1:{setup.peer_port} (at most 1000 connections)",
                f"health and metrics listening on 127.0.0.1:{setup.metrics_port} "
                "(at most 64 connections)",
            ]
        )
        assert node.parts.api.address == f"127.0.0.1:{setup.api_port}"
    finally:
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_a_100_kb_header_line_over_tls_is_answered_431_at_once(tmp_path) -> None:
    async with two_nodes(tmp_path) as (nodes, _systems):
        no = nodes["NO"]
        for client in (
            await national_connection(no.setup, "NO-HELSEDIR"),
            await peer_connection(no.setup, nodes["PT"].setup),
        ):
            client.write(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 100_000)
            # Before: no answer until the 30 s request deadline.
            answer = await within(client.closed, 5)
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
            assert b"<Code>HEADERS_TOO_LARGE</Code>" in answer


@pytest_twisted.ensureDeferred
async def test_connections_over_the_cap_are_closed_on_accept_and_counted(tmp_path) -> None:
    config = {"NO": "[api]\nmax_connections = 4\n"}
    async with two_nodes(tmp_path, extra_config=config) as (nodes, systems):
        no = nodes["NO"]
        held = [await raw_tcp(no.setup.api_port) for _ in range(4)]
        over = [await raw_tcp(no.setup.api_port) for _ in range(3)]
        for client in over:
            assert await within(client.closed, 5) == b""  # no TLS handshake, no answer
        assert not any(client.closed.called for client in held)
        refused = no.parts.metrics.registry.get_sample_value(
            "imi_connections_refused_total", {"listener": "api"}
        )
        assert refused == 3
        held[0].transport.loseConnection()
        await held[0].closed
        pulled = await systems["NO-HELSEDIR"].pull()  # a free slot serves a real client
        assert pulled.deliveries == []


@pytest_twisted.ensureDeferred
async def test_normal_clients_are_served_while_500_idle_or_slow_connections_are_held(
    tmp_path,
) -> None:
    handshake, deadline = 3, 6
    config = {
        "NO": f"[limits]\nhandshake_timeout_seconds = {handshake}\n"
        f"request_deadline_seconds = {deadline}\n"
    }
    async with two_nodes(tmp_path, extra_config=config) as (nodes, systems):
        no = nodes["NO"]
        creds = no.setup.authorities["NO-HELSEDIR"]
        flood = FloodProcess()
        args = [str(no.setup.api_port), "250", "150", "100"]
        args += [str(creds.certificate_path), str(creds.key_path), str(deadline + 8)]
        reactor.spawnProcess(
            flood,
            sys.executable,
            [sys.executable, "-m", "tests.service.flood", *args],
            env=None,
            path=str(ROOT),
        )
        await within(flood.ready, 60)
        site = no.parts.api.site
        await until(lambda: len(site.channels) >= 500, timeout=60)  # this very listener

        # A national system submits a document and the peer's system receives it.
        helsedir = systems["NO-HELSEDIR"]
        request = doctor_request("IMI-NO-FLOOD-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        receipt = await within(helsedir.submit(helsedir.sign(to_xml(request))), 10)
        assert receipt.items[0].message_id == request.header.document_id
        pulled = await within(systems["PT-OMD"].pull(wait=10), 15)
        assert len(pulled.deliveries) == 1

        report = json.loads(await within(flood.done, deadline + 30))
        closed = report["closed"]
        # Idle and half-handshake connections: closed by the handshake timeout
        # (they lived 120 s before), the slow ones by the request deadline.
        for kind in ("idle", "half"):
            assert None not in closed[kind], kind
            assert max(closed[kind]) < handshake + 3, kind
        assert None not in closed["slow"]
        assert report["answers"].count("HTTP/1.1 408 Request Timeout") == 100
        assert site.handshake_timeouts >= 400
        assert site.refused_connections == 0


class FloodProcess(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.done: defer.Deferred[str] = defer.Deferred()
        self._out = b""
        self._err = b""

    def outReceived(self, data: bytes) -> None:
        self._out += data
        if not self.ready.called and b"ready\n" in self._out:
            self.ready.callback(None)

    def errReceived(self, data: bytes) -> None:
        self._err += data

    def processEnded(self, reason: Any) -> None:
        lines = self._out.decode().splitlines()
        if not self.ready.called:
            self.ready.errback(RuntimeError(self._err.decode()[-2000:]))
        if lines and lines[-1].startswith("{"):
            self.done.callback(lines[-1])
        else:
            self.done.errback(RuntimeError(self._err.decode()[-2000:]))
