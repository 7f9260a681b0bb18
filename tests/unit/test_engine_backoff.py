"""Retry delays: exponential caps, full jitter, bounded by the maximum."""

from __future__ import annotations

import random

import pytest

from srs_contracts.backoff import Backoff

pytestmark = pytest.mark.unit


def test_the_cap_doubles_per_failure_up_to_the_maximum() -> None:
    backoff = Backoff(initial_s=0.2, maximum_s=3.0)
    assert [backoff.cap(n) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 3.0, 3.0]
    assert backoff.cap(10_000) == 3.0


def test_delays_are_spread_over_the_whole_range_below_the_cap() -> None:
    backoff = Backoff(initial_s=1.0, maximum_s=60.0)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    # Full jitter: about uniform on [0, 4] — both ends are reached, the mean is near 2.
    assert min(delays) < 0.1
    assert max(delays) > 3.9
    assert 1.8 < sum(delays) / len(delays) < 2.2


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        Backoff(1.0, 2.0).cap(0)
