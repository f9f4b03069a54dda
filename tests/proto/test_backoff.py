"""Backoff: capped exponential delays with full jitter, reset on success."""

from __future__ import annotations

import random

import pytest

from gateway_proto import Backoff

from .helpers import FixedRandom


def test_bounds_double_up_to_the_cap() -> None:
    backoff = Backoff(FixedRandom(1.0 - 1e-12), base=1.0, cap=10.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
    assert backoff.attempt == 6
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == pytest.approx(1.0)


def test_full_jitter_stays_within_bounds() -> None:
    backoff = Backoff(random.Random(7), base=0.5, cap=30.0)
    for attempt in range(100):
        assert 0.0 <= backoff.next_delay() <= min(30.0, 0.5 * 2**attempt)


def test_huge_attempt_counts_do_not_overflow() -> None:
    backoff = Backoff(FixedRandom(0.5), base=1.0, cap=60.0)
    backoff.attempt = 10_000
    assert backoff.next_delay() == 30.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0)])
def test_bad_arguments(base: float, cap: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Backoff(random.Random(), base=base, cap=cap)
