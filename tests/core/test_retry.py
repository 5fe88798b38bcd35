import random

import pytest

from gateway.core.retry import Backoff


def test_delay_doubles_until_the_cap() -> None:
    backoff = Backoff(initial_seconds=1, max_seconds=10, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_its_band_and_varies() -> None:
    backoff = Backoff(initial_seconds=4, max_seconds=100, jitter=0.25)
    rng = random.Random(7)
    delays = [backoff.delay(1, rng) for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert len(set(delays)) > 100


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert Backoff(jitter=0).delay(10_000) == 300


@pytest.mark.parametrize("kwargs", [{"initial_seconds": 0}, {"jitter": 1.5}, {"max_seconds": 0.5}])
def test_nonsense_settings_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
