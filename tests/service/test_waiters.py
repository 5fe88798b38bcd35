from twisted.internet.task import Clock

from gateway.service.waiters import Waiters


def test_notify_wakes_only_waiters_of_that_key() -> None:
    clock = Clock()
    waiters = Waiters(clock)
    a, b = waiters.wait("PT-OMD", 25), waiters.wait("PT-OTHER", 25)
    results: list[tuple[str, bool]] = []
    a.addCallback(lambda r: results.append(("a", r)))
    b.addCallback(lambda r: results.append(("b", r)))
    waiters.notify("PT-OMD")
    assert results == [("a", True)]
    assert clock.getDelayedCalls() and len(clock.getDelayedCalls()) == 1


def test_timeout_fires_false_and_leaves_no_timer() -> None:
    clock = Clock()
    waiters = Waiters(clock)
    results: list[bool] = []
    waiters.wait("k", 10).addCallback(results.append)
    clock.advance(9.9)
    assert results == []
    clock.advance(0.2)
    assert results == [False]
    assert clock.getDelayedCalls() == []
    waiters.notify("k")  # nothing left to wake
    assert results == [False]


def test_cancel_all_ends_every_long_poll() -> None:
    clock = Clock()
    waiters = Waiters(clock)
    results: list[bool] = []
    for key in ("a", "b", "b"):
        waiters.wait(key, 30).addCallback(results.append)
    waiters.cancel_all()
    assert results == [False, False, False]
    assert clock.getDelayedCalls() == []


def test_cancelling_a_waiter_stops_its_timer() -> None:
    clock = Clock()
    waiters = Waiters(clock)
    d = waiters.wait("k", 30)
    results: list[bool] = []
    d.addCallback(results.append)
    d.cancel()
    assert results == [False]
    assert clock.getDelayedCalls() == []
