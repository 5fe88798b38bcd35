"""A leased-queue worker (peer senders, push) never has two cycles in flight, whatever wakes it."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from gateway.service.leased_queue import LeasedQueueWorker
from gateway.service.runtime import ReactorClock


class _Sender(LeasedQueueWorker):
    """A worker whose send cycle is a Deferred the test completes by hand.

    A cycle that sent something asks for the next at once; one that sent
    nothing asks again after 5 s (the peer sender's idle poll).
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__("outbound-PT", ReactorClock(clock), self._cycle, failure_delay=lambda: 1)
        self.cycles: list[Deferred] = []
        self.running = True

    async def _cycle(self) -> float:
        d: Deferred[bool] = Deferred()
        self.cycles.append(d)
        sent_any = await d
        return 0.0 if sent_any else 5.0


def test_a_timer_firing_during_a_running_cycle_does_not_start_a_second_one() -> None:
    clock = Clock()
    sender = _Sender(clock)
    sender.wake()
    clock.advance(0)
    assert len(sender.cycles) == 1
    # A timer set by a late "next due" answer fires while the first cycle runs.
    sender.schedule(0)
    clock.advance(0)
    assert len(sender.cycles) == 1  # still one envelope in flight
    sender.cycles[0].callback(True)
    clock.advance(0)
    assert len(sender.cycles) == 2  # the deferred wake-up runs after the first cycle
    sender.cycles[1].callback(False)
    clock.advance(0)
    assert len(sender.cycles) == 2
