"""The Batcher groups items that arrive while a batch runs (service/batching.py)."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred

from gateway.service.batching import Batcher


class Runner:
    """A batch runner whose batches finish when the test says so."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.pending: list[Deferred[list[int]]] = []

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        d: Deferred[list[int]] = Deferred()
        self.pending.append(d)
        return await d

    def finish(self, results: list[int] | None = None) -> None:
        d = self.pending.pop(0)
        d.callback(results if results is not None else [i * 10 for i in self.batches[-1]])


def outcomes(ds: list[Deferred[int]]) -> list[object]:
    got: list[object] = []
    for d in ds:
        d.addBoth(got.append)
    return got


def test_an_item_alone_runs_at_once_and_items_arriving_meanwhile_form_the_next_batch() -> None:
    runner = Runner()
    batcher = Batcher[int, int](runner)
    first = batcher.submit(1)
    assert runner.batches == [[1]]  # no timer: at once
    later = [batcher.submit(i) for i in (2, 3, 4)]
    assert runner.batches == [[1]]  # one batch at a time
    got = outcomes([first])
    runner.finish([10])
    assert got == [10]
    assert runner.batches == [[1], [2, 3, 4]]
    got = outcomes(later)
    runner.finish([20, 30, 40])
    assert got == [20, 30, 40]  # each caller gets its own result, in order


def test_a_batch_never_exceeds_its_limit() -> None:
    runner = Runner()
    batcher = Batcher[int, int](runner, max_batch=2)
    ds = [batcher.submit(i) for i in range(5)]
    runner.finish()
    runner.finish()
    runner.finish()
    assert runner.batches == [[0], [1, 2], [3, 4]]
    assert outcomes(ds) == [0, 10, 20, 30, 40]


def test_a_failed_batch_fails_each_of_its_items_and_the_next_batch_still_runs() -> None:
    runner = Runner()
    batcher = Batcher[int, int](runner)
    failed = [batcher.submit(1)]
    waiting = batcher.submit(2)
    got = outcomes(failed)
    runner.pending.pop(0).errback(RuntimeError("disk full"))
    assert isinstance(got[0].value, RuntimeError)  # type: ignore[attr-defined]
    assert runner.batches == [[1], [2]]
    runner.finish()
    assert outcomes([waiting]) == [20]


def test_an_item_submitted_by_a_callback_waits_for_the_next_batch() -> None:
    runner = Runner()
    batcher = Batcher[int, int](runner)
    first = batcher.submit(1)
    batcher.submit(2)
    first.addCallback(lambda _: batcher.submit(3))
    runner.finish()
    # 2 and 3 form one batch; 3 did not start a batch beside 2's.
    assert runner.batches == [[1], [2, 3]]
    assert len(runner.pending) == 1


def test_a_runner_returning_the_wrong_number_of_results_fails_the_batch() -> None:
    runner = Runner()
    batcher = Batcher[int, int](runner)
    got = outcomes([batcher.submit(1)])
    runner.finish([1, 2])
    assert isinstance(got[0].value, RuntimeError)  # type: ignore[attr-defined]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Batcher[int, int](Runner(), max_batch=0)
