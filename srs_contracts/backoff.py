"""Exponential backoff: the one way srs waits before trying again.

The delay doubles per failure up to a maximum. The engine retries an input after a
delay with *full jitter* (a uniform draw between zero and the cap: retries of many
inputs that failed together, e.g. when a provider had a hiccup, do not hammer it again
in lockstep); the operator's work queue waits the cap itself; a TicketTopic that cannot
reach Kafka waits the cap give or take 20 %.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_RANDOM = random.Random()


@dataclass(frozen=True)
class Backoff:
    """Delays (in seconds) before the retry that follows ``failures`` failed attempts."""

    initial_s: float
    maximum_s: float

    def cap(self, failures: int) -> float:
        """The largest delay after ``failures`` failed attempts (1 → ``initial_s``)."""
        if failures < 1:
            raise ValueError("failures counts failed attempts and starts at 1")
        # Bound the exponent so the float never overflows for absurd attempt counts.
        return min(self.maximum_s, self.initial_s * 2.0 ** min(failures - 1, 64))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """A random delay in ``[0, cap(failures)]``."""
        return (rng or _RANDOM).uniform(0.0, self.cap(failures))

    def around(self, failures: int, spread: float = 0.2, rng: random.Random | None = None) -> float:
        """``cap(failures)`` give or take ``spread`` (a fraction): near the cap, not in lockstep."""
        return self.cap(failures) * (rng or _RANDOM).uniform(1.0 - spread, 1.0 + spread)
