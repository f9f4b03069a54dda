"""Shard leases: the pure decisions (no Redis), then the scripts against a real Redis."""

from __future__ import annotations

import anyio
import pytest
import redis
import redis.asyncio as aioredis

from gateway_redis._keys import Keys
from gateway_redis.leases import (
    LeaseBook,
    LeaseStore,
    LeaseTiming,
    Renewal,
    ShardRequest,
    lease_value,
    plan_claims,
)

TIMING = LeaseTiming(ttl=15.0)  # renew every 5 s, stop 3 s before a possible expiry

# -- pure: timing, requests, claims ---------------------------------------------------


def test_timing_defaults_follow_the_ttl() -> None:
    assert (TIMING.renew_every, TIMING.margin, TIMING.stop_grace) == (5.0, 3.0, 1.5)
    assert TIMING.claim_every == 5.0
    assert TIMING.retry_every == 1.25
    assert TIMING.ttl_ms == 15000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": 0},
        {"ttl": 10, "safety_margin": 10},
        {"ttl": 10, "safety_margin": 2, "renew_interval": 8},  # no renewal before the stop
        {"ttl": 10, "renew_interval": 0},
        {"ttl": 10, "claim_interval": -1},
    ],
)
def test_timing_that_leaves_no_time_to_renew_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"ttl|renew|interval|margin"):
        LeaseTiming(**kwargs)


def test_shard_requests() -> None:
    fixed = ShardRequest.parse("4-7/16")
    assert (fixed.shard_count, fixed.count, fixed.ids) == (16, 4, (4, 5, 6, 7))
    assert str(fixed) == "4-7/16"
    assert ShardRequest.parse("3/8").ids == (3,)
    assert ShardRequest.any(300, 256).count == 256
    assert list(ShardRequest.any(2, 4).candidates) == [0, 1, 2, 3]
    for bad in ("7-4/16", "0-16/16", "x", "4-7"):
        with pytest.raises(ValueError, match=r"range|expected"):
            ShardRequest.parse(bad)


def test_claims_take_free_ids_lowest_first_up_to_the_spare_capacity() -> None:
    request = ShardRequest.any(3, 8)
    assert plan_claims(request, held=set(), taken={0, 2}) == [1, 3, 4]
    assert plan_claims(request, held={5}, taken={0, 1}) == [2, 3]
    assert plan_claims(request, held={1, 2, 3}, taken=set()) == []
    fixed = ShardRequest.parse("4-6/8")
    assert plan_claims(fixed, held={4}, taken={5}) == [6]


# -- pure: renewals and the fencing stop time ---------------------------------------------


def test_a_shard_stops_margin_seconds_before_its_lease_could_expire() -> None:
    book = LeaseBook(TIMING)
    book.add(3, token=7, sent_at=100.0)
    assert book.stop_at(3) == 112.0  # 100 + 15 - 3
    assert book.must_stop(111.9) == []
    assert book.must_stop(112.0) == [3]
    # The forced end comes half the margin before the earliest expiry.
    assert book.stop_timeout(3, 112.0) == pytest.approx(1.5)
    assert book.stop_timeout(3, 114.0) == 0.0


def test_the_stop_time_counts_from_the_send_of_the_last_successful_renewal() -> None:
    book = LeaseBook(TIMING)
    book.add(1, token=1, sent_at=0.0)
    book.add(2, token=2, sent_at=0.0)
    assert book.renewed(1, sent_at=5.0)
    # Renewals of shard 2 keep failing: only shard 2 must stop, at 0 + 12.
    assert book.next_stop() == 12.0
    assert book.must_stop(12.0) == [2]
    assert book.stop_at(1) == 17.0


def test_a_renewal_sent_after_the_stop_time_does_not_revive_the_shard() -> None:
    book = LeaseBook(TIMING)
    book.add(1, token=1, sent_at=0.0)
    assert book.renewed(1, sent_at=12.5)  # held still, but its stop time stays
    assert book.must_stop(12.5) == [1]


def test_an_answer_for_a_lease_no_longer_held_asks_for_its_release() -> None:
    book = LeaseBook(TIMING)
    book.add(1, token=1, sent_at=0.0)
    assert book.drop(1) is not None
    assert not book.renewed(1, sent_at=1.0)
    assert book.next_stop() is None
    assert book.drop(1) is None


def test_a_late_answer_never_moves_the_stop_time_back() -> None:
    book = LeaseBook(TIMING)
    book.add(1, token=1, sent_at=6.0)
    assert book.renewed(1, sent_at=5.0)
    assert book.stop_at(1) == 18.0


# -- Redis: the scripts ----------------------------------------------------------------

SHORT = LeaseTiming(ttl=1.0, renew_interval=0.3, safety_margin=0.2)


def store_for(client: aioredis.Redis, owner: str, shard_count: int = 4) -> LeaseStore:
    return LeaseStore(client, Keys.for_token("lease-token"), owner, SHORT, shard_count)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


@pytest.mark.anyio
async def test_two_owners_never_hold_one_shard(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        a, b = store_for(client, "a"), store_for(client, "b")
        won_a = await a.acquire([0, 1])
        won_b = await b.acquire([1, 2])
        assert set(won_a) == {0, 1}
        assert set(won_b) == {2}
        assert await b.renew({1: won_a[1]}) == {1: Renewal.LOST}  # b cannot renew a's lease
        assert await a.renew(won_a) == {0: Renewal.RENEWED, 1: Renewal.RENEWED}
        owners = await a.owners(range(4))
        assert owners == {
            0: lease_value("a", won_a[0]),
            1: lease_value("a", won_a[1]),
            2: lease_value("b", won_b[2]),
            3: None,
        }
        assert await a.taken(range(4)) == {0, 1, 2}
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_crashed_owners_leases_expire_and_others_take_them_with_a_larger_token(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        crashed, other = store_for(client, "crashed"), store_for(client, "other")
        first = await crashed.acquire([0])
        assert await other.acquire([0]) == {}
        with anyio.fail_after(5):
            while 0 in await other.taken([0]):  # nobody renews: the TTL runs out
                await anyio.sleep(0.05)
        second = await other.acquire([0])
        assert second[0] > first[0]
        # The crashed owner, back, finds the lease another's: its renewal says LOST.
        assert await crashed.renew(first) == {0: Renewal.LOST}
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_release_only_removes_our_own_lease(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        a, b = store_for(client, "a"), store_for(client, "b")
        won = await a.acquire([0])
        await b.release({0: won[0]})  # b does not hold it: nothing happens
        assert await a.taken([0]) == {0}
        await a.release(won)
        assert await a.taken([0]) == set()
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_lease_redis_lost_is_restored_and_the_fence_counter_raised(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        a = store_for(client, "a")
        for _ in range(3):
            await a.release(await a.acquire([0]))
        won = await a.acquire([0])
        assert won == {0: 4}
        await client.flushall()  # what a restart without persistence does
        assert await a.renew(won) == {0: Renewal.RESTORED}
        assert await a.renew(won) == {0: Renewal.RENEWED}
        await a.release(won)
        assert await store_for(client, "b").acquire([0]) == {0: 5}  # never a reused token
    finally:
        await client.aclose()


def test_the_process_record_expires_with_the_lease_ttl(redis_url: str) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = store_for(client, "a")
            await store.announce({"shards": "0,1", "pid": 12})
        finally:
            await client.aclose()

    anyio.run(main)
    sync = redis.Redis.from_url(redis_url)
    try:
        key = Keys.for_token("lease-token").process("a")
        assert sync.hgetall(key) == {b"shards": b"0,1", b"pid": b"12"}
        assert 0 < sync.pttl(key) <= 1000
    finally:
        sync.close()
