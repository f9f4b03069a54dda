"""Gateway processes on leases: kill -9 takeover, rolling restart, fencing, Redis outages.

The subprocess tests run ``spectacles-gateway run`` against a fake gateway in this
process (its thread runner) and a real Redis; the in-process ones run two
``GatewayProcess`` objects on one event loop, one of them reaching Redis through a
proxy the test can cut (a network partition).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
import redis

from gateway_anyio import Gateway, ShardState
from gateway_redis._keys import Keys
from gateway_redis.leases import LeaseTiming
from gateway_redis.process import GatewayProcess
from gateway_testing import FakeGateway, FakeOptionsDict

from ._gateways import (
    TOKEN,
    assert_every_event_arrived,
    assert_every_event_published,
    gateways,
    identifies,
    printed_up_to,
    published_up_to,
    resumes_by_shard,
    session_of,
    wait_until,
)
from .conftest import RedisServer, start_redis, stop_redis

KEYS = Keys.for_token(TOKEN)
FAKE: FakeOptionsDict = {"token": TOKEN, "shards": 2, "max_concurrency": 2, "event_rate": 40.0}


def sessions_saved(client: redis.Redis, count: int = 2) -> bool:
    return all(client.exists(KEYS.session(count, i)) for i in range(count))


# -- real processes ---------------------------------------------------------------------


def test_kill_9_the_shards_are_taken_over_resumed_and_no_event_is_lost(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    with FakeGateway(**FAKE).run_in_thread() as fake, gateways(tmp_path) as start:
        first = start("first", redis_url, fake.api_base, "--count", "2", "--shard-count", "2")
        wait_until(lambda: first.saw(0, "READY") and first.saw(1, "READY"), what="READY")
        spare = start("spare", redis_url, fake.api_base, "--count", "2", "--shard-count", "2")
        wait_until(lambda: len(client.keys(KEYS.process("*"))) == 2, what="both processes")
        wait_until(lambda: sessions_saved(client), what="saved sessions")
        wait_until(lambda: len(first.seqs(0)) > 20, what="events streaming")
        first.process.kill()  # SIGKILL: no close, no final save, no release
        first.process.wait(timeout=10)
        wait_until(
            lambda: spare.saw(0, "RESUMED") and spare.saw(1, "RESUMED"),
            what="the takeover's RESUMED",
        )
        assert identifies(fake) == 2  # the first process's, none for the takeover
        assert sorted(resumes_by_shard(fake)) == [0, 1]
        for shard_id in (0, 1):
            last = session_of(fake, shard_id)
            wait_until(printed_up_to(spare, shard_id, last), what="the replay")
            assert_every_event_arrived(first, spare, shard_id, last)
            # What a worker reads: every event at least once, in order after dedupe.
            wait_until(published_up_to(client, KEYS, shard_id, last), what="publishing")
            assert_every_event_published(client, KEYS, shard_id, last)
        # Every connection after the first process's two resumed.
        assert all(conn.connection.resumed for conn in fake.connections[2:])
    client.close()


def test_a_rolling_restart_costs_no_identify_and_loses_no_event(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    with FakeGateway(**FAKE).run_in_thread() as fake, gateways(tmp_path) as start:
        # A long TTL: this test needs no expiry, and a loaded machine must not fence.
        old = start("old", redis_url, fake.api_base, "--shards", "0-1/2", ttl=6.0)
        wait_until(lambda: old.saw(0, "READY") and old.saw(1, "READY"), what="READY")
        wait_until(lambda: len(old.seqs(1)) > 10, what="events streaming")
        old.process.send_signal(signal.SIGTERM)
        assert old.process.wait(timeout=15) == 0, old.stderr()
        # Closed resumably (never 1000/1001), leases released, sessions saved.
        assert [conn.close_code for conn in fake.connections] == [4000, 4000]
        assert client.keys(KEYS.lease(2, "*")) == []  # type: ignore[arg-type]
        assert sessions_saved(client)
        new = start("new", redis_url, fake.api_base, "--shards", "0-1/2", ttl=6.0)
        wait_until(lambda: new.saw(0, "RESUMED") and new.saw(1, "RESUMED"), what="RESUMED")
        assert identifies(fake) == 2
        for shard_id in (0, 1):
            last = session_of(fake, shard_id)
            wait_until(printed_up_to(new, shard_id, last), what="the replay")
            assert_every_event_arrived(old, new, shard_id, last)
            wait_until(published_up_to(client, KEYS, shard_id, last), what="publishing")
            assert_every_event_published(client, KEYS, shard_id, last)
    client.close()


# -- in-process: fencing and Redis outages ----------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


class Partition:
    """A TCP proxy to Redis that the test can cut: every connection through it ends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = False
        self._scopes: list[anyio.CancelScope] = []

    async def serve(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        await listener.serve(self._forward)

    async def _forward(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if self.cut:
                return
            async with await anyio.connect_tcp("127.0.0.1", self.port) as upstream:
                with anyio.CancelScope() as scope:
                    self._scopes.append(scope)
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._pump, client, upstream)
                        await self._pump(upstream, client)
                        tg.cancel_scope.cancel()

    @staticmethod
    async def _pump(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
        async for data in source:
            await sink.send(data)

    def cut_off(self) -> None:
        self.cut = True
        for scope in self._scopes:
            scope.cancel()


@asynccontextmanager
async def running(process: GatewayProcess) -> AsyncIterator[GatewayProcess]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(process.run)
        try:
            yield process
        finally:
            process.stop()


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await anyio.sleep(0.02)


def new_process(
    fake: FakeGateway, redis_url: str, ttl: float = 2.0, owner: str | None = None
) -> GatewayProcess:
    return GatewayProcess(
        Gateway(TOKEN, api_base=fake.api_base),
        redis_url,
        intents=513,
        count=2,
        shard_count=2,
        timing=LeaseTiming(ttl=ttl),
        save_interval=0.2,
        owner=owner,
    )


def all_ready(process: GatewayProcess) -> bool:
    cluster = process.cluster
    return (
        cluster is not None
        and len(cluster.shards) == 2
        and all(s.state is ShardState.READY for s in cluster.shards.values())
    )


@pytest.mark.anyio
async def test_a_partitioned_process_stops_its_shards_before_another_starts_them(
    redis_url: str, redis_server: RedisServer
) -> None:
    partition = Partition(redis_server.port)
    async with (
        FakeGateway(**FAKE) as fake,
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(partition.serve, listener)
        proxied = f"redis://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}/0"
        cut = new_process(fake, proxied, owner="cut")
        other = new_process(fake, redis_url, owner="other")
        async with running(cut):
            await wait_for(lambda: all_ready(cut))
            client = redis.Redis.from_url(redis_url)
            await wait_for(lambda: sessions_saved(client))
            client.close()
            async with running(other):  # spare capacity, nothing free yet
                partition.cut_off()  # `cut` can no longer renew; `other` waits for the expiry
                await wait_for(lambda: all_ready(other))
                assert cut.fenced == 2
                assert cut.owned == frozenset()
                old = {c.payloads(2)[0]["shard"][0]: c for c in fake.connections[:2]}
                for shard_id, before in old.items():
                    resumes = [
                        p.time
                        for c in fake.connections[2:]
                        for p in c.sent
                        if p.op == 6 and fake.sessions[p.d["session_id"]].shard[0] == shard_id
                    ]
                    # The fenced connection was gone before the takeover's RESUME arrived.
                    assert resumes
                    assert before.closed_at is not None
                    assert before.closed_at < min(resumes)
                assert sum(len(c.payloads(2)) for c in fake.connections) == 2
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_redis_restarted_the_shards_stay_connected_and_the_leases_come_back(
    tmp_path: Path,
) -> None:
    server = start_redis()
    try:
        async with FakeGateway(**FAKE) as fake:
            process = new_process(fake, server.url, ttl=5.0)
            async with running(process):
                await wait_for(lambda: all_ready(process))
                client = redis.Redis.from_url(server.url)
                await wait_for(lambda: sessions_saved(client))
                stop_redis(server)  # a restart without persistence: every key is gone
                await wait_for(lambda: not process.redis_ok)
                await anyio.sleep(1.0)  # an outage shorter than the lease's stop time
                server = start_redis(server.port)
                await wait_for(lambda: process.restored == 2)
                await wait_for(lambda: sessions_saved(client))
                owners = client.mget([KEYS.lease(2, 0), KEYS.lease(2, 1)])
                assert all(
                    isinstance(o, bytes) and o.decode().startswith(process.owner) for o in owners
                )
                client.close()
                assert process.fenced == 0
                assert len(fake.connections) == 2  # never reconnected
                assert all(not conn.closed for conn in fake.connections)
    finally:
        stop_redis(server)


@pytest.mark.anyio
async def test_a_lease_another_owner_holds_stops_the_shard_at_the_next_renewal(
    redis_url: str,
) -> None:
    async with FakeGateway(**FAKE) as fake:
        process = new_process(fake, redis_url)
        async with running(process):
            await wait_for(lambda: all_ready(process))
            client = redis.Redis.from_url(redis_url)
            client.set(KEYS.lease(2, 0), "intruder|999", px=60_000)  # a split brain
            await wait_for(lambda: process.owned == {1})
            await wait_for(lambda: fake.connections[0].closed)
            assert process.fenced == 1
            cluster = process.cluster
            assert cluster is not None
            # The fake sees the close a moment before the cluster forgets the shard.
            await wait_for(lambda: set(cluster.shards) == {1})
            assert client.get(KEYS.lease(2, 0)) == b"intruder|999"  # left to its owner
            client.close()
            [closed] = [c for c in fake.connections if c.closed]
            assert closed.close_code == 4000
            assert closed.payloads(2)[0]["shard"] == [0, 2]


# -- the command line -------------------------------------------------------------------------


def test_run_options_are_validated_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway_cli.args import OFFLINE_TOKEN, parse_args
    from gateway_cli.redis_run import RunOptions

    fake = ["--api-base", "http://127.0.0.1:8765/api/v10"]
    options = parse_args(["run", "--redis", "redis://h:1/0", "--shards", "0-3/8", *fake], {})
    assert isinstance(options, RunOptions)
    assert (options.token, options.shards, options.count) == (OFFLINE_TOKEN, "0-3/8", None)
    assert OFFLINE_TOKEN not in repr(options)
    options = parse_args(["run", "--redis", "redis://h", "--count", "2"], {"DISCORD_TOKEN": "t"})
    assert isinstance(options, RunOptions)
    assert (options.token, options.count, options.shard_count) == ("t", 2, None)
    bad = [
        ["run", "--redis", "redis://h", "--count", "2"],  # no token at all
        ["run", "--redis", "http://h", "--count", "2", *fake],
        ["run", "--redis", "redis://h", "--shards", "0-3/8", "--shard-count", "8", *fake],
        ["run", "--redis", "redis://h", "--shards", "3-0/8", *fake],
        ["run", "--redis", "redis://h", "--shards", "0-3/8", "--count", "2", *fake],
        ["run", "--redis", "redis://h", "--count", "2", "--lease-ttl", "0", *fake],
    ]
    for argv in bad:
        with pytest.raises(SystemExit) as exit_info:
            parse_args(argv, {})
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1, argv
