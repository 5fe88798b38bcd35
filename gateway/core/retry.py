"""Retry timing for outbound queues: exponential backoff with jitter (sans-IO)."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Why an operator may abandon a dead letter (``imi-gateway queue --abandon``, the console).
ABANDON_REASONS = ("PEER_RETIRED", "SENT_OTHERWISE", "DUPLICATE", "EXCHANGE_WITHDRAWN")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full-range multiplicative jitter.

    initial_seconds: delay after the first failure.
    max_seconds: the delay never grows past this.
    jitter: each delay is multiplied by a random factor in [1 - jitter, 1 + jitter],
        so that many nodes retrying after an outage do not retry in lock-step.
    """

    initial_seconds: float = 1.0
    max_seconds: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial_seconds <= 0 or self.max_seconds < self.initial_seconds:
            raise ValueError("backoff needs 0 < initial_seconds <= max_seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``attempts`` consecutive failures (attempts >= 1)."""
        exponent = min(max(attempts, 1) - 1, 62)
        base = min(self.initial_seconds * (2.0**exponent), self.max_seconds)
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return base * factor
