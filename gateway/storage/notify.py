"""Wake-ups across processes that share one PostgreSQL database: LISTEN/NOTIFY.

Several worker processes of one node (``imi-gateway run --workers N``, or
several hosts) share one PostgreSQL database. A document stored by one of
them must wake the long polls, the pusher and the peer sender of every
other one at once, not when their poll or idle timer next runs out.

* **Sending.** The transactions that add work for someone call
  :func:`notify_txn` with a channel and the ids concerned:
  :data:`DELIVERIES_CHANNEL` with authority ids (a row inserted into
  ``deliveries``), :data:`OUTBOX_CHANNEL` with peer node ids (a row inserted into
  ``outbox`` or put back to ``pending``). It runs ``pg_notify`` inside the
  transaction, so PostgreSQL delivers the notification at commit, and never
  for a transaction that rolled back (or a group-commit savepoint that did).
  On SQLite (one process per database) it does nothing.
* **Receiving.** :class:`NotificationListener`, one per process, holds a
  dedicated psycopg connection (not one of the pool's) in a thread of its
  own, ``LISTEN``\\ s on both channels and hands each notification to the
  reactor thread (``callFromThread``), where the node's wake-up functions
  run. When the connection drops it logs a warning and reconnects with
  backoff; notifications sent while it was away are lost, so after every
  (re)connection it calls ``resync`` (the node wakes every waiter and
  queue, which re-query the database).

A notification is a hint: whoever is woken re-queries, and a process also
receives the notifications of its own transactions (its local wake-up came
first; the second one finds nothing new). The payload is an id, never
document data.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from gateway.core.retry import Backoff
from gateway.storage.engine import connect_cause

__all__ = ["DELIVERIES_CHANNEL", "OUTBOX_CHANNEL", "NotificationListener", "notify_txn"]

log = Logger()

#: Channel of new deliveries; payload: the authority id they are for.
DELIVERIES_CHANNEL = "imi_gateway_deliveries"
#: Channel of outbox rows ready to send; payload: the peer node id.
OUTBOX_CHANNEL = "imi_gateway_outbox"

# One statement for any number of ids (PostgreSQL folds duplicates within a transaction).
_NOTIFY = text(
    "SELECT pg_notify(:channel, key) FROM unnest(CAST(:keys AS text[])) AS key"
).bindparams(bindparam("channel"), bindparam("keys"))

#: Reconnection backoff of a listener whose connection dropped (seconds).
RECONNECT_BACKOFF = Backoff(initial_seconds=0.5, max_seconds=30.0)


def notify_txn(conn: Connection, channel: str, keys: Iterable[str]) -> None:
    """Notify ``channel`` once per id in ``keys`` at this transaction's commit (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    ids = sorted(set(keys))
    if ids:
        conn.execute(_NOTIFY, {"channel": channel, "keys": ids})


class _Reactor(Protocol):
    def callFromThread(self, f: Callable[..., object], *args: object, **kw: object) -> None: ...


class NotificationListener(Service):
    """Listens on :data:`DELIVERIES_CHANNEL` and :data:`OUTBOX_CHANNEL`; calls ``handlers[channel](id)``.

    ``handlers`` and ``resync`` run on the reactor thread. ``poll_seconds``
    bounds how long stopping waits for the listening thread, and
    ``ping_seconds`` how long a silently dead connection goes unnoticed
    (a ``SELECT 1`` when nothing arrived for that long; TCP keepalives too).
    """

    name = "notifications"

    def __init__(
        self,
        engine: Engine,
        *,
        reactor: _Reactor,
        handlers: Mapping[str, Callable[[str], None]],
        resync: Callable[[], None],
        backoff: Backoff = RECONNECT_BACKOFF,
        poll_seconds: float = 0.25,
        ping_seconds: float = 10.0,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("LISTEN/NOTIFY needs PostgreSQL")
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[list[Any], dict[str, Any]] = (list(cargs), dict(cparams))
        self._reactor = reactor
        self._handlers = dict(handlers)
        self._resync = resync
        self._backoff = backoff
        self._poll = poll_seconds
        self._ping = ping_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped: Deferred[None] | None = None
        self._failures = 0  # consecutive failed connections (the backoff's attempts)
        #: The backend pid of the current connection (tests terminate it), else None.
        self.backend_pid: int | None = None
        #: How many times a connection was established (tests wait for a reconnection).
        self.connections = 0

    # --- service ----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        # Each run has its own stop flag: a thread still ending never sees a later start's.
        self._stopping = threading.Event()
        self._stopped = Deferred()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._stopping, self._stopped),
            name="imi-gateway-listen",
            daemon=True,
        )
        self._thread.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        self._stopping.set()
        stopped, self._stopped, self._thread = self._stopped, None, None
        return stopped if stopped is not None else succeed(None)

    # --- the listening thread -----------------------------------------------------

    def _run(self, stopping: threading.Event, stopped: Deferred[None]) -> None:
        rng = random.Random()  # noqa: S311 (reconnection jitter)
        try:
            while not stopping.is_set():
                try:
                    self._listen(stopping)  # returns when stopping
                    return
                except Exception as exc:  # a dropped connection, a failed connect
                    self._failures += 1
                    delay = round(self._backoff.delay(self._failures, rng), 1)
                    log.warn(
                        "Database notifications: connection lost or refused ({cause}); "
                        "reconnecting in {delay} s",
                        cause=connect_cause(exc) or type(exc).__name__,
                        delay=delay,
                    )
                    self.backend_pid = None
                    stopping.wait(delay)
        finally:
            self._reactor.callFromThread(stopped.callback, None)

    def _listen(self, stopping: threading.Event) -> None:
        import psycopg  # the PostgreSQL driver: only nodes on PostgreSQL run a listener

        cargs, cparams = self._connect_args
        params = {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            **cparams,
        }
        with psycopg.connect(*cargs, autocommit=True, **params) as conn:
            for channel in self._handlers:
                conn.execute(f'LISTEN "{channel}"')
            self.backend_pid = conn.info.backend_pid
            self.connections += 1
            self._failures = 0
            if self.connections > 1:
                log.info("Database notifications: reconnected")
            # Whatever was notified while no connection listened is looked at again.
            self._reactor.callFromThread(self._call, self._resync)
            idle = 0.0
            while not stopping.is_set():
                received = False
                for notify in conn.notifies(timeout=self._poll):
                    received = True
                    handler = self._handlers.get(notify.channel)
                    if handler is not None:
                        self._reactor.callFromThread(self._call, handler, notify.payload)
                idle = 0.0 if received else idle + self._poll
                if idle >= self._ping:
                    conn.execute("SELECT 1")
                    idle = 0.0

    @staticmethod
    def _call(func: Callable[..., None], *args: str) -> None:
        """Run a handler on the reactor thread; a failing one is logged, never fatal."""
        try:
            func(*args)
        except Exception:
            log.failure("Database notifications: a wake-up failed")
