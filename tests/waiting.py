"""The one wait-for-condition helper of the tests that run real nodes on the real reactor.

``await until(condition)`` lets the reactor run until ``condition()`` is
truthy and returns that value. ``condition`` may be plain or return an
awaitable (a database query). Bounded: fails after ``timeout`` seconds.
Tests on ``twisted.internet.task.Clock`` need none of this: they advance
the clock.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor, task


async def until(condition: Callable[[], Any], *, timeout: float = 10.0, step: float = 0.02) -> Any:
    """The first truthy value of ``condition()`` (awaited if awaitable), checked every ``step`` s."""
    waited = 0.0
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if waited >= timeout:
            raise AssertionError(f"condition not reached within {timeout} s")
        await task.deferLater(reactor, step, lambda: None)
        waited += step
