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
more documents (group commit on both sides). A sender woken while idle waits
``linger`` seconds (``[outbound] linger_ms``) before it claims, so that at
moderate load an envelope carries the documents of a few milliseconds, not
one: each envelope costs a signature, a verification, a receipt and two
transactions on each side whatever it carries. The order also holds across
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

from twisted.logger import Logger

from gateway.core.certs import TrustStore
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import (
    MAX_ENVELOPE_PAYLOADS,
    Payload,
    ReceiptMismatch,
    build_envelope,
    read_error,
    read_receipt,
)
from gateway.core.errors import GatewayError, Unavailable
from gateway.core.retry import Backoff
from gateway.core.signing import verify
from gateway.core.xmlparse import parse_xml
from gateway.service.leased_queue import LeasedQueueWorker
from gateway.service.runtime import Runtime
from gateway.storage.leases import IDLE_POLL_SECONDS, LEASE
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


class OutboundCycleFailed(Unavailable):
    """An unexpected error ended a send cycle to a peer; its documents are retried with backoff."""

    code = "OUTBOUND_CYCLE_FAILED"


class PeerSender(LeasedQueueWorker):
    """The outbox of one peer, worked by the leased-queue worker."""

    def __init__(
        self,
        peer_id: str,
        url: str,
        *,
        runtime: Runtime,
        client: HTTPSClient,
        receipt_trust: Callable[[], TrustStore],
        backoff: Backoff,
        batch_size: int,
        dead_letter_after: timedelta,
        max_attempts: int | None,
        rng: random.Random | None = None,
        lease: timedelta = LEASE,
        linger: float = 0.0,
    ) -> None:
        super().__init__(
            f"outbound-{peer_id}",
            runtime.clock,
            self._cycle,
            failure_delay=lambda: self._backoff.delay(1, self._rng),
            on_start=self._release_leases if runtime.db.dialect_name == "sqlite" else None,
            linger=linger,
        )
        self.peer_id = peer_id
        self._url = url.rstrip("/") + ENVELOPE_PATH
        self._rt = runtime
        self._client = client
        self._receipt_trust = receipt_trust
        self._backoff = backoff
        self._batch = min(batch_size, MAX_ENVELOPE_PAYLOADS)  # the schema's cap
        self._dead_after = dead_letter_after
        self._max_attempts = max_attempts
        self._lease = lease
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter)

    # --- scheduling ----------------------------------------------------------

    async def _release_leases(self) -> None:
        """At start on SQLite: the in-flight rows a killed predecessor left are due at once."""
        count: int = await self._rt.db.run_txn(
            release_leases_txn, self.peer_id, now=self._rt.clock.now()
        )
        if count:
            log.info(
                "Released {count} in-flight documents to {peer} left by a previous run",
                count=count,
                peer=self.peer_id,
            )

    def set_url(self, url: str) -> None:
        """Send the next envelopes to ``url`` (the peer's URL was re-read at a reload)."""
        self._url = url.rstrip("/") + ENVELOPE_PATH

    async def _cycle(self) -> float:
        """One envelope; returns the seconds until the next cycle."""
        sent_any = await self._send_batch()
        if sent_any or self.backing_off():
            return 0.0
        try:
            due: datetime | None = await self._rt.db.run_txn(outbox_next_due_txn, self.peer_id)
        except Exception:
            log.failure("Reading the next due time to {peer}", peer=self.peer_id)
            return IDLE_POLL_SECONDS
        delay = IDLE_POLL_SECONDS
        if due is not None:
            delay = min(delay, (due - self._rt.clock.now()).total_seconds())
        return delay

    # --- one envelope ----------------------------------------------------------

    def _build(
        self, items: list[OutboxItem], bodies: dict[str, bytes | None], now: datetime
    ) -> tuple[bytes, dict[str, str]]:
        """The signed envelope, and each document's keyed digest for its TRANSFERRED entry."""
        payloads = [Payload(i.message_id, bodies[i.message_id]) for i in items]  # type: ignore[arg-type]  # erased (None) bodies were dead-lettered before
        root = build_envelope(self._rt.node_id, self.peer_id, f"env-{uuid.uuid4()}", now, payloads)
        digests = {p.message_id: self._rt.audit_key.digest(p.data) for p in payloads}
        return self._rt.signer.sign(root), digests

    def _check_receipt(
        self, answer: HTTPAnswer, sent: dict[str, str], now: datetime
    ) -> tuple[str, str]:
        """The verified receipt's SHA-256 and keyed digest (for its RECEIPT entries)."""
        verified = verify(answer.body, self._receipt_trust(), now=now)
        receipt = read_receipt(verified.root)
        got = {item.message_id: item.sha256 for item in receipt.items}
        if receipt.issuer_node != self.peer_id or got != sent:
            raise ReceiptMismatch()
        return verified.sha256, self._rt.audit_key.digest(answer.body)

    async def _send_batch(self) -> bool:
        now = self._rt.clock.now()
        items: list[OutboxItem] = await self._rt.db.run_txn(
            claim_outbox_txn, self.peer_id, now=now, lease=self._lease, limit=self._batch
        )
        if not items:
            return False
        try:
            sent_any = await self._send_claimed(items, now)
        except GatewayError as error:
            log.warn("Sending to {peer} failed: {code}", peer=self.peer_id, code=error.code)
            await self._failed(items, error.code, now)
            return False
        except Exception:
            log.failure("Unexpected error sending to {peer}; will retry", peer=self.peer_id)
            await self._failed(items, OutboundCycleFailed.code, now)
            return False
        return sent_any

    async def _send_claimed(self, items: list[OutboxItem], now: datetime) -> bool:
        """Send claimed rows; any exception is turned into a retry by the caller."""
        bodies: dict[str, bytes | None] = await self._rt.db.run_txn(
            load_bodies_txn, [i.message_id for i in items], sealer=self._rt.sealer
        )
        erased = [i for i in items if bodies.get(i.message_id) is None]
        if erased:
            await self._rt.db.run_txn(
                mark_outbox_dead_txn,
                erased,
                reason="EXCHANGE_ERASED",
                now=now,
                node=self._rt.node_id,
            )
            items = [i for i in items if i not in erased]
            if not items:
                return True
        built: tuple[bytes, dict[str, str]] = await self._rt.cpu(self._build, items, bodies, now)
        envelope, digests = built
        sent = {i.message_id: sha256_hex(bodies[i.message_id] or b"") for i in items}
        started = self._rt.clock.seconds()
        answer = await self._client.post(self._url, envelope)
        if answer.status == 200:
            checked: tuple[str, str] = await self._rt.cpu(
                self._check_receipt, answer, sent, self._rt.clock.now()
            )
            receipt_sha, receipt_digest = checked
            self.hold_until(None)
            await self._rt.db.run_txn(
                mark_outbox_sent_txn,
                [i.id for i in items],
                peer_receipt_sha256=receipt_sha,
                now=self._rt.clock.now(),
                node=self._rt.node_id,
                digests=digests,
                receipt_digest=receipt_digest,
            )
            self._rt.metrics.sent.labels(self.peer_id).inc(len(items))
            self._rt.metrics.envelope_seconds.labels(self.peer_id).observe(
                self._rt.clock.seconds() - started
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
            await self._rt.db.run_txn(
                mark_outbox_dead_txn, refused, reason=code, now=now, node=self._rt.node_id
            )
            self._rt.metrics.dead_letters.labels(self.peer_id).inc(len(refused))
            if rest:
                await self._rt.db.run_txn(requeue_in_place_txn, rest, error_code=code, now=now)
            return True
        await self._failed(items, code, now)
        return False

    async def _failed(self, items: list[OutboxItem], code: str, now: datetime) -> None:
        self._rt.metrics.send_failures.labels(self.peer_id, code).inc()

        def give_up(item: OutboxItem) -> bool:
            if self._max_attempts is not None and item.attempts >= self._max_attempts:
                return True
            return item.created_at is not None and item.created_at + self._dead_after <= now

        dead = [i for i in items if give_up(i)]
        retry = [i for i in items if not give_up(i)]
        if dead:
            await self._rt.db.run_txn(
                mark_outbox_dead_txn, dead, reason=code, now=now, node=self._rt.node_id
            )
            self._rt.metrics.dead_letters.labels(self.peer_id).inc(len(dead))
        if retry:
            # The head of the queue failed ``attempts`` times in a row: the whole
            # queue waits, and the rows keep their place in it.
            attempts = max(i.attempts for i in retry)
            delay = self._backoff.delay(attempts, self._rng)
            self.hold_until(self._rt.clock.seconds() + delay)
            await self._rt.db.run_txn(requeue_in_place_txn, retry, error_code=code, now=now)
        # Dead letters need an operator (imi-gateway queue): warn; a retry is routine.
        (log.warn if dead else log.info)(
            "Sending to {peer} failed ({code}); {retry} to retry, {dead} dead-lettered",
            peer=self.peer_id,
            code=code,
            retry=len(retry),
            dead=len(dead),
        )


def _error_of(answer: HTTPAnswer) -> tuple[str, str | None]:
    """The stable code (and message id) of a peer's error answer."""
    try:
        error = read_error(parse_xml(answer.body))
    except GatewayError:
        return f"HTTP_{answer.status}", None
    return error.code, error.message_id
