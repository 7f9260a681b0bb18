"""Exponential backoff with full jitter between retries of one input.

Full jitter (a uniform draw between zero and the exponential cap) spreads retries of
many inputs that failed together, e.g. when a provider had a hiccup, instead of making
them hammer it again in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_RANDOM = random.Random()


@dataclass(frozen=True)
class Backoff:
    """Delays (in seconds) before retry number ``failures`` of one input."""

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
