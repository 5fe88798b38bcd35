"""An idle leased queue lingers before its cycle, so documents queued meanwhile share it."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from gateway.config.load import parse_config
from gateway.core.errors import ConfigurationError
from gateway.service.leased_queue import LeasedQueueWorker
from gateway.service.runtime import ReactorClock

LINGER = 0.005


class _Sender(LeasedQueueWorker):
    """A worker whose cycles the test completes by hand; records when each started."""

    def __init__(self, clock: Clock, linger: float) -> None:
        super().__init__(
            "outbound-PT", ReactorClock(clock), self._cycle, failure_delay=lambda: 1, linger=linger
        )
        self._clock_now = clock.seconds
        self.started: list[float] = []
        self.cycles: list[Deferred[bool]] = []
        self.running = True

    async def _cycle(self) -> float:
        self.started.append(self._clock_now())
        d: Deferred[bool] = Deferred()
        self.cycles.append(d)
        return 0.0 if await d else 5.0


def test_a_wake_up_of_an_idle_queue_starts_its_cycle_after_the_linger() -> None:
    clock = Clock()
    sender = _Sender(clock, LINGER)
    sender.wake()
    clock.advance(LINGER / 2)
    assert sender.started == []
    sender.wake()  # more queued meanwhile: the cycle is not postponed
    clock.advance(LINGER / 2)
    assert sender.started == [pytest.approx(LINGER)]


def test_documents_queued_during_a_cycle_go_right_after_it_without_lingering() -> None:
    clock = Clock()
    sender = _Sender(clock, LINGER)
    sender.wake()
    clock.advance(LINGER)
    sender.wake()  # queued while the envelope is in flight
    clock.advance(0.1)
    sender.cycles[0].callback(True)
    clock.advance(0)
    assert sender.started == [pytest.approx(LINGER), pytest.approx(LINGER + 0.1)]


def test_without_a_linger_a_wake_up_starts_the_cycle_at_once() -> None:
    clock = Clock()
    sender = _Sender(clock, 0.0)
    sender.wake()
    clock.advance(0)
    assert sender.started == [0.0]


def test_the_linger_is_configured_in_milliseconds_bounded_and_not_negative(tmp_path) -> None:
    def linger(text: str) -> float:
        config = parse_config('[node]\nid = "NO"\n[outbound]\n' + text, tmp_path)
        return config.outbound.linger_ms

    assert linger("") == 5.0
    assert linger("linger_ms = 0\n") == 0
    assert linger("linger_ms = 100\n") == 100
    for bad in ("-1", "101"):
        with pytest.raises(ConfigurationError, match=r"outbound\.linger_ms"):
            linger(f"linger_ms = {bad}\n")
    with pytest.raises(ValueError):
        _Sender(Clock(), -0.001)
