"""The audit checkpoint service on task.Clock: two nodes' services wired to each other directly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from twisted.internet.defer import Deferred, fail, succeed

from gateway.adapters.timestamping import TimestampUnavailable
from gateway.core import certs
from gateway.core.audit_checkpoint import (
    AuditCheckpointInconsistent,
    Offer,
    offer_document,
    read_signed_checkpoint,
)
from gateway.core.errors import GatewayError
from gateway.service.audit_checkpoints import AuditCheckpointService
from gateway.storage.audit import append_audit_txn
from gateway.storage.audit_checkpoints import (
    held_peer_checkpoint_txn,
    newest_signed_checkpoint_txn,
    peer_checkpoints_txn,
    peer_conflicts_txn,
)
from tests.service.clocked import ClockedNode, clocked_node, fired

INTERVAL = 60.0


@dataclass
class Direct:
    """A peer's route, called directly on its service (what the peer listener would do)."""

    me: str
    others: dict[str, AuditCheckpointService]

    def held(self, peer: str) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self.others[peer].held(self.me))

    def offer(self, peer: str, body: bytes) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self.others[peer].receive(self.me, body))


@dataclass
class FlakyTSA:
    """A time-stamping authority that is down until ``up`` is set."""

    up: bool = False
    asked: int = 0

    def timestamp(self, imprint: bytes) -> Deferred[bytes]:
        self.asked += 1
        if not self.up:
            return fail(TimestampUnavailable("down"))
        return succeed(b"token over " + imprint)


@dataclass
class Pair:
    no: ClockedNode
    pt: ClockedNode
    services: dict[str, AuditCheckpointService]
    tsa: FlakyTSA


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    for c in ("no", "pt"):
        (tmp_path / c).mkdir()
    nodes = {c: clocked_node(tmp_path / c.lower(), node_id=c) for c in ("NO", "PT")}
    services: dict[str, AuditCheckpointService] = {}
    tsa = FlakyTSA()

    def trust_of(me: str) -> object:
        other = "PT" if me == "NO" else "NO"
        pem = certs.dump_pem_certificate(nodes[other].runtime.signer.certificate)
        store = certs.TrustStore.from_pem(pinned=[pem], cas=[])
        return lambda peer: store

    for me, node in nodes.items():
        other = "PT" if me == "NO" else "NO"
        services[me] = AuditCheckpointService(
            node.runtime,
            interval=INTERVAL,
            peer_ids=lambda other=other: [other],
            peers=Direct(me, services),
            peer_trust=trust_of(me),  # type: ignore[arg-type]
            tsa=tsa if me == "NO" else None,
        )
    for service in services.values():
        service.startService()
    yield Pair(nodes["NO"], nodes["PT"], services, tsa)
    for service in services.values():
        service.stopService()
    for node in nodes.values():
        node.stop()


def append(node: ClockedNode, n: int) -> None:
    for i in range(n):
        fired(
            node.db.run_txn(
                append_audit_txn,
                at=node.runtime.clock.now(),
                event="SUBMITTED",
                actor="NO-HELSEDIR",
                exchange_id=f"IMI-NO-2025-{i:06d}",
            )
        )


def tick(pair: Pair) -> None:
    pair.no.clock.advance(INTERVAL)
    pair.pt.clock.advance(INTERVAL)


def held_size(pair: Pair) -> int:
    held = fired(pair.pt.db.run_txn(held_peer_checkpoint_txn, "NO"))
    return 0 if held is None else held.checkpoint.size


def test_a_checkpoint_is_signed_when_the_log_grew_and_only_then(pair: Pair) -> None:
    tick(pair)
    assert fired(pair.no.db.run_txn(newest_signed_checkpoint_txn)) is None  # empty log
    append(pair.no, 3)
    tick(pair)
    first = fired(pair.no.db.run_txn(newest_signed_checkpoint_txn))
    assert first.checkpoint.size == 3
    pem = certs.dump_pem_certificate(pair.no.runtime.signer.certificate)
    trust = certs.TrustStore.from_pem(pinned=[pem], cas=[])
    now = pair.no.runtime.clock.now()
    assert read_signed_checkpoint(first.signed, trust, now=now, node_id="NO").checkpoint == (
        first.checkpoint
    )
    tick(pair)
    assert fired(pair.no.db.run_txn(newest_signed_checkpoint_txn)) == first
    append(pair.no, 1)
    tick(pair)
    assert fired(pair.no.db.run_txn(newest_signed_checkpoint_txn)).checkpoint.size == 4


def test_a_peer_holds_each_checkpoint_proven_consistent_with_the_one_before(pair: Pair) -> None:
    for grown in (1, 2, 5, 1, 8):
        append(pair.no, grown)
        tick(pair)
    assert held_size(pair) == 17
    held = fired(pair.pt.db.run_txn(peer_checkpoints_txn))
    assert held["NO"][1] == 5  # every checkpoint kept, each consistent with the one before
    assert fired(pair.pt.db.run_txn(peer_conflicts_txn)) == []


def test_a_node_that_rewrites_its_history_is_caught_by_its_peer(pair: Pair) -> None:
    append(pair.no, 4)
    tick(pair)
    assert held_size(pair) == 4
    held_before = fired(pair.pt.db.run_txn(held_peer_checkpoint_txn, "NO"))
    # The operator of NO rewrites entry 2 in the database, hash and all, then carries on.
    with pair.no.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"))
    append(pair.no, 1)
    service = pair.services["NO"]
    fired(Deferred.fromCoroutine(service.record()))
    with pytest.raises(AuditCheckpointInconsistent):
        fired(Deferred.fromCoroutine(service.send_to("PT")))  # the refusal reaches NO
    assert fired(pair.no.db.run_txn(newest_signed_checkpoint_txn)).checkpoint.size == 5
    assert fired(pair.pt.db.run_txn(held_peer_checkpoint_txn, "NO")) == held_before
    (conflict,) = fired(pair.pt.db.run_txn(peer_conflicts_txn))
    assert (conflict.peer, conflict.code, conflict.held_size, conflict.offered_size) == (
        "NO",
        "AUDIT_CHECKPOINT_INCONSISTENT",
        4,
        5,
    )
    metric = pair.pt.runtime.metrics.audit_checkpoint_conflicts.labels(peer="NO")
    assert metric._value.get() == 1
    tick(pair)  # the timer's runs are refused the same way and never fail the service
    assert held_size(pair) == 4
    assert len(fired(pair.pt.db.run_txn(peer_conflicts_txn))) == 2


def test_a_tsa_that_is_down_delays_only_the_token(pair: Pair) -> None:
    append(pair.no, 2)
    tick(pair)
    assert pair.tsa.asked == 1
    stored = fired(pair.no.db.run_txn(newest_signed_checkpoint_txn))
    assert stored.token is None  # kept untimestamped ...
    assert held_size(pair) == 2  # ... and exchanged all the same
    pair.tsa.up = True
    tick(pair)
    stored = fired(pair.no.db.run_txn(newest_signed_checkpoint_txn))
    assert stored.token is not None and stored.token.startswith(b"token over ")
    append(pair.no, 1)
    tick(pair)
    held = fired(pair.pt.db.run_txn(held_peer_checkpoint_txn, "NO"))
    assert held.checkpoint.size == 3 and held.token is not None  # sent with its token


def test_a_checkpoint_offered_by_another_node_is_refused(pair: Pair) -> None:
    append(pair.pt, 2)
    tick(pair)
    pt_cp = fired(pair.pt.db.run_txn(newest_signed_checkpoint_txn))
    with pytest.raises(GatewayError) as caught:
        fired(
            Deferred.fromCoroutine(
                pair.services["PT"].receive("NO", offer_document(Offer(pt_cp.signed)))
            )
        )
    assert caught.value.code in ("AUDIT_CHECKPOINT_INVALID", "AUDIT_CHECKPOINT_WRONG_NODE")
