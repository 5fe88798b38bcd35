"""Deliveries (pull) and the Pusher on their own: ``task.Clock``, file-backed SQLite run inline.

No real reactor, no threads, no sleeps (set-up: :mod:`tests.service.clocked`).
The long poll waits and times out on the clock; the pusher's retries and
backoff follow the clock; its callback is a :class:`ScriptedClient`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from gateway.core.certs import TrustStore
from gateway.core.envelopes import Rendering, read_delivery
from gateway.core.retry import Backoff
from gateway.core.signing import verify
from gateway.keystore import load_node_keys
from gateway.service.deliveries import Deliveries, Pusher
from gateway.service.waiters import Waiters
from gateway.storage.db import Database
from gateway.storage.deliveries import pending_deliveries_txn
from gateway.storage.leases import IDLE_POLL_SECONDS
from gateway.storage.messages import store_inbound_envelope_txn
from gateway.storage.model import InboundPayload, Stage
from gateway.storage.tables import deliveries
from gateway.storage.tracking import tracking_events_txn
from gateway.transport.client import HTTPAnswer, PeerRedirected, PeerUnreachable
from tests.service.clocked import Answer, ClockedNode, ScriptedClient, clocked_node, fired
from tests.storage.conftest import NODE, T0, envelope, payload

AUTH = "NO-HELSEDIR"
CALLBACK = "https://helsedir.example/imi/deliveries"
#: A failed push is retried after exactly ten seconds.
TEN_SECONDS = Backoff(10.0, 10.0, 0.0)


def receive(node: ClockedNode, envelope_id: str, *payloads: InboundPayload) -> None:
    node.db.run_txn_sync(
        store_inbound_envelope_txn,
        envelope(envelope_id, *payloads),
        sealer=node.runtime.sealer,
        now=node.runtime.clock.now(),
        node=NODE,
    )


def rows(db: Database) -> list[tuple[str | None, int, str | None, datetime | None]]:
    """(push_state, attempts, last_error, delivered_at) of every delivery, in seq order."""

    def read(conn):  # type: ignore[no-untyped-def]
        query = deliveries.select().order_by(deliveries.c.seq)
        return [
            (r.push_state, r.attempts, r.last_error, r.delivered_at) for r in conn.execute(query)
        ]

    return db.run_txn_sync(read)


def delivered_stages(db: Database, exchange_id: str) -> list[tuple[str | None, str | None]]:
    events = db.run_txn_sync(tracking_events_txn, exchange_id)
    return [(e.message_id, e.detail) for e in events if e.stage == Stage.DELIVERED]


def no_renderings(body: bytes) -> Sequence[Rendering]:
    return ()


def deliveries_of(
    node: ClockedNode, waiters: Waiters | None = None, render: Any = None
) -> Deliveries:
    return Deliveries(
        node.runtime,
        waiters=waiters or Waiters(node.clock),
        render=render or no_renderings,
    )


def start_pushing(
    node: ClockedNode,
    answers: Sequence[Answer],
    *,
    pushes: Sequence[str] = ("A",),
    backoff: Backoff = TEN_SECONDS,
    render: Any = None,
) -> tuple[Pusher, ScriptedClient]:
    """Receive ``pushes`` (message ids, exchanges X1, X2 ...) for AUTH, start a pusher at once."""
    receive(
        node,
        "E-PUSH",
        *(payload(m, exchange_id=f"X{i}", push=True) for i, m in enumerate(pushes, 1)),
    )
    callback = ScriptedClient(answers, clock=node.clock)
    pusher = Pusher(
        node.runtime,
        urls={AUTH: CALLBACK},
        deliveries=deliveries_of(node, render=render),
        client=callback,  # type: ignore[arg-type]
        backoff=backoff,
    )
    pusher.startService()
    node.clock.advance(0)
    return pusher, callback


# --- pull ------------------------------------------------------------------------------


def pulling(deliveries: Any) -> Any:
    """``deliveries.pull`` as a Deferred (it is a coroutine function), to read with ``fired``."""

    def pull(*args: Any, **kwargs: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(deliveries.pull(*args, **kwargs))

    return pull


def test_a_pull_hands_out_signed_deliveries_after_the_cursor_and_acknowledges_up_to_it(
    tmp_path: Path,
) -> None:
    node = clocked_node(tmp_path)
    receive(node, "E1", payload("A", exchange_id="X1"), payload("B", exchange_id="X2"))
    pull = pulling(deliveries_of(node))

    handed, cursor = fired(pull(AUTH, after=0, wait=0, limit=10))
    assert [h.message_id for h in handed] == ["A", "B"]
    assert cursor == handed[-1].seq
    trust = TrustStore(pinned=(load_node_keys(tmp_path / "no").signing.certificate,))
    delivery = read_delivery(verify(handed[0].delivery, trust, now=T0).root)
    assert (delivery.issuer_node, delivery.recipient, delivery.exchange_id) == (NODE, AUTH, "X1")
    assert delivery.document == b"<Request id='A'>Joana Silva</Request>"

    # Asking again with the same cursor acknowledges nothing new: the same documents.
    again, _ = fired(pull(AUTH, after=0, wait=0, limit=1))
    assert [h.message_id for h in again] == ["A"]
    assert delivered_stages(node.db, "X1") == []

    node.clock.advance(60)
    rest, rest_cursor = fired(pull(AUTH, after=cursor, wait=0, limit=10))
    assert (rest, rest_cursor) == ([], cursor)
    assert [r[3] for r in rows(node.db)] == [T0 + timedelta(seconds=60)] * 2
    assert delivered_stages(node.db, "X1") == [("A", AUTH)]
    assert delivered_stages(node.db, "X2") == [("B", AUTH)]
    node.stop()


def test_a_long_poll_answers_when_a_delivery_arrives_and_times_out_on_the_clock(
    tmp_path: Path,
) -> None:
    node = clocked_node(tmp_path)
    waiters = Waiters(node.clock)
    pull = pulling(deliveries_of(node, waiters))

    waiting = pull(AUTH, after=0, wait=30, limit=10)
    node.clock.advance(10)
    assert not waiting.called
    receive(node, "E1", payload("A", exchange_id="X1"))
    waiters.notify(AUTH)
    handed, cursor = fired(waiting)
    assert [h.message_id for h in handed] == ["A"]

    waiting = pull(AUTH, after=cursor, wait=30, limit=10)  # acknowledges A, then waits
    assert [r[3] for r in rows(node.db)] == [T0 + timedelta(seconds=10)]
    node.clock.advance(29)
    assert not waiting.called
    node.clock.advance(1)
    assert fired(waiting) == ([], cursor)
    node.stop()


class FirstAnswerLate:
    """A database whose first transaction runs at once but answers only on :meth:`release`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._late: list[tuple[Deferred[Any], Any]] = []
        self._calls = 0

    def run_txn(self, func: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        result = self._db.run_txn_sync(func, *args, **kwargs)
        self._calls += 1
        if self._calls > 1:
            return succeed(result)
        d: Deferred[Any] = Deferred()
        self._late.append((d, result))
        return d

    def release(self) -> None:
        for d, result in self._late:
            d.callback(result)


def test_a_delivery_committed_while_the_first_look_runs_is_not_missed(tmp_path: Path) -> None:
    node = clocked_node(tmp_path)
    waiters = Waiters(node.clock)
    late = FirstAnswerLate(node.db)
    deliveries = Deliveries(
        replace(node.runtime, db=late),  # type: ignore[arg-type]
        waiters=waiters,
        render=no_renderings,
    )
    waiting = pulling(deliveries)(AUTH, after=0, wait=30, limit=10)
    # The first look found nothing; before its answer is back, a delivery commits and
    # its wake-up (local, or a database notification from another process) comes.
    receive(node, "E1", payload("A", exchange_id="X1"))
    waiters.notify(AUTH)
    late.release()
    handed, _ = fired(waiting)  # at once: not after the 30 s wait
    assert [h.message_id for h in handed] == ["A"]
    node.stop()


def test_a_wake_up_that_brings_nothing_keeps_the_poll_waiting_to_its_end(tmp_path: Path) -> None:
    node = clocked_node(tmp_path)
    waiters = Waiters(node.clock)
    pull = pulling(deliveries_of(node, waiters))

    waiting = pull(AUTH, after=0, wait=30, limit=10)
    node.clock.advance(10)
    waiters.wake_all()  # e.g. the notification listener reconnected: everyone looks again
    assert not waiting.called
    node.clock.advance(10)
    receive(node, "E1", payload("A", exchange_id="X1"))
    waiters.notify(AUTH)
    handed, cursor = fired(waiting)
    assert [h.message_id for h in handed] == ["A"]

    waiting = pull(AUTH, after=cursor, wait=30, limit=10)
    node.clock.advance(10)
    waiters.notify(AUTH)  # nothing new for AUTH (say, a wake-up for a document already out)
    node.clock.advance(19.5)
    assert not waiting.called
    node.clock.advance(0.5)  # the poll's own 30 s, not 30 s after the wake-up
    assert fired(waiting) == ([], cursor)
    node.stop()


def test_a_poll_that_no_wake_up_reached_looks_again_at_its_end(tmp_path: Path) -> None:
    node = clocked_node(tmp_path)
    pull = pulling(deliveries_of(node, Waiters(node.clock)))
    waiting = pull(AUTH, after=0, wait=30, limit=10)
    receive(node, "E1", payload("A", exchange_id="X1"))  # stored; its wake-up lost
    node.clock.advance(29.5)
    assert not waiting.called
    node.clock.advance(0.5)
    handed, _ = fired(waiting)
    assert [h.message_id for h in handed] == ["A"]
    node.stop()


# --- push ------------------------------------------------------------------------------


def test_a_push_is_recorded_delivered_only_after_the_callback_answers_2xx(
    tmp_path: Path,
) -> None:
    node = clocked_node(tmp_path)
    pusher, callback = start_pushing(node, [None])  # the answer is held until the test gives it
    assert [url for url, _ in callback.posts] == [CALLBACK]
    assert rows(node.db) == [("inflight", 1, None, None)]
    assert delivered_stages(node.db, "X1") == []

    node.clock.advance(1)
    callback.held[0].callback(HTTPAnswer(204, b"", "text/plain"))
    assert rows(node.db) == [("sent", 1, None, T0 + timedelta(seconds=1))]
    assert delivered_stages(node.db, "X1") == [("A", AUTH)]
    pusher.stopService()
    node.stop()


def test_a_failed_push_backs_off_across_wake_ups_then_is_retried_and_delivered(
    tmp_path: Path,
) -> None:
    node = clocked_node(tmp_path)
    pusher, callback = start_pushing(node, [503, 200])
    assert rows(node.db) == [("pending", 1, "HTTP_503", None)]

    for second in range(1, 10):  # deliveries arrive and wake the pusher: the backoff holds
        receive(node, f"E{second}", payload(f"O{second}", exchange_id=f"XO{second}"))
        pusher.wake(AUTH)
        node.clock.advance(1)
    assert callback.posted_at == [0]

    # Retried once due (ten seconds after the failure), at the latest one idle poll later.
    node.clock.pump([1.0] * int(IDLE_POLL_SECONDS + 1))
    assert len(callback.posted_at) == 2
    assert 10 <= callback.posted_at[1] <= 10 + IDLE_POLL_SECONDS
    retried_at = T0 + timedelta(seconds=callback.posted_at[1])
    assert rows(node.db)[0] == ("sent", 2, None, retried_at)
    pusher.stopService()
    node.stop()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (503, "HTTP_503"),
        (303, "HTTP_303"),  # a redirect status that reached the pusher is no success either
        (PeerRedirected("redirected"), "PEER_REDIRECTED"),  # how the client reports a redirect
        (PeerUnreachable("unreachable"), "PEER_UNREACHABLE"),
        (RuntimeError("unexpected"), "PUSH_CYCLE_FAILED"),
    ],
)
def test_a_push_that_is_not_answered_2xx_goes_back_to_the_queue_with_backoff(
    tmp_path: Path, answer: Answer, code: str
) -> None:
    node = clocked_node(tmp_path)
    pusher, callback = start_pushing(node, [answer], backoff=Backoff(5.0, 5.0, 0.0))
    assert rows(node.db) == [("pending", 1, code, None)]
    assert delivered_stages(node.db, "X1") == []
    node.clock.pump([1.0] * 10)
    assert callback.posted_at == [0, 5, 10]
    assert rows(node.db) == [("pending", 3, code, None)]
    pusher.stopService()
    node.stop()


def test_a_failure_after_the_claim_puts_every_unsettled_push_back(tmp_path: Path) -> None:
    node = clocked_node(tmp_path)
    pusher, _ = start_pushing(node, [200, RuntimeError("the client broke")], pushes=("A", "B"))
    assert rows(node.db) == [
        ("sent", 1, None, T0),  # settled before the failure: stays delivered
        ("pending", 1, "PUSH_CYCLE_FAILED", None),
    ]
    pusher.stopService()
    node.stop()


def test_a_push_that_fails_before_posting_is_put_back(tmp_path: Path) -> None:
    node = clocked_node(tmp_path)

    def broken_renderer(body: bytes) -> Sequence[Rendering]:
        raise RuntimeError("rendering failed")

    pusher, callback = start_pushing(node, [200], render=broken_renderer)
    assert callback.posts == []
    assert rows(node.db) == [("pending", 1, "PUSH_CYCLE_FAILED", None)]
    pusher.stopService()
    node.stop()


def test_a_refused_push_is_retried_with_growing_backoff_and_stays_available_to_pull(
    tmp_path: Path,
) -> None:
    """Pushes are retried until a 2xx (docs/api.md): never dead-lettered, never lost to pull."""
    node = clocked_node(tmp_path)
    pusher, callback = start_pushing(node, [503], backoff=Backoff(1.0, 4.0, 0.0))
    node.clock.pump([1.0] * 60)
    # Backoff 1, 2, 4 s, then capped at 4 s.
    assert callback.posted_at == [0, 1, 3, 7, *range(11, 60, 4)]
    assert rows(node.db) == [("pending", len(callback.posted_at), "HTTP_503", None)]
    assert [d.message_id for d in node.db.run_txn_sync(pending_deliveries_txn, AUTH)] == ["A"]
    pusher.stopService()
    node.stop()
