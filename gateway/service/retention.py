"""The retention service: erases the personal data of exchanges whose retention period has ended.

Every ``interval_seconds`` on the node's injected clock it asks the store for
due exchanges (:func:`~gateway.storage.exchanges.exchanges_due_for_erasure_txn`,
oldest first), once per legislation area with its own limits and once for the
rest, erases them ``batch_size`` at a time, one transaction a batch
(:func:`~gateway.storage.retention.erase_exchanges_txn`: data key destroyed,
sealed bodies gone, unsent copies dead), then compacts the database
(``Database.compact``) and has the :class:`~gateway.service.localization.Localizer`
forget the machine translations of the erased documents.

With the optional blocked stage (``blocked_after``), each run first blocks
the closed exchanges whose blocked stage has begun
(:func:`~gateway.storage.retention.block_exchanges_txn`), in batches too.
Each run also forgets the receipts of peer envelopes received longer ago
than twice the replay window (``keep_envelope_receipts_seconds``): a retried
envelope that old is refused by its creation time anyway.

Erasure is idempotent and each batch commits on its own, so a purge cut short
by a crash finishes at the next run after restart. Each batch erases set-based
(one statement per table, one insert of its audit entries), so it holds the
single SQLite writer briefly. Between two batches the purge pauses on the
clock: at least ``pause_seconds`` (the node yields one reactor turn), and
long enough that it works at most ``[retention] purge_share`` of the time
(measured on the clock: a batch that waited for a busy node makes the next
pause longer), so writers queued meanwhile get the database first and the
purge of a large backlog costs exchange throughput little. Each erasure is
logged with the exchange id and counts only, and recorded in the audit log
(``ERASED``) inside the erasing transaction.

Several processes of one node (PostgreSQL) each run this timer; a run takes
the node's retention :class:`~gateway.storage.run_lock.RunLock`, so one
process purges at a time and the others skip that turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from gateway.config import RetentionConfig
from gateway.core.retention import RetentionPolicy
from gateway.service.periodic import PeriodicService
from gateway.service.runtime import Runtime
from gateway.storage.exchanges import exchanges_due_for_erasure_txn
from gateway.storage.messages import purge_envelope_receipts_txn
from gateway.storage.retention import (
    ErasedExchange,
    block_exchanges_txn,
    erase_exchanges_txn,
    exchanges_due_for_blocking_txn,
)
from gateway.storage.run_lock import RunLock

__all__ = ["RetentionService"]

log = Logger()

#: ``forget(body)``: drop what in-memory caches derived from a document's signed bytes.
Forget = Callable[[bytes], Awaitable[None]]


class RetentionService(PeriodicService):
    """Runs the retention purge on the runtime's clock (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        settings: RetentionConfig,
        *,
        forget: Forget | None = None,
        keep_envelope_receipts_seconds: float | None = None,
        pause_seconds: float | None = None,
    ) -> None:
        """``pause_seconds``: the pause between two batches on the clock (0: one reactor
        turn; None: none, the next batch follows at once)."""
        super().__init__(runtime.clock, settings.interval_seconds, now=True)
        self._runtime = runtime
        self._settings = settings
        self._forget = forget
        self._keep_receipts = keep_envelope_receipts_seconds
        self._pause = pause_seconds
        self._lock = RunLock(runtime.db, "IMIRETEN")

    # -- service -------------------------------------------------------------------------

    # -- purging -------------------------------------------------------------------------

    def run_once(self) -> Deferred[int]:
        """Erase every exchange due now; the number erased. Never fails (errors are logged)."""
        d = Deferred.fromCoroutine(self._purge_alone())

        def failed(failure: object) -> int:
            log.failure("Retention purge failed; it is retried at the next run", failure)  # type: ignore[arg-type]
            return 0

        def finished(count: int) -> int:
            self._running = None
            return count

        d.addErrback(failed)
        if not d.called:  # still running: stopService waits for it
            self._running = d
            d.addCallback(finished)
        return d

    async def _purge_alone(self) -> int:
        """:meth:`_purge` unless another process of the node purges now (then 0)."""
        _, count = await self._lock.run(self._purge)
        return count or 0

    def _scopes(self) -> list[tuple[RetentionPolicy, str | None, tuple[str, ...]]]:
        areas = tuple(sorted(self._settings.areas))
        scopes: list[tuple[RetentionPolicy, str | None, tuple[str, ...]]] = [
            (self._settings.policy(area), area, ()) for area in areas
        ]
        scopes.append((self._settings.policy(None), None, areas))
        return scopes

    async def _yield(self, busy: float) -> None:
        """Let the reactor (and the writers queued for the database) run between two batches.

        After a batch that kept the purge ``busy`` seconds, pause long enough that
        the purge works at most ``purge_share`` of the time (a batch takes longer
        on a busy node, so the purge slows down under load); at least
        ``pause_seconds``.
        """
        share = self._settings.purge_share
        rest = busy * (1.0 - share) / share
        if self._pause is None and rest <= 0.0:
            return
        pause = max(self._pause or 0.0, rest)
        await deferLater(self._runtime.clock, pause, lambda: None)  # type: ignore[arg-type]  # seconds() and callLater suffice

    async def _block(self, now: datetime) -> int:
        runtime, batch, total = self._runtime, self._settings.batch_size, 0
        for policy, area, excluded in self._scopes():
            if policy.blocked_after is None:
                continue
            while True:
                began = runtime.clock.seconds()
                due: list[str] = await runtime.db.run_txn(
                    exchanges_due_for_blocking_txn,
                    closed_before=policy.blocked_after.before(now),
                    closed_since=policy.after_closure.before(now),  # not due for erasure yet
                    area=area,
                    exclude_areas=excluded,
                    limit=batch,
                )
                if not due:
                    break
                blocked: list[str] = await runtime.db.run_txn(
                    block_exchanges_txn, due, now=now, node=runtime.node_id
                )
                total += len(blocked)
                for exchange_id in blocked:
                    log.info(
                        "Blocked the personal data of exchange {exchange_id}",
                        exchange_id=exchange_id,
                    )
                if len(due) < batch or not blocked:
                    break
                await self._yield(runtime.clock.seconds() - began)
        return total

    async def _purge(self) -> int:
        runtime = self._runtime
        now = runtime.clock.now()
        batch = self._settings.batch_size
        total = 0
        await self._block(now)
        if self._keep_receipts is not None:
            forgotten: int = await runtime.db.run_txn(
                purge_envelope_receipts_txn,
                received_before=now - timedelta(seconds=self._keep_receipts),
            )
            if forgotten:
                log.info("Forgot {count} old envelope receipts", count=forgotten)
        for policy, area, excluded in self._scopes():
            while True:
                began = runtime.clock.seconds()
                due: list[str] = await runtime.db.run_txn(
                    exchanges_due_for_erasure_txn,
                    closed_before=policy.after_closure.before(now),
                    created_before=policy.if_never_closed.before(now),
                    area=area,
                    exclude_areas=excluded,
                    limit=batch,
                )
                if not due:
                    break
                erased: list[ErasedExchange] = await runtime.db.run_txn(
                    erase_exchanges_txn,
                    due,
                    now=now,
                    node=runtime.node_id,
                    # Open the bodies only when a cache derived something from them.
                    sealer=runtime.sealer if self._forget is not None else None,
                )
                total += len(erased)
                for one in erased:
                    log.info(
                        "Erased the personal data of exchange {exchange_id} ({messages} messages)",
                        exchange_id=one.exchange_id,
                        messages=one.messages,
                    )
                    await self._forget_bodies(one)
                if len(due) < batch or not erased:
                    break
                await self._yield(runtime.clock.seconds() - began)
        if total:
            await runtime.db.compact()
            log.info("Retention purge erased {count} exchanges", count=total)
        return total

    async def _forget_bodies(self, erased: ErasedExchange) -> None:
        if self._forget is None:
            return
        for body in erased.bodies:
            try:
                await self._forget(body)
            except Exception as exc:  # a cache that fails must not stop the purge
                log.error(
                    "Cannot drop the translations of erased exchange {exchange_id} ({error_type})",
                    exchange_id=erased.exchange_id,
                    error_type=type(exc).__name__,
                )
