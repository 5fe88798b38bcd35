"""The audit checkpoint service: signs tree heads, time-stamps them, exchanges them with peers.

Every ``[audit] checkpoint_interval`` seconds on the node's injected clock,
:meth:`AuditCheckpointService.run_once`:

1. records a node-signed checkpoint (size, Merkle root, time) of the audit
   log if it grew since the newest one (``storage/audit_checkpoints.py``);
2. with ``[audit] tsa_url``, asks the RFC 3161 authority for a token over the
   newest untimestamped checkpoint; a TSA that is down or refuses changes
   nothing but a warning: the checkpoint stays untimestamped and is asked
   for again at the next run;
3. offers its newest checkpoint to each peer (``POST
   /peer/v1/audit/checkpoints``) with the consistency proof from the size
   the peer says it holds (``GET`` of the same route), and the token.

The other side, :meth:`receive`: the offered checkpoint must be signed by
the calling peer's node key and extend the one held from it
(:func:`gateway.core.audit_checkpoint.check_offered`). One that does not is
refused with AUDIT_CHECKPOINT_INCONSISTENT, kept as evidence next to the old
one (which stays), logged at error and counted in
``imi_audit_checkpoint_conflicts_total{peer}``.

Nothing here blocks an exchange: the service runs on its own timer, and
every failure ends in a log line and a retry at the next run. Several
processes of one node (PostgreSQL) each run the timer; a run takes the node's
checkpoint :class:`~gateway.storage.run_lock.RunLock`, so one process records
and sends at a time and the others skip that turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.core import audit
from gateway.core.audit_checkpoint import (
    Offer,
    SignedCheckpoint,
    checkpoint_document,
    held_document,
    offer_document,
    read_held,
    read_offer,
    read_signed_checkpoint,
    timestamp_imprint,
)
from gateway.core.certs import TrustStore
from gateway.core.errors import GatewayError, Unavailable
from gateway.service.periodic import PeriodicService
from gateway.service.runtime import Runtime
from gateway.storage.audit import audit_log_txn
from gateway.storage.audit_checkpoints import (
    StoredCheckpoint,
    accept_peer_checkpoint_txn,
    held_peer_checkpoint_txn,
    newest_signed_checkpoint_txn,
    set_timestamp_txn,
    store_signed_checkpoint_txn,
    untimestamped_checkpoints_txn,
)
from gateway.storage.run_lock import RunLock

__all__ = ["AuditCheckpointService", "CheckpointPeers", "Timestamper"]

log = Logger()


class CheckpointPeers(Protocol):
    """The peers' checkpoint route: what a peer holds of this node, and an offer to it."""

    def held(self, peer: str) -> Deferred[bytes]: ...

    def offer(self, peer: str, body: bytes) -> Deferred[bytes]: ...


class Timestamper(Protocol):
    """An RFC 3161 authority (``gateway.adapters.timestamping.TSAClient``)."""

    def timestamp(self, imprint: bytes) -> Deferred[bytes]: ...


class AuditCheckpointService(PeriodicService):
    """Signs, time-stamps and exchanges audit checkpoints (see the module docstring)."""

    name = "audit-checkpoints"

    def __init__(
        self,
        runtime: Runtime,
        *,
        interval: float,
        peer_ids: Callable[[], Sequence[str]],
        peers: CheckpointPeers | None,
        peer_trust: Callable[[str], TrustStore],
        tsa: Timestamper | None = None,
    ) -> None:
        super().__init__(runtime.clock, interval, now=False)
        self._runtime = runtime
        self._peer_ids = peer_ids
        self._peers = peers
        self._peer_trust = peer_trust
        self._tsa = tsa
        self._lock = RunLock(runtime.db, "IMICHKPT")

    # -- service -------------------------------------------------------------------------

    def run_once(self) -> Deferred[None]:
        """Record, time-stamp and send (see the module docstring). Never fails."""
        d = Deferred.fromCoroutine(self._run_alone())

        def failed(failure: Any) -> None:
            log.failure("Audit checkpoint run failed; it is retried at the next run", failure)

        def finished(_: object) -> None:
            self._running = None

        d.addErrback(failed)
        if not d.called:
            self._running = d
            d.addCallback(finished)
        return d

    async def _run_alone(self) -> None:
        """:meth:`_run` unless another process of the node runs it now."""
        await self._lock.run(self._run)

    async def _run(self) -> None:
        await self.record()
        if self._tsa is not None:
            await self.timestamp_pending()
        if self._peers is not None:
            for peer in self._peer_ids():
                try:
                    await self.send_to(peer)
                except GatewayError as exc:
                    log.warn(
                        "Audit checkpoint not sent to {peer}: {code}; retried at the next run",
                        peer=peer,
                        code=exc.code,
                    )

    # -- this node's checkpoints -----------------------------------------------------------

    async def record(self) -> StoredCheckpoint | None:
        """Sign and keep a checkpoint if the log grew since the newest one; the newest."""
        runtime = self._runtime
        newest: StoredCheckpoint | None = await runtime.db.run_txn(newest_signed_checkpoint_txn)
        entries: list[audit.Entry] = await runtime.db.run_txn(audit_log_txn)
        if not entries or (newest is not None and newest.checkpoint.size >= len(entries)):
            return newest
        cp: audit.Checkpoint = await runtime.cpu(audit.checkpoint, entries, runtime.clock.now())
        signed: bytes = await runtime.cpu(
            runtime.signer.sign, checkpoint_document(runtime.node_id, cp)
        )
        await runtime.db.run_txn(store_signed_checkpoint_txn, cp, signed)
        log.info("Audit checkpoint signed at size {size}", size=cp.size)
        return StoredCheckpoint(cp, signed, None)

    async def timestamp_pending(self) -> bool:
        """Ask the TSA for a token over the newest untimestamped checkpoint; True if one was added."""
        assert self._tsa is not None
        pending: list[StoredCheckpoint] = await self._runtime.db.run_txn(
            untimestamped_checkpoints_txn, 1
        )
        if not pending:
            return False
        stored = pending[0]
        try:
            token = await self._tsa.timestamp(timestamp_imprint(stored.signed))
        except GatewayError as exc:
            log.warn(
                "Audit checkpoint {size} not time-stamped: {code}; retried at the next run",
                size=stored.checkpoint.size,
                code=exc.code,
            )
            return False
        await self._runtime.db.run_txn(set_timestamp_txn, stored.checkpoint.size, token)
        log.info("Audit checkpoint {size} time-stamped", size=stored.checkpoint.size)
        return True

    async def send_to(self, peer: str) -> bool:
        """Offer the newest checkpoint to ``peer`` if it holds an older one; True if sent."""
        assert self._peers is not None
        runtime = self._runtime
        node, size, _root = read_held(await self._peers.held(peer))
        if node != runtime.node_id:
            raise Unavailable(f"peer {peer} answered for another node")
        newest: StoredCheckpoint | None = await runtime.db.run_txn(newest_signed_checkpoint_txn)
        if newest is None or newest.checkpoint.size <= size:
            if newest is not None and newest.checkpoint.size < size:
                log.error(
                    "Peer {peer} holds an audit checkpoint of size {held} of this node, "
                    "larger than this node's log ({size}): was the database restored?",
                    peer=peer,
                    held=size,
                    size=newest.checkpoint.size,
                )
            return False
        proof: list[bytes] = []
        if size:
            entries: list[audit.Entry] = await runtime.db.run_txn(audit_log_txn)
            proof = await runtime.cpu(_proof, size, entries[: newest.checkpoint.size])
        offer = Offer(newest.signed, size, tuple(proof), newest.token)
        await self._peers.offer(peer, offer_document(offer))
        return True

    # -- the peers' checkpoints ------------------------------------------------------------

    async def held(self, peer: str) -> bytes:
        """The ``HeldCheckpoint`` answer: the newest checkpoint held from ``peer``."""
        stored: StoredCheckpoint | None = await self._runtime.db.run_txn(
            held_peer_checkpoint_txn, peer
        )
        return held_document(peer, stored.checkpoint if stored else None)

    async def receive(self, peer: str, body: bytes) -> bytes:
        """Take ``peer``'s ``CheckpointOffer``; the ``HeldCheckpoint`` after it, or raise."""
        runtime = self._runtime
        offer: Offer = await runtime.cpu(read_offer, body)
        signed: SignedCheckpoint = await runtime.cpu(
            read_signed_checkpoint,
            offer.signed,
            self._peer_trust(peer),
            now=runtime.clock.now(),
            node_id=peer,
        )
        conflict = await runtime.db.run_txn(
            accept_peer_checkpoint_txn,
            peer,
            signed,
            proof_from=offer.proof_from,
            proof=offer.proof,
            token=offer.token,
            now=runtime.clock.now(),
        )
        if conflict is not None:
            runtime.metrics.audit_checkpoint_conflicts.labels(peer=peer).inc()
            log.error(
                "Peer {peer} sent an audit checkpoint of size {size} that does not extend the "
                "one held ({code}): its history was rewritten; the held checkpoint stays and "
                "the offered one is kept as evidence (imi-gateway audit peers)",
                peer=peer,
                size=signed.checkpoint.size,
                code=conflict.code,
            )
            raise conflict
        return await self.held(peer)


def _proof(old_size: int, entries: Sequence[audit.Entry]) -> list[bytes]:
    leaves = [audit.leaf_hash(audit.entry_bytes(e)) for e in entries]
    return audit.consistency_proof(old_size, leaves)
