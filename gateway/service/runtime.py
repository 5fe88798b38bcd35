"""What every service needs, grouped: the runtime of one node, and the threading rule.

:class:`Runtime` travels as one object from the composition root to each
service (the pipeline, the peer senders, deliveries, the pusher, tracking):
the node's id, its :class:`~gateway.core.clock.Clock`, the database, the CPU
pool, the node's signer, the :class:`~gateway.core.dataprotect.Sealer` that
holds the key-encryption key, the metrics, and the audit key.

The threading rule, for every service:

* the reactor thread only routes: it parses no XML, verifies and signs
  nothing, and touches neither files nor the database;
* CPU work (verify, sign, parse, render) runs on the CPU pool
  (``runtime.cpu(func, *args)``);
* database transactions run on the database pool (``runtime.db.run_txn``),
  and other blocking file I/O (reading, writing, fsync) on the I/O pool
  (``runtime.io(func, *args)``; the node runs it on the CPU pool's threads,
  which hold no locks across calls).

In unit tests both pools may run inline (:func:`inline`) and the clock be a
:class:`ReactorClock` over ``twisted.internet.task.Clock``: no real reactor,
no threads, no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from gateway.core.audit import AuditKey
from gateway.core.clock import Clock, utc_from_seconds
from gateway.core.dataprotect import Sealer
from gateway.core.signing import Signer
from gateway.service.metrics import NodeMetrics
from gateway.storage.db import Database

#: ``run(func, *args, **kwargs) -> Deferred``: run a blocking function off the reactor thread.
RunInThread = Callable[..., Deferred[Any]]


class ReactorClock:
    """The node's :class:`~gateway.core.clock.Clock` over a reactor (or ``task.Clock``).

    ``now()`` is the reactor's ``seconds()`` as an aware UTC datetime, so a
    deterministic clock in tests moves the wall clock too. A real reactor's
    ``seconds()`` is ``time.time()``.
    """

    def __init__(self, reactor: IReactorTime) -> None:
        self.reactor = reactor

    def seconds(self) -> float:
        return float(self.reactor.seconds())

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> IDelayedCall:
        return self.reactor.callLater(delay, f, *args, **kw)

    def now(self) -> datetime:
        return utc_from_seconds(self.seconds())


def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """A :data:`RunInThread` that runs ``func`` at once on the calling thread (unit tests)."""
    return maybeDeferred(func, *args, **kwargs)


@dataclass(frozen=True)
class Runtime:
    """The dependencies every service of one node shares."""

    node_id: str
    clock: Clock
    db: Database
    cpu: RunInThread
    signer: Signer
    sealer: Sealer
    metrics: NodeMetrics
    #: Blocking file I/O off the reactor (defaults to the CPU pool).
    io: RunInThread | None = None
    #: Keys the document digests of audit entries (the node's ``keys/audit.hmac``;
    #: a random one by default, for tests that build a runtime by hand).
    audit_key: AuditKey = field(default_factory=AuditKey.generate, repr=False)

    def run_io(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return (self.io or self.cpu)(func, *args, **kwargs)


__all__ = ["ReactorClock", "RunInThread", "Runtime", "inline"]
