"""CommandRateLimiter: a sliding-window log (tables of now, action, expected)."""

from __future__ import annotations

import pytest

from gateway_proto import CommandRateLimiter, heartbeat_reserve


@pytest.mark.parametrize(
    ("interval", "reserve"),
    [(41.25, 3), (45.0, 3), (60.0, 2), (30.0, 3), (2.0, 31), (1.0, 60), (0.2, 60), (100.0, 2)],
)
def test_heartbeat_reserve(interval: float, reserve: int) -> None:
    assert heartbeat_reserve(interval) == reserve


def test_bursts_then_waits_for_the_oldest_to_leave() -> None:
    limiter = CommandRateLimiter(limit=3, window=10.0)
    assert limiter.available(0.0) == 3
    assert limiter.try_acquire(0.0)
    assert limiter.try_acquire(1.0)
    assert limiter.try_acquire(2.0)
    assert not limiter.try_acquire(2.0)
    assert limiter.available(9.999) == 0
    assert limiter.next_available(5.0) == 10.0
    assert limiter.available(10.0) == 1  # [0, 10): the entry at 0.0 left at 10.0
    assert limiter.next_available(10.0) == 10.0
    assert limiter.try_acquire(10.0)
    assert limiter.next_available(10.0) == 11.0


def test_reserved_permits_are_kept_for_heartbeats() -> None:
    limiter = CommandRateLimiter(limit=8, window=10.0)
    assert not limiter.set_heartbeat_interval(5.0)  # ceil(10 / 5) + 1 = 3
    assert limiter.reserved == 3
    assert limiter.capacity == 5
    for _ in range(4):
        assert limiter.try_acquire(0.0)
    limiter.record(1.0)  # an IDENTIFY, RESUME or op 1 heartbeat always goes, and counts
    assert not limiter.try_acquire(1.0)
    assert limiter.used(2.0) == 5
    # The periodic heartbeats are never recorded: the reserve stands for them.
    assert limiter.next_available(2.0) == 10.0


def test_reserve_leaves_half_the_budget_for_commands() -> None:
    limiter = CommandRateLimiter(limit=3, window=60.0)
    assert limiter.set_heartbeat_interval(0.5)  # heartbeats need more than the cap
    assert (limiter.reserved, limiter.capacity) == (1, 2)
    limiter = CommandRateLimiter()
    assert limiter.set_heartbeat_interval(0.2)
    assert (limiter.reserved, limiter.capacity) == (60, 60)


def test_clock_going_backwards_keeps_the_log_ordered() -> None:
    limiter = CommandRateLimiter(limit=2, window=10.0)
    limiter.record(5.0)
    limiter.record(4.0)
    assert limiter.next_available(5.0) == 15.0


@pytest.mark.parametrize(("limit", "window", "reserved"), [(0, 1.0, 0), (1, 0.0, 0), (2, 1.0, 2)])
def test_bad_arguments(limit: int, window: float, reserved: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        CommandRateLimiter(limit, window, reserved=reserved)
    with pytest.raises(ValueError):  # noqa: PT011
        heartbeat_reserve(0.0)
