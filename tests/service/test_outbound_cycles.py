"""A peer sender never has two envelopes in flight, whatever wakes it meanwhile."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from gateway.service.outbound import PeerSender


class _Sender(PeerSender):
    """A PeerSender whose send cycle is a Deferred the test completes by hand."""

    def __init__(self, clock: Clock) -> None:
        self.name = "outbound-PT"
        self.peer_id = "PT"
        self._clock = clock
        self._timer = None
        self._running_cycle = None
        self._again = False
        self._resume_at = None
        self.cycles: list[Deferred] = []
        self.running = True

    def _send_batch(self) -> Deferred:
        d: Deferred = Deferred()
        self.cycles.append(d)
        return d

    def _schedule_next_due(self) -> None:
        self._schedule(5)


def test_a_timer_firing_during_a_running_cycle_does_not_start_a_second_one() -> None:
    clock = Clock()
    sender = _Sender(clock)
    sender.wake()
    clock.advance(0)
    assert len(sender.cycles) == 1
    # A timer set by a late "next due" answer fires while the first cycle runs.
    sender._schedule(0)
    clock.advance(0)
    assert len(sender.cycles) == 1  # still one envelope in flight
    sender.cycles[0].callback(True)
    clock.advance(0)
    assert len(sender.cycles) == 2  # the deferred wake-up runs after the first cycle
    sender.cycles[1].callback(False)
    clock.advance(0)
    assert len(sender.cycles) == 2
