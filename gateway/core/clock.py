"""The one clock every service is given (sans-IO protocol).

A service needs two kinds of time: *reactor time* to schedule work
(``seconds()``, ``callLater``), and the *wall clock* as an aware UTC
datetime (``now()``) for what it records and checks (creation times,
validity windows, next attempts). Both come from one injected object, so a
test that advances a deterministic clock moves both together. The
Twisted-backed implementation is :class:`gateway.service.runtime.ReactorClock`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol


class Timer(Protocol):
    """A scheduled call (Twisted's ``IDelayedCall``)."""

    def getTime(self) -> float: ...

    def cancel(self) -> None: ...

    def active(self) -> bool: ...


class Clock(Protocol):
    """Reactor time, timers and the wall clock, from one source."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Timer: ...

    def now(self) -> datetime: ...


def utc_from_seconds(seconds: float) -> datetime:
    """The aware UTC datetime of a POSIX timestamp (a reactor's ``seconds()``)."""
    return datetime.fromtimestamp(seconds, UTC)


__all__ = ["Clock", "Timer", "utc_from_seconds"]
