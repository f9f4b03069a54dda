"""Publisher to worker through a real Redis: every event once, in order per shard."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from gateway_redis.streams import EventPublisher, Layout
from gateway_redis.worker import Deduplicator, StreamEvent, Worker, unpack_meta
from gateway_testing import FakeGateway
from gateway_testing.corpus import everyday_events, guild_ids_for_shard

from ._publishing import KEYS, TOKEN, anyio_backend, publishing_cluster, until
from .conftest import start_redis, stop_redis

__all__ = ["anyio_backend"]  # the fixture, imported to apply here

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("layout", "keep_raw", "per_entry"),
    [
        ("single", False, 1),
        ("per-event", False, 1),
        ("single", True, 1),
        ("per-event", True, 1),
        ("single", True, 7),  # entries of up to 7 events
        ("per-event", False, 7),
    ],
)
async def test_every_dispatch_reaches_a_worker_once_in_order(
    redis_url: str, layout: Layout, keep_raw: bool, per_entry: int
) -> None:
    names = ["MESSAGE_CREATE", "TYPING_START", "MESSAGE_REACTION_ADD"]
    guilds = [g for s in (0, 1) for g in guild_ids_for_shard(s, 2, 2)]
    events = [e for e in everyday_events(seed=1, count=600, guild_ids=guilds) if e[0] in names]
    worker = Worker(redis_url, KEYS, layout=layout, events=names, start="0", dedupe=Deduplicator())
    await worker.create_groups()
    publisher = EventPublisher(
        redis_url, KEYS, layout=layout, batch_size=50, events_per_entry=per_entry
    )
    got: list[StreamEvent] = []
    async with (
        FakeGateway(token=TOKEN, shards=2, identify_window=0.05) as fake,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(worker.run, got.append)
        async with publishing_cluster(fake, publisher, 2, keep_raw=keep_raw) as cluster:
            for name, data in events:
                await fake.dispatch(name, data)
            sent = {
                c.session.shard[0]: [(p.t, p.s) for p in c.dispatches() if p.t in names]
                for c in fake.connections
                if c.session is not None
            }
            sent_data = {
                (c.session.shard[0], p.s): p.d
                for c in fake.connections
                if c.session is not None
                for p in c.dispatches()
            }
            total = sum(len(v) for v in sent.values())
            assert total == len(events)
            await until(lambda: len(got) >= total)
            sessions = {s: sh.session.session_id for s, sh in cluster.shards.items() if sh.session}
        worker.stop()
    await worker.aclose()
    await publisher.aclose()
    assert len(got) == total  # once each (a duplicate would be handed on as well)
    for shard_id, expected in sent.items():
        mine = [e for e in got if e.shard_id == shard_id]
        if layout == "single":
            assert [(e.name, e.sequence) for e in mine] == expected
        else:  # per-event streams: in order within each name
            for name in names:
                assert [e.sequence for e in mine if e.name == name] == [
                    s for n, s in expected if n == name
                ]
        assert {e.session_id for e in mine} == {sessions[shard_id]}
    streams = {e.stream for e in got}
    if layout == "single":
        assert streams == {KEYS.events}
    else:
        assert streams == {KEYS.events_named(n) for n in names}
    assert all(e.data == sent_data[e.shard_id, e.sequence] for e in got)
    assert publisher.dropped == 0
    assert worker.handled == total
    assert worker.malformed == 0
    # With keep_raw, entries hold the payloads as received (no encoding at the gateway).
    client = aioredis.Redis.from_url(redis_url)
    try:
        stream = KEYS.events if layout == "single" else KEYS.events_named(names[0])
        entries: Any = await client.xrange(stream)
    finally:
        await client.aclose()
    if per_entry == 1:
        assert {field for _, fields in entries for field in fields} == {
            b"meta",
            b"payload" if keep_raw else b"data",
        }
    else:  # packed: entries of at most per_entry events
        assert {field for _, fields in entries for field in fields} == {b"metas", b"payloads"}
        sizes = [len(json.loads(fields[b"metas"])["name"]) for _, fields in entries]
        assert max(sizes) <= per_entry
        assert sum(sizes) >= len([e for e in got if e.stream == stream])  # + names not read


@pytest.mark.parametrize(("layout", "per_entry"), [("single", 1), ("per-event", 1), ("single", 3)])
async def test_streams_stay_bounded_by_max_len(
    redis_url: str, layout: Layout, per_entry: int
) -> None:
    # Only each stream's last XADD of a batch trims: every stream is bounded all the same
    # (max_len counts entries, however many events each packs).
    publisher = EventPublisher(
        redis_url, KEYS, max_len=100, batch_size=200, layout=layout, events_per_entry=per_entry
    )
    names = ["TYPING_START", "MESSAGE_CREATE"] if layout == "per-event" else ["TYPING_START"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(publisher.run)
        for seq in range(1, 2001):
            publisher.publish(names[seq % len(names)], 0, "s", seq, {"n": seq})
        with anyio.fail_after(10):
            await publisher.drain()
        tg.cancel_scope.cancel()
    await publisher.aclose()
    client = aioredis.Redis.from_url(redis_url)
    streams = [KEYS.events] if layout == "single" else [KEYS.events_named(n) for n in names]
    try:
        lengths = [await client.xlen(stream) for stream in streams]
        last: list[Any] = [await client.xrevrange(stream, count=1) for stream in streams]
    finally:
        await client.aclose()
    assert publisher.published == 2000
    assert all(100 <= length < 400 for length in lengths)  # ~ trims whole nodes: a little above
    if per_entry == 1:
        assert max(unpack_meta(entries[0][1][b"meta"])[3] or 0 for entries in last) == 2000
    else:
        assert json.loads(last[0][0][1][b"metas"])["seq"][-1] == 2000


async def test_unencodable_data_is_dropped_and_counted(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = EventPublisher(redis_url, KEYS)
    async with anyio.create_task_group() as tg:
        tg.start_soon(publisher.run)
        publisher.publish("WEIRD", 0, "s", 1, {1j: "complex key"})
        publisher.publish("FINE", 0, "s", 2, {})
        with anyio.fail_after(10):
            await publisher.drain()
        tg.cancel_scope.cancel()
    await publisher.aclose()
    assert (publisher.published, publisher.dropped) == (1, 1)
    assert any(r.levelno == logging.ERROR and "WEIRD" in r.getMessage() for r in caplog.records)


async def test_redis_outage_keeps_shards_connected_and_publishing_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Redis of its own: this test stops it and starts it again on the same port.
    server = start_redis()
    port = server.port
    guilds = [g for s in (0, 1) for g in guild_ids_for_shard(s, 2, 2)]
    events = everyday_events(seed=2, count=300, guild_ids=guilds)
    publisher = EventPublisher(
        server.url, KEYS, max_queue=50, batch_size=20, backoff_base=0.05, backoff_cap=0.2
    )
    try:
        async with (
            FakeGateway(
                token=TOKEN, shards=2, identify_window=0.05, heartbeat_interval=0.5
            ) as fake,
            publishing_cluster(fake, publisher, 2) as cluster,
        ):
            for name, data in events[:50]:
                await fake.dispatch(name, data)
            sent = sum(len(c.dispatches()) for c in fake.connections)  # READY, GUILD_CREATEs
            await until(lambda: publisher.published >= sent)
            before = publisher.published

            await anyio.to_thread.run_sync(stop_redis, server)
            for name, data in events[50:250]:  # 200 events over ~2 s; 50 fit in the queue
                await fake.dispatch(name, data)
                await anyio.sleep(0.01)
            await until(lambda: publisher.failures >= 3)
            assert not publisher.connected
            assert publisher.dropped > 0
            assert publisher.queued <= publisher.max_queue

            server = await anyio.to_thread.run_sync(start_redis, port)
            for name, data in events[250:]:
                await fake.dispatch(name, data)
            await until(lambda: publisher.queued == 0 and publisher.connected)
            with anyio.fail_after(10):
                await publisher.drain()
            await publisher.aclose()

            # The shards never noticed: one connection each, no reconnect, READY.
            assert len(fake.connections) == 2
            for shard in cluster.shards.values():
                assert shard.counters.reconnects == {}
                assert shard.counters.connections == 1
                assert shard.state.value == "ready"
            # ... and kept heartbeating through the outage (0.5 s interval).
            assert all(len(c.heartbeats) >= 3 for c in fake.connections)
            sent = sum(len(c.dispatches()) for c in fake.connections)
            last = {
                c.session.shard[0]: c.dispatches()[-1].s
                for c in fake.connections
                if c.session is not None
            }
        # Everything the cluster received was published or dropped (counted), no more.
        assert publisher.published + publisher.dropped == sent
        assert publisher.published - before <= 50 + 20 + 50  # queue + batch in flight + after
        client = aioredis.Redis.from_url(server.url)
        try:
            entries: Any = await client.xrange(KEYS.events)
        finally:
            await client.aclose()
        # The newest events survived the outage (drop-oldest), up to the last one.
        metas = [unpack_meta(f[b"meta"]) for _, f in entries]
        newest = {shard: max(m[3] or 0 for m in metas if m[1] == shard) for shard in last}
        assert newest == last
        assert any("publishing to Redis failed" in r.getMessage() for r in caplog.records)
    finally:
        stop_redis(server)
