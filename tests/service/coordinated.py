"""Two real nodes with coordinators, on a clock the test moves (no sleeps).

Node NO has the requester NO-HELSEDIR and its national coordinator NO-KOORD;
node PT has the responder PT-OMD, another authority PT-ACSS (where forwards
go), its national coordinator PT-KOORD, a coordinator for PT-OMD alone (PT-KOORD-OMD: the more specific one, so the
responsible one for PT-OMD) and a coordinator of another authority
(PT-KOORD-ACSS: PT-OMD's exchanges are out of its scope).

Both nodes run on one :class:`ShiftedClock`: the reactor's time plus an
offset the test advances by days, so deadlines pass at once while TLS,
envelopes and replay windows see one consistent time on both nodes. The
deadline service is driven by calling ``run_once`` after each shift.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import reactor

from gateway.core.catalogue import load_catalogues
from gateway.core.coordinators import Coordinator, Scope
from gateway.core.docparts import Header
from gateway.core.documents import ExchangeDocument, to_xml
from gateway.keystore import issue_national_certificate
from gateway.storage.coordinators import CoordinatorRegistry
from gateway.storage.errors import ExchangeNotFound, MessageNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.messages import message_meta_txn
from gateway.testbed import NationalSystem, setup_nodes, start_in_process
from gateway.testbed.clock import ShiftedClock
from gateway.testbed.nodes import NationalCredentials
from tests.nodes import RunningNode, settled
from tests.transport.test_peer_security import refusal
from tests.waiting import until

REQUESTER, RESPONDER = "NO-HELSEDIR", "PT-OMD"
AUTHORITIES = {"NO": [REQUESTER], "PT": [RESPONDER, "PT-ACSS"]}
COORDINATORS = {
    "NO": [Coordinator("NO-KOORD", "Nasjonal IMI-koordinator", Scope.NATIONAL)],
    "PT": [
        Coordinator("PT-KOORD", "Coordenador nacional IMI", Scope.NATIONAL),
        Coordinator("PT-KOORD-OMD", "Coordenador da OMD", Scope.AUTHORITIES, ("PT-OMD",)),
        Coordinator("PT-KOORD-ACSS", "Coordenador da ACSS", Scope.AUTHORITIES, ("PT-ACSS",)),
    ],
}


@dataclass
class Bed:
    nodes: dict[str, RunningNode]
    systems: dict[str, NationalSystem]
    clock: ShiftedClock

    def db(self, country: str) -> Any:
        return self.nodes[country].parts.db

    async def exchange(self, country: str, exchange_id: str) -> Any:
        return await self.db(country).run_txn(exchange_txn, exchange_id)

    async def states(self, exchange_id: str) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for country in self.nodes:
            try:
                out[country] = (await self.exchange(country, exchange_id)).state
            except ExchangeNotFound:
                out[country] = None
        return out

    async def stored(self, country: str, message_id: str) -> bool:
        try:
            await self.db(country).run_txn(message_meta_txn, message_id)
        except MessageNotFound:
            return False
        return True

    async def on_both(self, message_id: str) -> None:
        """Wait until both nodes hold ``message_id`` (sent, and received by the peer)."""

        async def both() -> bool:
            return all([await self.stored(c, message_id) for c in self.nodes])

        await until(both)

    def header(
        self, exchange_id: str, sender: str, receiver: str, *, owner: str | None = None
    ) -> Header:
        document_id = f"{owner or sender}:{uuid.uuid4().hex[:20]}"
        return Header(exchange_id, document_id, sender, receiver, self.clock.now())

    async def submit(self, who: str, document: ExchangeDocument) -> tuple[int, str | None]:
        """A party's document to /api/v1/documents: (HTTP status, error code or None)."""
        system = self.systems[who]
        answer = await system.submit_raw(system.sign(to_xml(document)))
        return answer.status, None if answer.status == 200 else refusal(answer)[1]

    async def coordinate(
        self, who: str, document: ExchangeDocument, path: str = "/api/v1/coordination/documents"
    ) -> tuple[int, str | None]:
        """A coordinator's signed document posted to ``path``: (status, code or None)."""
        system = self.systems[who]
        answer = await system.client.post(system.url(path), system.sign(to_xml(document)))
        return answer.status, None if answer.status == 200 else refusal(answer)[1]

    async def get(self, who: str, path: str) -> Any:
        system = self.systems[who]
        return await system.client.get(system.url(path))


def register_coordinators(setups: dict[str, Any], base: Path) -> None:
    for country, coordinators in COORDINATORS.items():
        setup = setups[country]
        registry = CoordinatorRegistry(setup.node_dir)
        for coordinator in coordinators:
            issued = issue_national_certificate(
                setup.node_dir, coordinator.id, base / f"coord-{coordinator.id}", coordinator=True
            )
            registry.add(coordinator)
            setup.authorities[coordinator.id] = NationalCredentials(
                coordinator.id, issued.key_path, issued.certificate_path
            )


@contextlib.asynccontextmanager
async def coordinated_nodes(
    tmp_path: Path, extra_config: dict[str, str] | None = None
) -> AsyncIterator[Bed]:
    """Two running nodes with coordinators, on one shifted clock."""
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config=extra_config)
    register_coordinators(setups, tmp_path)
    clock = ShiftedClock(reactor)
    nodes = {}
    for country, setup in setups.items():
        service, parts = start_in_process(setup, reactor, catalogues=load_catalogues(), clock=clock)
        nodes[country] = RunningNode(setup, service, parts)
    await settled(nodes.values())
    systems = {
        a: NationalSystem(reactor, setups[a[:2]], a)
        for setup in setups.values()
        for a in setup.authorities
    }
    try:
        yield Bed(nodes, systems, clock)
    finally:
        for system in systems.values():
            await system.close()
        for node in nodes.values():
            if node.service.running:  # type: ignore[attr-defined]
                await node.stop()
