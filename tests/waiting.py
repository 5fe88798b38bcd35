"""The one wait-for-condition helper of the tests that run on the real reactor.

``await until(condition)`` lets the real reactor run (network I/O, threads
handing results back) until ``condition()`` is truthy and returns that value.
``condition`` may be plain or return an awaitable (a database query, a
service call). It is checked every ``step`` seconds of reactor time
(``step=0``: on every reactor turn, for conditions that only wait for
loopback I/O), and the wait fails after ``timeout`` seconds.

Tests on ``twisted.internet.task.Clock`` need none of this: they advance the
clock (see :mod:`tests.service.clocked`). Nothing in the tests sleeps or
polls in a loop of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor, task


async def until(condition: Callable[[], Any], *, timeout: float = 10.0, step: float = 0.02) -> Any:
    """The first truthy value of ``condition()`` (awaited if awaitable), checked every ``step`` s."""
    deadline = reactor.seconds() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if reactor.seconds() >= deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await task.deferLater(reactor, step, lambda: None)


def until_sync(condition: Callable[[], Any], *, timeout: float = 10.0, step: float = 0.05) -> Any:
    """:func:`until` for synchronous tests without a reactor (a node in a subprocess, a browser)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(step)
