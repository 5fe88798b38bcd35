"""Wake-ups for long-polling clients and idle queue workers.

A waiter is a Deferred that fires ``True`` when something happened for its
key (a new delivery for an authority, a new message for a peer) or ``False``
when its timeout passes on the injected clock. A wake-up is a hint: callers
re-query, and wait again if there was nothing for them.

Several gateway processes may share one PostgreSQL database. A change made
by another process reaches this one as a database notification
(:mod:`gateway.storage.notify`), which the node turns into :meth:`notify`;
when the listening connection was lost and is back, :meth:`wake_all` makes
every waiter look again (what was notified meanwhile is gone).
"""

from __future__ import annotations

from collections import defaultdict

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from gateway.core.clock import Clock, Timer


class Waiters:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiting: dict[str, list[Deferred[bool]]] = defaultdict(list)

    def wait(self, key: str, timeout: float) -> Deferred[bool]:
        """A Deferred firing True on :meth:`notify` for ``key``, False after ``timeout`` s."""
        timer: list[Timer] = []

        def cancelled(d: Deferred[bool]) -> None:
            self._forget(key, d)
            if timer and timer[0].active():
                timer[0].cancel()

        d: Deferred[bool] = Deferred(cancelled)
        self._waiting[key].append(d)

        def expire() -> None:
            self._forget(key, d)
            if not d.called:
                d.callback(False)

        timer.append(self._clock.callLater(timeout, expire))

        def stop_timer(result: object) -> object:
            if timer[0].active():
                timer[0].cancel()
            return result

        d.addBoth(stop_timer)

        def cancelled_is_false(failure: Failure) -> bool | Failure:
            return False if isinstance(failure.value, CancelledError) else failure

        d.addErrback(cancelled_is_false)
        return d

    def notify(self, key: str) -> None:
        """Wake every waiter for ``key``."""
        for d in self._waiting.pop(key, []):
            if not d.called:
                d.callback(True)

    def wake_all(self) -> None:
        """Wake every waiter (with True): each re-queries and waits again if nothing came."""
        for key in list(self._waiting):
            self.notify(key)

    def _forget(self, key: str, d: Deferred[bool]) -> None:
        waiting = self._waiting.get(key)
        if waiting and d in waiting:
            waiting.remove(d)
            if not waiting:
                del self._waiting[key]

    def cancel_all(self) -> None:
        """Fire every waiter with False (used at shutdown so long polls end promptly)."""
        for key in list(self._waiting):
            for d in self._waiting.pop(key):
                if not d.called:
                    d.callback(False)
