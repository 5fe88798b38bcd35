"""Helpers for the reliability, security and limit tests of real nodes on loopback.

What lives here (test code only; nothing here is imported by the package):

* :func:`requester_streams`: signed document streams of several exchanges
  (Request, Reminder, Reminder, Withdrawal) whose order the receiving node's
  lifecycle checks, so a reordering is refused rather than silently accepted;
* :func:`submit` / :func:`submit_streams` / :func:`pull_until`: a national system submitting
  those streams (in order within an exchange, concurrently across exchanges)
  and pulling deliveries with the long-poll until a count is reached;
* :class:`ObservedClient`: wraps a node's HTTPS client so a test can wait
  for events (an envelope refused, a receipt received) instead of sleeping;
* :func:`raw_client`: an HTTPS client with any key and certificate, for
  posting crafted bytes straight to a listener;
* :func:`table_rows` / :func:`row_counts`: what a node's database holds;
* :func:`postgres_database`: a freshly created PostgreSQL database, dropped
  afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from twisted.internet import defer, reactor

from gateway.core.docparts import Header
from gateway.core.documents import Reminder, Withdrawal, read_exchange_document, to_xml
from gateway.core.pki import PrivateKey
from gateway.core.xmlparse import parse_xml
from gateway.storage import tables
from gateway.testbed import CATALOGUE_VERSION, NationalSystem, Pulled, doctor_request
from gateway.transport.client import HTTPAnswer, HTTPSClient, PeerUnreachable
from gateway.transport.tls import PinnedPeersPolicy
from tests.conftest import postgres_url

# --- document streams ----------------------------------------------------------------


@dataclass
class Stream:
    """The signed documents of one exchange, in the order they must arrive."""

    exchange_id: str
    documents: list[tuple[str, bytes]] = field(default_factory=list)  # (message id, bytes)

    @property
    def message_ids(self) -> list[str]:
        return [m for m, _ in self.documents]


def requester_streams(
    system: NationalSystem, receiver: str, prefix: str, exchanges: int
) -> list[Stream]:
    """``exchanges`` streams of Request, Reminder, Reminder, Withdrawal, signed by ``system``.

    Only this order passes the receiving node's lifecycle: a Reminder before
    the Request, or after the Withdrawal, is refused there.
    """
    streams = []
    for n in range(exchanges):
        now = datetime.now(UTC)
        request = doctor_request(
            f"{prefix}-{n:04d}", system.authority_id, receiver, now, free_text=False
        )
        exchange_id = request.header.exchange_id
        request_id = request.header.document_id
        docs: list[Any] = [request]
        for i in (2, 3):
            docs.append(
                Reminder(
                    Header(
                        exchange_id,
                        f"{exchange_id}-{i}",
                        system.authority_id,
                        receiver,
                        now,
                        CATALOGUE_VERSION,
                        request_id,
                    )
                )
            )
        docs.append(
            Withdrawal(
                Header(
                    exchange_id,
                    f"{exchange_id}-4",
                    system.authority_id,
                    receiver,
                    now,
                    CATALOGUE_VERSION,
                    request_id,
                ),
                reason="NO_LONGER_NEEDED",
            )
        )
        streams.append(
            Stream(
                exchange_id,
                [(doc.header.document_id, system.sign(to_xml(doc))) for doc in docs],
            )
        )
    return streams


async def submit(system: NationalSystem, signed: bytes) -> bytes:
    """Submit ``signed``; the node's signed receipt (checked to name these bytes), raw."""
    answer = await system.client.post(system.url("/api/v1/documents"), signed)
    if answer.status != 200:
        system._raise_for(answer)
    system.check_receipt(answer.body, signed)
    return answer.body


async def submit_streams(
    system: NationalSystem,
    streams: Sequence[Stream],
    *,
    concurrency: int = 8,
    receipts: dict[str, bytes] | None = None,
    stop_on_error: bool = False,
    on_receipt: Callable[[str], None] | None = None,
) -> dict[str, bytes]:
    """Submit the streams (in order within one, concurrently across); message id -> receipt.

    With ``stop_on_error`` a stream stops at its first refused or failed
    submission (what a national system does before it retries) and the
    others go on; otherwise the first error is raised. Documents that
    already have a receipt in ``receipts`` are skipped. ``on_receipt`` is
    called with each message id as its receipt arrives.
    """
    receipts = {} if receipts is None else receipts
    semaphore = defer.DeferredSemaphore(concurrency)

    async def one(stream: Stream) -> None:
        for message_id, signed in stream.documents:
            if message_id in receipts:
                continue
            try:
                receipts[message_id] = await submit(system, signed)
                if on_receipt is not None:
                    on_receipt(message_id)
            except Exception:
                if stop_on_error:
                    return
                raise

    await defer.gatherResults(
        [semaphore.run(lambda s=s: defer.ensureDeferred(one(s))) for s in streams],
        consumeErrors=True,
    )
    return receipts


async def pull_until(
    system: NationalSystem, count: int, *, after: int = 0, wait: int = 5, rounds: int = 24
) -> tuple[int, list[Any]]:
    """Pull (long-poll) until ``count`` deliveries arrived; returns (cursor, deliveries).

    Bounded: at most ``rounds`` polls, each waiting at most ``wait`` seconds
    for news (the node answers as soon as a delivery is there).
    """
    cursor, got = after, []
    for _ in range(rounds):
        pulled: Pulled = await system.pull(after=cursor, wait=wait, limit=500)
        cursor = pulled.cursor
        got.extend(pulled.deliveries)
        if len(got) >= count:
            return cursor, got
    raise AssertionError(f"only {len(got)} of {count} deliveries arrived")


def message_id_of(delivery: Any) -> str:
    """The DocumentId inside a delivered signed document."""
    return str(read_exchange_document(parse_xml(delivery.document)).header.document_id)


# --- observing a node's outbound client -------------------------------------------------


class ObservedClient:
    """Delegates to an HTTPSClient and records every POST's outcome, for tests to wait on.

    ``answers``: (reactor time, status or the error code, body) per POST, in
    completion order. :meth:`wait_for` fires once ``predicate(self)`` holds.
    """

    def __init__(self, inner: HTTPSClient) -> None:
        self._inner = inner
        self.answers: list[tuple[float, int | str, bytes]] = []
        self._waiting: list[tuple[Callable[[ObservedClient], bool], defer.Deferred[None]]] = []

    def _record(self, outcome: int | str, body: bytes) -> None:
        self.answers.append((reactor.seconds(), outcome, body))
        still = []
        for predicate, d in self._waiting:
            if predicate(self):
                d.callback(None)
            else:
                still.append((predicate, d))
        self._waiting = still

    @property
    def failures(self) -> list[float]:
        return [t for t, outcome, _ in self.answers if outcome == PeerUnreachable.code]

    @property
    def receipts(self) -> list[bytes]:
        return [body for _, outcome, body in self.answers if outcome == 200]

    def wait_for(self, predicate: Callable[[ObservedClient], bool]) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if predicate(self):
            d.callback(None)
        else:
            self._waiting.append((predicate, d))
        return d

    @defer.inlineCallbacks
    def post(self, url: str, body: bytes) -> Any:
        try:
            answer: HTTPAnswer = yield self._inner.post(url, body)
        except PeerUnreachable as error:
            self._record(error.code, b"")
            raise
        self._record(answer.status, answer.body)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def observe_sender(parts: Any, peer: str) -> ObservedClient:
    """Wrap the HTTPS client of ``parts``' sender to ``peer`` (test instrumentation)."""
    sender = parts.senders[peer]
    observed = ObservedClient(sender._client)
    sender._client = observed
    return observed


async def sender_settled(parts: Any, peer: str) -> None:
    """Until the envelope cycle of ``parts``' sender to ``peer`` in progress (if any) is over.

    A receipt seen by :class:`ObservedClient` is recorded in the outbox by
    the same cycle, right after the receipt is verified.
    """
    cycle = parts.senders[peer]._running_cycle
    if cycle is not None:
        over: defer.Deferred[None] = defer.Deferred()
        cycle.addBoth(lambda result: (over.callback(None), result)[1])
        await over


# --- raw HTTPS --------------------------------------------------------------------------


def raw_client(
    key: PrivateKey,
    certificate: x509.Certificate,
    port: int,
    server_ca: x509.Certificate,
    server_tls: x509.Certificate,
) -> HTTPSClient:
    """An HTTPS client presenting (key, certificate) to 127.0.0.1:``port``, pinning the server."""
    policy = PinnedPeersPolicy(key, certificate, {("127.0.0.1", port): (server_ca, server_tls)})
    return HTTPSClient(reactor, policy, timeout_seconds=30)


# --- database contents --------------------------------------------------------------------


async def table_rows(db: Any, table_name: str, *columns: str) -> list[Any]:
    """All rows of ``table_name`` (selected ``columns``), in primary-key order."""
    table = getattr(tables, table_name)

    def rows_txn(conn: Any) -> list[Any]:
        cols = [table.c[c] for c in columns] if columns else [table]
        order = list(table.primary_key.columns)
        return list(conn.execute(select(*cols).order_by(*order)))

    return await db.run_txn(rows_txn)


async def row_counts(db: Any) -> dict[str, int]:
    """Row counts of the tables a refused request must leave untouched."""
    names = ("messages", "exchanges", "outbox", "envelopes_in", "deliveries", "tracking")

    def counts_txn(conn: Any) -> dict[str, int]:
        return {
            n: int(conn.execute(select(func.count()).select_from(getattr(tables, n))).scalar())
            for n in names
        }

    return await db.run_txn(counts_txn)


# --- PostgreSQL ---------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the IMI_TEST_POSTGRES_URL server; dropped afterwards.

    Skips (fails in CI) without a server URL, through ``postgres_url()``.
    """
    server = make_url(postgres_url())
    name = f"imi_test_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
