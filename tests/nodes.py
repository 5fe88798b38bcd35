"""Two real nodes on loopback for tests: real TLS, real signatures, real storage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import reactor

from gateway.core.catalogue import load_catalogues
from gateway.node import NodeParts
from gateway.testbed import NationalSystem, NodeSetup, node_stopped, setup_nodes, start_in_process
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]}


@dataclass
class RunningNode:
    setup: NodeSetup
    service: object
    parts: NodeParts

    async def stop(self) -> None:
        node_stopped(self.setup)
        await self.service.stopService()  # type: ignore[attr-defined]


def start_node(setup: NodeSetup) -> RunningNode:
    """Start ``setup``'s node on free ports; the bed's other nodes learn its peer URL."""
    service, parts = start_in_process(setup, reactor, catalogues=load_catalogues())
    return RunningNode(setup, service, parts)


async def settled(nodes: Iterable[RunningNode]) -> None:
    """Wait until no node's start-up directory synchronisation runs.

    A synchronisation ends in a trust reload, which closes connections whose
    certificate is not trusted, such as a test's impostor request in flight.
    """
    syncs = [node.service.getServiceNamed("directory-sync") for node in nodes]  # type: ignore[attr-defined]
    await until(lambda: not any(sync.busy for sync in syncs))


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path,
    authorities: Mapping[str, Sequence[str]] = AUTHORITIES,
    extra_config: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[dict[str, RunningNode], dict[str, NationalSystem]]]:
    setups = setup_nodes(tmp_path, authorities, extra_config=extra_config)
    nodes = {c: start_node(s) for c, s in setups.items()}
    await settled(nodes.values())
    systems = {
        a: NationalSystem(reactor, setups[a[:2]], a) for ids in authorities.values() for a in ids
    }
    try:
        yield nodes, systems
    finally:
        for system in systems.values():
            await system.close()
        for node in nodes.values():
            if node.service.running:  # type: ignore[attr-defined]
                await node.stop()
