"""Saved sessions: what a save round writes (pure), fenced writes in Redis, stop and resume."""

from __future__ import annotations

import anyio
import pytest
import redis.asyncio as aioredis

from gateway_anyio import Gateway, ShardState
from gateway_proto.session import Session
from gateway_redis._keys import Keys
from gateway_redis.leases import LeaseStore, LeaseTiming, lease_value
from gateway_redis.process import GatewayProcess
from gateway_redis.sessions import (
    SessionSaver,
    decode_session,
    encode_session,
    load_sessions,
    save_sessions,
)
from gateway_testing import FakeGateway

KEYS = Keys.for_token("session-token")
S1 = Session(session_id="abc", sequence=5, resume_url="wss://resume.example/")

# -- pure --------------------------------------------------------------------------------


def test_a_round_writes_changed_sessions_only() -> None:
    saver = SessionSaver(ttl=300.0)
    assert saver.due({0: S1, 1: None}, now=0.0) == {0: S1}  # nothing to resume on 1 yet
    saver.saved(0, S1, now=0.0)
    assert saver.due({0: S1}, now=1.0) == {}
    newer = S1.with_sequence(9)
    assert saver.due({0: newer}, now=2.0) == {0: newer}


def test_an_unchanged_session_is_written_again_before_it_could_expire() -> None:
    saver = SessionSaver(ttl=300.0)
    saver.saved(0, S1, now=0.0)
    assert saver.due({0: S1}, now=99.0) == {}
    assert saver.due({0: S1}, now=100.0) == {0: S1}  # ttl / 3


def test_forgetting_makes_the_next_round_write_again() -> None:
    saver = SessionSaver(ttl=300.0)
    saver.saved(0, S1, now=0.0)
    saver.saved(1, S1, now=0.0)
    saver.forget(0)
    assert saver.due({0: S1, 1: S1}, now=1.0) == {0: S1}
    saver.forget()
    assert set(saver.due({0: S1, 1: S1}, now=1.0)) == {0, 1}


def test_sessions_round_trip_through_their_hash_fields() -> None:
    assert decode_session(encode_session(S1)) == S1
    none_yet = Session(session_id="x", sequence=None, resume_url="wss://r/")
    assert decode_session(encode_session(none_yet)) == none_yet
    raw = {k.encode(): v.encode() for k, v in encode_session(S1).items()}
    assert decode_session(raw) == S1
    assert decode_session({}) is None
    assert decode_session({b"session_id": b"x", b"seq": b"z", b"resume_url": b"u"}) is None
    assert decode_session({b"seq": b"1"}) is None


# -- Redis -------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


@pytest.mark.anyio
async def test_a_save_is_written_only_while_the_lease_is_the_savers(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        timing = LeaseTiming(ttl=5.0)
        ours = LeaseStore(client, KEYS, "ours", timing, 4)
        theirs = LeaseStore(client, KEYS, "theirs", timing, 4)
        won = await ours.acquire([0])
        other = await theirs.acquire([1])
        written = await save_sessions(
            client,
            KEYS,
            4,
            [
                (0, S1, lease_value("ours", won[0])),
                (1, S1, lease_value("ours", 99)),  # the lease of 1 is not ours
                (2, S1, lease_value("ours", 1)),  # nobody holds 2
            ],
            ttl=60.0,
        )
        assert written == {0: True, 1: False, 2: False}
        assert await load_sessions(client, KEYS, 4, range(4)) == {0: S1}
        assert 0 < await client.pttl(KEYS.session(4, 0)) <= 60_000
        # A process that lost the lease cannot overwrite the new owner's session.
        await ours.release(won)
        won_again = await theirs.acquire([0])
        newer = S1.with_sequence(50)
        await save_sessions(client, KEYS, 4, [(0, newer, lease_value("theirs", won_again[0]))])
        stale = await save_sessions(client, KEYS, 4, [(0, S1, lease_value("ours", won[0]))])
        assert stale == {0: False}
        assert await load_sessions(client, KEYS, 4, [0]) == {0: newer}
        assert other
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_stop_closes_with_4000_saves_the_last_sequence_and_releases(
    redis_url: str,
) -> None:
    token = "session-token"
    async with FakeGateway(token=token, shards=2, max_concurrency=2, event_rate=50.0) as fake:
        first = GatewayProcess(
            Gateway(token, api_base=fake.api_base),
            redis_url,
            intents=513,
            shards="0-1/2",
            timing=LeaseTiming(ttl=2.0),
            save_interval=60.0,  # only the final save: it must carry the last sequence
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            with anyio.fail_after(10):
                while first.cluster is None or len(first.cluster.shards) < 2:
                    await anyio.sleep(0.02)
                shards = list(first.cluster.shards.values())
                while any(s.state is not ShardState.READY or (s.seq or 0) < 10 for s in shards):
                    await anyio.sleep(0.02)
            first.stop()
        assert [conn.close_code for conn in fake.connections] == [4000, 4000]
        client = aioredis.Redis.from_url(redis_url)
        try:
            saved = await load_sessions(client, KEYS, 2, [0, 1])
            assert {i: s.sequence for i, s in saved.items()} == {s.id: s.seq for s in shards}
            assert await client.keys(KEYS.lease(2, "*")) == []  # type: ignore[arg-type]
            assert await client.keys(KEYS.process("*")) == []
        finally:
            await client.aclose()
        second = GatewayProcess(
            Gateway(token, api_base=fake.api_base),
            redis_url,
            intents=513,
            count=2,
            shard_count=2,
            timing=LeaseTiming(ttl=2.0),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(second.run)
            with anyio.fail_after(10):
                while len(fake.connections) < 4 or not all(
                    c.resumed and c.session is not None for c in fake.connections[2:]
                ):
                    await anyio.sleep(0.02)
            second.stop()
        assert sum(len(c.payloads(2)) for c in fake.connections) == 2  # no new IDENTIFY
        assert all(c.resumed for c in fake.connections[2:])
