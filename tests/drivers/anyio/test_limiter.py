"""``InProcessIdentifyLimiter``: buckets, windows and the session start budget."""

from __future__ import annotations

import itertools

import anyio
import pytest

from gateway_anyio import IdentifyWait, InProcessIdentifyLimiter
from gateway_proto.identify import SessionStartLimit

pytestmark = pytest.mark.anyio


class FakeClock:
    """A clock whose sleep advances it instantly (one sleeper at a time)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


async def test_one_identify_per_bucket_per_window() -> None:
    clock = FakeClock()
    limiter = InProcessIdentifyLimiter(2, window=5.0, clock=clock, sleep=clock.sleep)
    waits: list[IdentifyWait] = []
    for shard_id in range(6):
        await limiter.acquire(shard_id, on_wait=waits.append)
    grants = [(g.shard_id, g.bucket, g.at - 100.0) for g in limiter.history]
    assert grants == [(0, 0, 0), (1, 1, 0), (2, 0, 5), (3, 1, 5), (4, 0, 10), (5, 1, 10)]
    # Sequential callers: shard 2 waits out bucket 0's window, after which bucket 1's
    # slot for shard 3 is already due; likewise for shards 4 and 5.
    assert [(w.bucket, w.delay) for w in waits] == [(0, 5.0), (0, 5.0)]
    assert not any(w.waits_for_reset for w in waits)


async def test_spent_budget_waits_for_the_reset_and_says_so() -> None:
    clock = FakeClock()
    limit = SessionStartLimit(total=5, remaining=1, reset_after=60.0, max_concurrency=1)
    limiter = InProcessIdentifyLimiter(1, window=5.0, limit=limit, clock=clock, sleep=clock.sleep)
    waits: list[IdentifyWait] = []
    await limiter.acquire(0, on_wait=waits.append)
    assert limiter.remaining == 0
    await limiter.acquire(1, on_wait=waits.append)
    assert [w.waits_for_reset for w in waits] == [True]
    assert clock.now >= 160.0  # never before the budget's reset
    assert limiter.remaining == 4


async def test_concurrent_acquirers_keep_their_buckets_apart() -> None:
    limiter = InProcessIdentifyLimiter(2, window=0.05)
    async with anyio.create_task_group() as tg:
        for shard_id in range(6):
            tg.start_soon(limiter.acquire, shard_id)
    by_bucket: dict[int, list[float]] = {}
    for grant in limiter.history:
        by_bucket.setdefault(grant.bucket, []).append(grant.at)
    assert sorted(by_bucket) == [0, 1]
    for times in by_bucket.values():
        assert len(times) == 3
        assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(times))


class ManualClock:
    """A clock that moves only when the test moves it; sleeping polls it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(0.001)


async def test_waiters_of_one_bucket_are_granted_in_shard_id_order() -> None:
    clock = ManualClock()
    limiter = InProcessIdentifyLimiter(1, window=5.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire(9)  # takes the only bucket for one window
    async with anyio.create_task_group() as tg:
        for shard_id in (3, 1, 2, 0):  # they ask out of order
            tg.start_soon(limiter.acquire, shard_id)
        while len(limiter._queue) < 4:
            await anyio.sleep(0.001)
        for _ in range(4):
            granted = len(limiter.history)
            clock.now += 5.0
            while len(limiter.history) == granted:
                await anyio.sleep(0.001)
    assert [(g.shard_id, g.at) for g in limiter.history] == [
        (9, 100.0),
        (0, 105.0),
        (1, 110.0),
        (2, 115.0),
        (3, 120.0),
    ]
