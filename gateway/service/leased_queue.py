"""One worker loop for every leased queue: the peer senders and push delivery.

A :class:`LeasedQueueWorker` runs a *job* one cycle at a time. A cycle
claims rows of a leased queue (:mod:`gateway.storage.leases`), works them and
settles every claimed row (done, back to the queue with backoff, or dead
letter), and fires with the seconds until the next cycle. The worker owns
the scheduling only:

* never two cycles at once: a wake-up or a timer during a cycle makes the
  next cycle start right after it;
* :meth:`wake` starts a cycle at once (something was queued), unless the
  job is backing off (:meth:`hold_until`): the whole queue then waits, which
  keeps its order across failures; with a ``linger`` it starts that many
  seconds later instead, so that what is queued meanwhile goes in the same
  cycle (further wake-ups never postpone it: the linger is bounded);
* a timer runs the next cycle when the job says so; an earlier timer wins;
* a cycle that fails unexpectedly is logged and followed by one after
  ``failure_delay()`` seconds;
* stopping cancels the timer and waits for the cycle in flight.

Everything runs on the injected clock, so a test drives a worker with
``twisted.internet.task.Clock``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.core.clock import Clock, Timer

log = Logger()

#: One cycle (an ``async def``): returns the seconds until the next one (0: at once).
Cycle = Callable[[], Coroutine[Any, Any, float]]


class LeasedQueueWorker(Service):
    """Runs ``cycle`` one at a time, on wake-ups and timers, on ``clock``."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        cycle: Cycle,
        *,
        failure_delay: Callable[[], float],
        on_start: Callable[[], Coroutine[Any, Any, None]] | None = None,
        linger: float = 0.0,
    ) -> None:
        if linger < 0:
            raise ValueError("linger must not be negative")
        self.name = name
        self._linger = linger
        self._clock = clock
        self._cycle_of = cycle
        self._failure_delay = failure_delay
        self._on_start = on_start
        self._timer: Timer | None = None
        self._running_cycle: Deferred[float] | None = None
        self._again = False
        #: Clock time before which no cycle starts (the job's backoff), if any.
        self._resume_at: float | None = None

    # --- service ----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        if self._on_start is None:
            self.wake()
            return
        d = ensureDeferred(self._on_start())
        d.addErrback(lambda f: log.failure("Starting {name}", f, name=self.name))
        d.addBoth(lambda _: self.wake())

    def stopService(self) -> Deferred[float] | None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self._running_cycle  # the cycle in flight finishes (or fails) first

    # --- scheduling ---------------------------------------------------------------

    @property
    def cycle_in_flight(self) -> Deferred[float] | None:
        """The running cycle, if any (tests wait for it to settle)."""
        return self._running_cycle

    def wake(self) -> None:
        """Look at the queue now (called when something was queued)."""
        if not self.running or self.backing_off():
            return
        if self._running_cycle is not None:
            self._again = True
            return
        self.schedule(self._linger)

    def hold_until(self, seconds: float | None) -> None:
        """Start no cycle before clock time ``seconds`` (None: no hold)."""
        self._resume_at = seconds

    def backing_off(self) -> bool:
        return self._resume_at is not None and self._clock.seconds() < self._resume_at

    def schedule(self, delay: float) -> None:
        """Run a cycle after ``delay`` seconds, unless one is already due sooner."""
        if not self.running:
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._clock.seconds() + delay:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(max(delay, 0), self._run)

    def _run(self) -> None:
        self._timer = None
        if self._running_cycle is not None:
            # Never two cycles at once: the running one is followed by another.
            self._again = True
            return
        self._again = False
        d = ensureDeferred(self._cycle_of())
        self._running_cycle = d

        def done(delay: float) -> None:
            self._running_cycle = None
            if self.backing_off():
                assert self._resume_at is not None
                self.schedule(self._resume_at - self._clock.seconds())
            elif self._again:
                self.schedule(0)
            else:
                self.schedule(delay)

        def failed(failure: Failure) -> None:
            self._running_cycle = None
            log.failure("{name}: cycle failed", failure, name=self.name)
            self.schedule(self._failure_delay())

        d.addCallbacks(done, failed)


__all__ = ["Cycle", "LeasedQueueWorker"]
