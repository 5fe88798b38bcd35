"""Deliveries to national systems: pull with a cursor (long-poll), or push to a callback.

Every delivered document is wrapped in a node-signed ``Delivery``: the
original signed bytes, unchanged, plus renderings of its codes in the node's
languages. Deliveries are built when handed out, so a rendering completed
later (a machine translation that arrived) is included in the next hand-out.

Pull: ``GET /api/v1/deliveries?after=N`` acknowledges everything up to and
including cursor N and returns what follows, waiting up to ``wait`` seconds
when nothing is there yet. A national system that crashes before storing a
batch simply asks again with its old cursor: nothing is lost and nothing it
acknowledged comes twice.

Personal data: every document handed out is unsealed through
``storage/personal_data.py: read_personal_data_txn``, for the authority it
goes to and only while that authority is party to the exchange (the
requester or the current responder); each read is an audit entry
(PERSONAL_DATA_READ) in the same transaction. A Forward withdraws the former
responder's waiting deliveries of that exchange; one that a pull or a push
had already picked up is withheld (PERSONAL_DATA_WITHHELD): a pull skips it
and its cursor moves on, a push is stopped (dead, still never readable).

Push: for authorities configured with a ``push_url``, a :class:`Pusher`
claims undelivered rows and POSTs each signed Delivery to the callback over
mutual TLS (the node's TLS certificate), retrying with backoff; a 2xx answer
marks it delivered. Anything else is a failed push, retried with backoff: a
non-2xx status, a redirect (PEER_REDIRECTED: never followed), an encoded or
oversize answer, an unreachable callback, or an unexpected error
(PUSH_CYCLE_FAILED). Every claimed push ends delivered or back in the queue.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.core.access import PersonalDataWithheld
from gateway.core.envelopes import Rendering, build_delivery
from gateway.core.errors import GatewayError, Unavailable
from gateway.core.retry import Backoff
from gateway.service.leased_queue import LeasedQueueWorker
from gateway.service.runtime import Runtime
from gateway.service.waiters import Waiters
from gateway.storage.deliveries import (
    claim_push_deliveries_txn,
    mark_push_dead_txn,
    mark_push_delivered_txn,
    mark_push_failed_txn,
    pending_deliveries_txn,
    pull_deliveries_txn,
)
from gateway.storage.leases import IDLE_POLL_SECONDS
from gateway.storage.model import Delivery as DeliveryRow
from gateway.storage.model import PushItem
from gateway.storage.personal_data import PersonalData, read_personal_data_txn
from gateway.transport.client import HTTPSClient

log = Logger()

#: Renders one stored document (its signed bytes) into the node's languages.
Renderer = Callable[[bytes], Sequence[Rendering]]


class PushCycleFailed(Unavailable):
    """An unexpected error ended a push to a national system's callback; the push is retried with backoff."""

    code = "PUSH_CYCLE_FAILED"


@dataclass(frozen=True)
class HandedOut:
    """One signed Delivery and its cursor position."""

    seq: int
    message_id: str
    delivery: bytes


class Deliveries:
    def __init__(self, runtime: Runtime, *, waiters: Waiters, render: Renderer) -> None:
        self._rt = runtime
        self._waiters = waiters
        self._render = render

    def sign_delivery(self, row: DeliveryRow, body: bytes, now: datetime) -> bytes:
        root = build_delivery(
            f"dlv-{uuid.uuid4()}",
            self._rt.node_id,
            row.authority_id,
            now,
            row.exchange_id,
            row.document_type,
            body,
            self._render(body),
        )
        return self._rt.signer.sign(root)

    def _sign_all(
        self, rows: Sequence[DeliveryRow], bodies: Mapping[str, bytes], now: datetime
    ) -> list[HandedOut]:
        out = []
        for row in rows:
            body = bodies.get(row.message_id)
            if body is None:  # erased, or withheld (no longer party): nothing to hand out
                continue
            out.append(HandedOut(row.seq, row.message_id, self.sign_delivery(row, body, now)))
        return out

    async def pull(
        self, authority: str, *, after: int, wait: float, limit: int
    ) -> tuple[list[HandedOut], int]:
        """Acknowledge up to ``after``; return (deliveries after it, the last cursor).

        One transaction acknowledges, lists and unseals (``pull_deliveries_txn``);
        when nothing is there it waits for news and lists and unseals again,
        until something came or ``wait`` seconds passed. It listens for news
        before it first looks, so a delivery committed while that transaction
        runs (in this process or, through a database notification, another)
        is not missed; a wake-up that brought nothing waits on.
        """
        clock = self._rt.clock
        deadline = clock.seconds() + wait
        news = self._waiters.wait(authority, wait) if wait > 0 else None
        try:
            rows, read = await self._pull_txn(authority, ack_up_to=after, after=after, limit=limit)
            while not rows and news is not None:
                woken = await news  # False: the wait is over; look a last time
                left = deadline - clock.seconds()
                news = self._waiters.wait(authority, left) if woken and left > 0 else None
                rows, read = await self._pull_txn(authority, ack_up_to=0, after=after, limit=limit)
        finally:
            if news is not None and not news.called:
                news.cancel()
        if not rows:
            return [], after
        handed: list[HandedOut] = await self._rt.cpu(
            self._sign_all, rows, read.bodies, self._rt.clock.now()
        )
        self._rt.metrics.deliveries.labels("pull").inc(len(handed))
        return handed, rows[-1].seq

    def _pull_txn(
        self, authority: str, *, ack_up_to: int, after: int, limit: int
    ) -> Deferred[tuple[list[DeliveryRow], PersonalData]]:
        return self._rt.db.run_txn(
            pull_deliveries_txn,
            authority,
            ack_up_to=ack_up_to,
            after=after,
            limit=limit,
            sealer=self._rt.sealer,
            audit_key=self._rt.audit_key,
            now=self._rt.clock.now(),
            node=self._rt.node_id,
        )


class Pusher(LeasedQueueWorker):
    """Pushes deliveries to the callback URLs of authorities configured for push."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        urls: dict[str, str],
        deliveries: Deliveries,
        client: HTTPSClient,
        backoff: Backoff,
    ) -> None:
        super().__init__(
            "push-deliveries",
            runtime.clock,
            self._push_some,
            failure_delay=lambda: IDLE_POLL_SECONDS,
        )
        self._rt = runtime
        self._urls = urls
        self._deliveries = deliveries
        self._client = client
        self._backoff = backoff
        self._rng = random.Random()  # noqa: S311 (retry jitter)

    def wake(self, authority: str | None = None) -> None:
        """Push now (``authority``: something was delivered to it; ignored unless it has push)."""
        if authority is not None and authority not in self._urls:
            return
        super().wake()

    async def _push_some(self) -> float:
        """Push what is due; returns the seconds until the next cycle."""
        now = self._rt.clock.now()
        items: list[PushItem] = await self._rt.db.run_txn(
            claim_push_deliveries_txn, None, now=now, limit=20
        )
        if not items:
            return IDLE_POLL_SECONDS
        done: set[int] = set()
        try:
            next_delay = await self._push_claimed(items, now, done)
        except Exception:
            # Whatever failed, the claimed pushes not yet settled go back to the queue.
            log.failure("Unexpected error in a push cycle; will retry")
            rest = [i for i in items if i.seq not in done]
            await self._retry_later(rest, PushCycleFailed.code, now)
            return IDLE_POLL_SECONDS
        return next_delay

    async def _push_claimed(self, items: list[PushItem], now: datetime, done: set[int]) -> float:
        """Push claimed items; the seq of each settled one is added to ``done``."""
        next_delay = 0.0
        rows: dict[int, DeliveryRow] = {}
        for item in items:
            pending: list[DeliveryRow] = await self._rt.db.run_txn(
                pending_deliveries_txn, item.authority_id, after=item.seq - 1, limit=1
            )
            if pending:
                rows[item.seq] = pending[0]
        read: dict[str, PersonalData] = {}
        for authority in sorted({i.authority_id for i in items}):
            read[authority] = await self._rt.db.run_txn(
                read_personal_data_txn,
                authority,
                [i.message_id for i in items if i.authority_id == authority],
                sealer=self._rt.sealer,
                audit_key=self._rt.audit_key,
                now=now,
            )
        for item in items:
            url = self._urls.get(item.authority_id)
            body = read[item.authority_id].bodies.get(item.message_id)
            row = rows.get(item.seq)
            if item.message_id in read[item.authority_id].withheld:
                await self._rt.db.run_txn(
                    mark_push_dead_txn, [item], reason=PersonalDataWithheld.code
                )
                done.add(item.seq)
                continue
            if url is None or body is None or row is None:
                await self._rt.db.run_txn(
                    mark_push_failed_txn,
                    [item],
                    error_code="PUSH_NOT_CONFIGURED",
                    next_attempt_at=now + timedelta(seconds=self._backoff.max_seconds),
                )
                done.add(item.seq)
                continue
            signed: bytes = await self._rt.cpu(self._deliveries.sign_delivery, row, body, now)
            try:
                answer = await self._client.post(url, signed)
                ok = 200 <= answer.status < 300
                code = f"HTTP_{answer.status}"
            except GatewayError as error:  # unreachable, redirected, encoded, too large
                ok, code = False, error.code
            if ok:
                await self._rt.db.run_txn(
                    mark_push_delivered_txn, [item], now=self._rt.clock.now(), node=self._rt.node_id
                )
                self._rt.metrics.deliveries.labels("push").inc()
            else:
                log.info(
                    "Push to {authority} failed ({code}); will retry",
                    authority=item.authority_id,
                    code=code,
                )
                self._rt.metrics.push_failures.labels(item.authority_id).inc()
                delay = await self._retry_later([item], code, now)
                next_delay = max(next_delay, min(delay, IDLE_POLL_SECONDS))
            done.add(item.seq)
        return next_delay

    async def _retry_later(self, items: list[PushItem], code: str, now: datetime) -> float:
        """Put claimed pushes back with backoff; returns the longest delay."""
        longest = 0.0
        for item in items:
            delay = self._backoff.delay(item.attempts, self._rng)
            longest = max(longest, delay)
            await self._rt.db.run_txn(
                mark_push_failed_txn,
                [item],
                error_code=code,
                next_attempt_at=now + timedelta(seconds=delay),
            )
        return longest
