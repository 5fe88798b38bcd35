"""Nodes bind port 0 and report the ports they bound: no port is picked beforehand and released.

Picking a "free" port by binding port 0 and closing the socket, then
starting a node on it, races with every other process of the machine: one
took the port in between in a CI run ("Address already in use"). The test
bed now configures every listener with port 0; the node binds free ports
itself and reports them (``Listener.port``, the log, ``NODE_DIR/ports.json``).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest_twisted

from gateway.config import load_config
from gateway.node_ports import read_ports_file
from gateway.testbed import setup_nodes
from tests.nodes import start_node, two_nodes

REPO = Path(__file__).resolve().parents[2]


@pytest_twisted.ensureDeferred
async def test_a_test_bed_node_starts_although_every_port_it_was_configured_with_is_taken(
    tmp_path: Path,
) -> None:
    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"]
    config = load_config(setup.node_dir)
    configured = [config.api.port, config.peer.port, config.metrics.port]
    # Another process takes every port the configuration names (the race of a picked port).
    held = []
    for port in {p for p in configured if p}:
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        held.append(s)
    try:
        node = start_node(setup)
        try:
            assert configured == [0, 0, 0]
            bound = [node.parts.api.port, node.parts.peer.port, node.parts.health.port]
            assert 0 not in bound and len(set(bound)) == 3
            assert [setup.api_port, setup.peer_port, setup.metrics_port] == bound
            ports = read_ports_file(setup.node_dir)
            assert ports is not None
            assert (ports.api, ports.peer, ports.metrics, ports.pid) == (*bound, os.getpid())
        finally:
            await node.stop()
        assert read_ports_file(setup.node_dir) is None  # removed at the clean stop
    finally:
        for s in held:
            s.close()


@pytest_twisted.ensureDeferred
async def test_two_nodes_on_port_0_learn_each_others_peer_url_and_exchange(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from gateway.core.documents import to_xml
    from gateway.testbed import doctor_request

    async with two_nodes(tmp_path) as (nodes, systems):
        for node, peer in (("NO", "PT"), ("PT", "NO")):
            urls = {p.id: p.url for p in load_config(nodes[node].setup.node_dir).peers}
            assert urls[peer] == f"https://127.0.0.1:{nodes[peer].parts.peer.port}"
        no, pt = systems["NO-HELSEDIR"], systems["PT-OMD"]
        request = doctor_request("IMI-NO-PORT0-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        signed = no.sign(to_xml(request))
        await no.submit(signed)
        pulled = await pt.pull(wait=20)
        assert [d.document for d in pulled.deliveries] == [signed]


# A socket bound to port 0 only to read its number: a bind-and-release port pick.
_PICK = re.compile(r"""bind\(\(\s*["'][^"']*["']\s*,\s*0\s*\)\)""")


def test_no_code_picks_a_port_by_binding_and_releasing_it() -> None:
    offenders = []
    for top in ("gateway", "adapters", "tests", "scripts"):
        for path in sorted((REPO / top).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            if _PICK.search(text) or re.search(r"\bfree_ports\b", text):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
