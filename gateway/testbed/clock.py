"""A clock the demo moves forward by days: the reactor's time plus an offset.

Both nodes of the demo share one :class:`ShiftedClock`, so deadlines pass
at once while TLS, envelopes and replay windows see one consistent time on
both nodes (the same idea as the two-node deadline tests).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from gateway.core.clock import utc_from_seconds

__all__ = ["ShiftedClock"]


class _ShiftedTimer:
    """A reactor call whose ``getTime`` is on the shifted clock (queues compare the two)."""

    def __init__(self, inner: Any, clock: ShiftedClock) -> None:
        self._inner = inner
        self._clock = clock

    def getTime(self) -> float:
        return float(self._inner.getTime()) + self._clock.offset

    def cancel(self) -> None:
        self._inner.cancel()

    def active(self) -> bool:
        return bool(self._inner.active())


class ShiftedClock:
    """The reactor's clock, moved forward by :meth:`advance`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.offset = 0.0

    def seconds(self) -> float:
        return float(self._inner.seconds()) + self.offset

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return _ShiftedTimer(self._inner.callLater(delay, f, *args, **kw), self)

    def now(self) -> datetime:
        return utc_from_seconds(self.seconds())

    def advance(self, delta: timedelta) -> None:
        self.offset += delta.total_seconds()
