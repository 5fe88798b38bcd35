"""A service that runs ``run_once`` every ``interval`` seconds on the injected clock.

The node's timers (retention, deadlines, audit checkpoints) share this: a
``LoopingCall`` on the runtime's clock (a fake one in tests), and a stop that
waits for a run in progress (``self._running``, set by the subclass's
``run_once``) so no transaction is cut off at shutdown.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from gateway.core.clock import Clock


class PeriodicService(Service):
    """Calls :meth:`run_once` every ``interval`` seconds (first at once if ``now``)."""

    def __init__(self, clock: Clock, interval: float, *, now: bool) -> None:
        self._periodic_clock = clock
        self._periodic_interval = interval
        self._periodic_now = now
        self._loop: LoopingCall | None = None
        #: The run in progress (its subclass sets and clears it); stopping waits for it.
        self._running: Deferred[Any] | None = None

    def run_once(self) -> Deferred[Any]:
        raise NotImplementedError

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        loop = LoopingCall(self.run_once)
        loop.clock = self._periodic_clock  # type: ignore[assignment]  # seconds() and callLater suffice
        self._loop = loop
        loop.start(self._periodic_interval, now=self._periodic_now)

    def stopService(self) -> Deferred[None] | None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        running = self._running
        if running is None:
            return None
        done: Deferred[None] = Deferred()
        running.addBoth(lambda _: done.callback(None))
        return done


__all__ = ["PeriodicService"]
