"""Group work that arrives while the previous group is running (reactor thread only).

:class:`Batcher` turns one-at-a-time calls into batches without a timer: an
item that arrives when nothing runs starts a batch of its own at once (no
added latency at low load); items that arrive while a batch runs wait and
form the next batch together, up to ``max_batch``. Under load the batches
grow by themselves, so the per-batch cost (a transaction, its statements,
its audit head) is shared by more items exactly when it matters.

The pipeline stores national submissions this way: every submission of a
batch is one element of one ``submit_messages_txn`` call, which reports a
refusal per submission, and every caller gets its own result only after
the transaction committed. Sans timers, so tests on a fake clock see no
difference.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

T = TypeVar("T")
R = TypeVar("R")

#: Runs one batch; returns one result per item, in order.
BatchRunner = Callable[[list[T]], Awaitable[Sequence[R]]]


class Batcher(Generic[T, R]):
    """Runs ``run`` on batches of submitted items, one batch at a time."""

    def __init__(self, run: BatchRunner[T, R], *, max_batch: int = 100) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max = max_batch
        self._waiting: list[tuple[T, Deferred[R]]] = []
        self._running = False
        #: Batches run and items in them (for tests and the benchmark's curiosity).
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> Deferred[R]:
        """``item``'s result, once the batch it joined has run (its error if the batch failed)."""
        d: Deferred[R] = Deferred()
        self._waiting.append((item, d))
        if not self._running:
            self._next()
        return d

    def _next(self) -> None:
        if not self._waiting:
            return
        batch = self._waiting[: self._max]
        del self._waiting[: self._max]
        self._running = True
        self.batches += 1
        self.items += len(batch)
        done = ensureDeferred(self._run_batch([item for item, _ in batch]))
        done.addBoth(self._finished, batch)

    async def _run_batch(self, items: list[T]) -> Sequence[R]:
        return await self._run(items)

    def _finished(self, outcome: Sequence[R] | Failure, batch: list[tuple[T, Deferred[R]]]) -> None:
        # Still "running" while the callers' callbacks run: an item they submit
        # waits for the next batch instead of starting one beside it.
        if not isinstance(outcome, Failure) and len(outcome) != len(batch):
            outcome = Failure(RuntimeError("a batch returned the wrong number of results"))  # type: ignore[no-untyped-call]  # Failure() is untyped
        try:
            for index, (_, d) in enumerate(batch):
                if isinstance(outcome, Failure):
                    d.errback(outcome)
                else:
                    d.callback(outcome[index])
        finally:
            self._running = False
            self._next()


__all__ = ["BatchRunner", "Batcher"]
