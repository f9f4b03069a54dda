"""Reconnect delays: capped exponential backoff with full jitter, as pure arithmetic."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays between reconnect attempts: ``uniform(0, min(cap, base * 2**attempt))``.

    Full jitter spreads thousands of shards that lost their connections at the same
    moment, so they don't come back at the same moment. Call :meth:`reset` once a
    connection succeeds (READY or RESUMED).

    Args:
        rng: the random source (inject a seeded one in tests).
        base: the first attempt's upper bound, in seconds.
        cap: the largest delay, in seconds.

    """

    def __init__(self, rng: random.Random, *, base: float = 1.0, cap: float = 60.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self._rng = rng
        self._base = base
        self._cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt, and count the attempt."""
        bound = min(self._cap, self._base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self._rng.uniform(0.0, bound)

    def reset(self) -> None:
        """Start over after a successful connection."""
        self.attempt = 0
