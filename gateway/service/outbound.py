"""One durable outbound queue per peer node.

A :class:`PeerSender` claims due outbox rows for its peer (a lease, so a
crashed process's rows come back), packs their signed bytes into one
node-signed envelope, posts it over mutual TLS, verifies the peer's signed
receipt (each message id with the SHA-256 of the exact bytes sent), and only
then marks the rows sent. Failures go back to the queue with exponential
backoff and jitter; rows older than the dead-letter limit (or past the
attempt limit) become dead letters with the reason, for an operator to
retry. A document the peer refuses for itself (an Error naming its message
id) is dead-lettered alone and the rest are sent again at once.

One envelope is in flight per peer at a time, so documents reach the peer in
the order they were queued; under load the next envelope simply carries
more documents (group commit on both sides). The order also holds across
failures: the backoff belongs to the peer's queue (this sender waits before
its next attempt, whatever is queued meanwhile), and rows that failed go
back to their original place in the queue, never behind rows queued after
them (a Reminder must not overtake its Request).

Every failure of a cycle after its rows are claimed ends in retry with
backoff or in dead letter, with a stable code: the peer unreachable, a
redirect, an encoded or oversize answer, a refused receipt, or an
unexpected exception (OUTBOUND_CYCLE_FAILED, logged with its traceback).
No row is left ``inflight`` until its lease runs out.

On SQLite (one gateway process per database) a starting sender releases the
leases a killed predecessor left on in-flight rows, so they are sent again
at once rather than after the lease; the peer recognises documents it already
holds and does not deliver them twice.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from gateway.core.certs import TrustStore
from gateway.core.envelopes import Payload, build_envelope, read_error, read_receipt
from gateway.core.errors import GatewayError, InvalidInput, Unavailable
from gateway.core.retry import Backoff
from gateway.core.signing import Signer, verify
from gateway.core.xmlparse import parse_xml
from gateway.service.metrics import NodeMetrics
from gateway.storage.db import Database
from gateway.storage.messages import load_bodies_txn
from gateway.storage.model import OutboxItem
from gateway.storage.outbox import (
    claim_outbox_txn,
    mark_outbox_dead_txn,
    mark_outbox_sent_txn,
    outbox_next_due_txn,
    release_leases_txn,
    requeue_in_place_txn,
)
from gateway.transport.client import HTTPAnswer, HTTPSClient

log = Logger()

ENVELOPE_PATH = "/peer/v1/envelopes"
#: Longest a claimed row stays leased to this process (a crash releases it after this).
LEASE = timedelta(seconds=120)
#: How often an idle sender looks at the queue anyway (another process may have added rows).
IDLE_POLL_SECONDS = 5.0


class ReceiptMismatch(InvalidInput):
    """The peer's receipt does not acknowledge exactly the documents and bytes sent."""

    code = "RECEIPT_MISMATCH"


class OutboundCycleFailed(Unavailable):
    """An unexpected error ended a send cycle to a peer; its documents are retried with backoff."""

    code = "OUTBOUND_CYCLE_FAILED"


class PeerSender(Service):
    def __init__(
        self,
        peer_id: str,
        url: str,
        *,
        node_id: str,
        clock: IReactorTime,
        now: Callable[[], datetime],
        db: Database,
        cpu: Callable[..., Deferred[Any]],
        client: HTTPSClient,
        signer: Signer,
        receipt_trust: Callable[[], TrustStore],
        kek: bytes,
        backoff: Backoff,
        batch_size: int,
        dead_letter_after: timedelta,
        max_attempts: int | None,
        metrics: NodeMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self.name = f"outbound-{peer_id}"
        self.peer_id = peer_id
        self._url = url.rstrip("/") + ENVELOPE_PATH
        self._node_id = node_id
        self._clock = clock
        self._now = now
        self._db = db
        self._cpu = cpu
        self._client = client
        self._signer = signer
        self._receipt_trust = receipt_trust
        self._kek = kek
        self._backoff = backoff
        self._batch = batch_size
        self._dead_after = dead_letter_after
        self._max_attempts = max_attempts
        self._metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter)
        self._timer: IDelayedCall | None = None
        self._running_cycle: Deferred[Any] | None = None
        self._again = False
        #: Reactor time before which no attempt is made (the peer's backoff), if any.
        self._resume_at: float | None = None

    # --- scheduling ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self._db.dialect_name != "sqlite":
            self.wake()
            return
        d = self._db.run_txn(release_leases_txn, self.peer_id, now=self._now())

        def released(count: int) -> None:
            if count:
                log.info(
                    "Released {count} in-flight documents to {peer} left by a previous run",
                    count=count,
                    peer=self.peer_id,
                )

        d.addCallbacks(
            released, lambda f: log.failure("Releasing leases to {peer}", f, peer=self.peer_id)
        )
        d.addBoth(lambda _: self.wake())

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self._running_cycle  # an envelope in flight finishes (or fails) first

    def set_url(self, url: str) -> None:
        """Send the next envelopes to ``url`` (the peer's URL was re-read at a reload)."""
        self._url = url.rstrip("/") + ENVELOPE_PATH

    def wake(self) -> None:
        """Look at the queue now (called when a document is queued for this peer)."""
        if not self.running or self._backing_off():
            return
        if self._running_cycle is not None:
            self._again = True
            return
        self._schedule(0)

    def _backing_off(self) -> bool:
        return self._resume_at is not None and self._clock.seconds() < self._resume_at

    def _schedule(self, delay: float) -> None:
        if not self.running:
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._clock.seconds() + delay:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(max(delay, 0), self._cycle)

    def _cycle(self) -> None:
        self._timer = None
        if self._running_cycle is not None:
            # Never two envelopes in flight: the running cycle is followed by another.
            self._again = True
            return
        self._again = False
        d = self._send_batch()
        self._running_cycle = d

        def done(sent_any: object) -> None:
            self._running_cycle = None
            if self._backing_off():
                assert self._resume_at is not None
                self._schedule(self._resume_at - self._clock.seconds())
            elif sent_any or self._again:
                self._schedule(0)
            else:
                self._schedule_next_due()

        def failed(failure: Any) -> None:
            self._running_cycle = None
            log.failure("Outbound cycle to {peer} failed", failure, peer=self.peer_id)
            self._schedule(self._backoff.delay(1, self._rng))

        d.addCallbacks(done, failed)

    def _schedule_next_due(self) -> None:
        d = self._db.run_txn(outbox_next_due_txn, self.peer_id)

        def got(due: datetime | None) -> None:
            delay = IDLE_POLL_SECONDS
            if due is not None:
                delay = min(delay, (due - self._now()).total_seconds())
            self._schedule(delay)

        d.addCallbacks(got, lambda f: self._schedule(IDLE_POLL_SECONDS))

    # --- one envelope ----------------------------------------------------------

    def _build(
        self, items: list[OutboxItem], bodies: dict[str, bytes | None], now: datetime
    ) -> bytes:
        payloads = [Payload(i.message_id, bodies[i.message_id]) for i in items]  # type: ignore[arg-type]
        root = build_envelope(self._node_id, self.peer_id, f"env-{uuid.uuid4()}", now, payloads)
        return self._signer.sign(root)

    def _check_receipt(self, answer: HTTPAnswer, sent: dict[str, str], now: datetime) -> str:
        verified = verify(answer.body, self._receipt_trust(), now=now)
        receipt = read_receipt(verified.root)
        got = {item.message_id: item.sha256 for item in receipt.items}
        if receipt.issuer_node != self.peer_id or got != sent:
            raise ReceiptMismatch()
        return verified.sha256

    @inlineCallbacks
    def _send_batch(self) -> Any:
        now = self._now()
        items = yield self._db.run_txn(
            claim_outbox_txn, self.peer_id, now=now, lease=LEASE, limit=self._batch
        )
        if not items:
            return False
        try:
            sent_any = yield self._send_claimed(items, now)
        except GatewayError as error:
            log.warn("Sending to {peer} failed: {code}", peer=self.peer_id, code=error.code)
            yield self._failed(items, error.code, now)
            return False
        except Exception:
            log.failure("Unexpected error sending to {peer}; will retry", peer=self.peer_id)
            yield self._failed(items, OutboundCycleFailed.code, now)
            return False
        return sent_any

    @inlineCallbacks
    def _send_claimed(self, items: list[OutboxItem], now: datetime) -> Any:
        """Send claimed rows; any exception is turned into a retry by the caller."""
        bodies = yield self._db.run_txn(
            load_bodies_txn, [i.message_id for i in items], kek=self._kek
        )
        erased = [i for i in items if bodies.get(i.message_id) is None]
        if erased:
            yield self._db.run_txn(
                mark_outbox_dead_txn,
                erased,
                reason="EXCHANGE_ERASED",
                now=now,
                node=self._node_id,
            )
            items = [i for i in items if i not in erased]
            if not items:
                return True
        envelope = yield self._cpu(self._build, items, bodies, now)
        sent = {i.message_id: _sha256(bodies[i.message_id]) for i in items}
        started = self._clock.seconds()
        answer = yield self._client.post(self._url, envelope)
        if answer.status == 200:
            receipt_sha = yield self._cpu(self._check_receipt, answer, sent, self._now())
            self._resume_at = None
            yield self._db.run_txn(
                mark_outbox_sent_txn,
                [i.id for i in items],
                peer_receipt_sha256=receipt_sha,
                now=self._now(),
                node=self._node_id,
            )
            self._metrics.sent.labels(self.peer_id).inc(len(items))
            self._metrics.envelope_seconds.labels(self.peer_id).observe(
                self._clock.seconds() - started
            )
            return True
        code, refused_id = _error_of(answer)
        if refused_id is not None and 400 <= answer.status < 500:
            refused = [i for i in items if i.message_id == refused_id]
            rest = [i for i in items if i.message_id != refused_id]
            log.warn(
                "Peer {peer} refused document {message_id}: {code}; dead-lettered",
                peer=self.peer_id,
                message_id=refused_id,
                code=code,
            )
            yield self._db.run_txn(
                mark_outbox_dead_txn, refused, reason=code, now=now, node=self._node_id
            )
            self._metrics.dead_letters.labels(self.peer_id).inc(len(refused))
            if rest:
                yield self._db.run_txn(requeue_in_place_txn, rest, error_code=code, now=now)
            return True
        yield self._failed(items, code, now)
        return False

    @inlineCallbacks
    def _failed(self, items: list[OutboxItem], code: str, now: datetime) -> Any:
        self._metrics.send_failures.labels(self.peer_id, code).inc()

        def give_up(item: OutboxItem) -> bool:
            if self._max_attempts is not None and item.attempts >= self._max_attempts:
                return True
            return item.created_at is not None and item.created_at + self._dead_after <= now

        dead = [i for i in items if give_up(i)]
        retry = [i for i in items if not give_up(i)]
        if dead:
            yield self._db.run_txn(
                mark_outbox_dead_txn, dead, reason=code, now=now, node=self._node_id
            )
            self._metrics.dead_letters.labels(self.peer_id).inc(len(dead))
        if retry:
            # The head of the queue failed ``attempts`` times in a row: the whole
            # queue waits, and the rows keep their place in it.
            attempts = max(i.attempts for i in retry)
            delay = self._backoff.delay(attempts, self._rng)
            self._resume_at = self._clock.seconds() + delay
            yield self._db.run_txn(requeue_in_place_txn, retry, error_code=code, now=now)
        log.info(
            "Sending to {peer} failed ({code}); {retry} to retry, {dead} dead-lettered",
            peer=self.peer_id,
            code=code,
            retry=len(retry),
            dead=len(dead),
        )


def _sha256(data: bytes | None) -> str:
    import hashlib

    return hashlib.sha256(data or b"").hexdigest()


def _error_of(answer: HTTPAnswer) -> tuple[str, str | None]:
    """The stable code (and message id) of a peer's error answer."""
    try:
        error = read_error(parse_xml(answer.body))
    except GatewayError:
        return f"HTTP_{answer.status}", None
    return error.code, error.message_id
