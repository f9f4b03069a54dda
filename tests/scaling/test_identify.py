"""The identify limiters shared through Redis: the scripts, the drivers' clusters, N processes.

Against a real ``redis-server`` (tests/scaling/conftest.py) and the fake gateway.
The anyio-side limiter runs on asyncio only (``redis.asyncio``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

import gateway_anyio
import gateway_sync
from gateway_proto.driver_support import IdentifyWait
from gateway_proto.identify import SessionStartLimit
from gateway_redis import RedisIdentifyLimiter, SyncRedisIdentifyLimiter
from gateway_redis._identify_core import IdentifyCoordinator, RedisCall
from gateway_redis._keys import Keys
from gateway_testing import FakeGateway, FakeOptionsDict

from .conftest import start_redis, stop_redis

TOKEN = "test-token.redis-identify.0123456789"
CHILD = Path(__file__).with_name("_identify_child.py")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def anyio_backend() -> str:
    """``redis.asyncio`` runs on asyncio only."""
    return "asyncio"


def budget(remaining: int, *, total: int = 1000, reset_after: float = 3600.0, k: int = 1) -> Any:
    """A ``session_start_limit`` as ``GET /gateway/bot`` gives it (seconds)."""
    return SessionStartLimit(
        total=total, remaining=remaining, reset_after=reset_after, max_concurrency=k
    )


@asynccontextmanager
async def aclient(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A ``redis.asyncio`` client, one per simulated process."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def announced_wait(limiter: RedisIdentifyLimiter, shard_id: int) -> IdentifyWait:
    """Start an ``acquire`` that must wait; return what it announced, then cancel it."""
    waits: list[IdentifyWait] = []
    said = anyio.Event()

    def on_wait(wait: IdentifyWait) -> None:
        waits.append(wait)
        said.set()

    async def ask() -> None:
        await limiter.acquire(shard_id, on_wait=on_wait)
        raise AssertionError(f"shard {shard_id} was granted, but its bucket is held")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await said.wait()
            tg.cancel_scope.cancel()
    return waits[0]


# -- the script, through the asyncio limiter ------------------------------------------


@pytest.mark.anyio
async def test_one_grant_per_bucket_then_a_wait(redis_url: str) -> None:
    async with aclient(redis_url) as client:
        limiter = RedisIdentifyLimiter(client, TOKEN, max_concurrency=2, window=0.2, margin=0.05)
        waits: list[IdentifyWait] = []
        await limiter.acquire(0, on_wait=waits.append)
        await limiter.acquire(1, on_wait=waits.append)
        assert waits == []  # two buckets: both granted at once
        with anyio.fail_after(5):
            await limiter.acquire(2, on_wait=waits.append)  # bucket 0 again: after its window
        assert [(w.bucket, w.waits_for_reset) for w in waits] == [(0, False)]
        assert waits[0].delay > 0
        assert [(g.shard_id, g.bucket) for g in limiter.history] == [(0, 0), (1, 1), (2, 0)]
        keys = Keys.for_token(TOKEN)
        assert 0 < await client.pttl(keys.identify_bucket(0)) <= 250
        names = [name for name in await client.keys("*") if isinstance(name, bytes)]
        assert names
        assert all(name.startswith(keys.prefix.encode()) for name in names)
        assert all(TOKEN.encode() not in name for name in names)  # only the token's hash
        assert await client.get(keys.session_budget) is None  # no budget known: none kept


@pytest.mark.anyio
async def test_local_waiters_of_a_bucket_go_lowest_shard_id_first(redis_url: str) -> None:
    async with aclient(redis_url) as client:
        limiter = RedisIdentifyLimiter(client, TOKEN, window=0.15, margin=0.0)
        await limiter.acquire(0)  # the bucket is held: the next ones queue
        order: list[int] = []

        async def ask(shard_id: int) -> None:
            await limiter.acquire(shard_id)
            order.append(shard_id)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for shard_id in (5, 3, 1):  # arriving highest first
                    tg.start_soon(ask, shard_id)
        assert order == [1, 3, 5]


@pytest.mark.anyio
async def test_processes_share_buckets_and_bots_do_not(redis_url: str) -> None:
    async with aclient(redis_url) as one, aclient(redis_url) as two:
        a = RedisIdentifyLimiter(one, TOKEN, max_concurrency=2, window=30)
        b = RedisIdentifyLimiter(two, TOKEN, max_concurrency=2, window=30)
        other_bot = RedisIdentifyLimiter(two, "another-token.x.y", max_concurrency=2, window=30)
        await a.acquire(0)
        await b.acquire(1)  # the other bucket is free
        await other_bot.acquire(0)  # another token: buckets of its own
        wait = await announced_wait(b, 2)  # bucket 0 is a's, in another process
        assert (wait.bucket, wait.waits_for_reset) == (0, False)
        assert 25 < wait.delay <= 30.1


@pytest.mark.anyio
async def test_a_grant_never_followed_by_a_send_expires(redis_url: str) -> None:
    async with aclient(redis_url) as dead, aclient(redis_url) as alive:
        crashed = RedisIdentifyLimiter(dead, TOKEN, window=0.3, margin=0.0)
        await crashed.acquire(0)  # ...and its process dies before its IDENTIFY leaves
        await dead.aclose()
        survivor = RedisIdentifyLimiter(alive, TOKEN, window=0.3, margin=0.0)
        waits: list[IdentifyWait] = []
        with anyio.fail_after(5):  # not forever: the grant expires on its own
            await survivor.acquire(0, on_wait=waits.append)
        assert [(w.bucket, w.waits_for_reset) for w in waits] == [(0, False)]


@pytest.mark.anyio
async def test_identify_sent_holds_the_bucket_a_window_from_the_send(redis_url: str) -> None:
    async with aclient(redis_url) as client:
        limiter = RedisIdentifyLimiter(client, TOKEN, window=5.0, margin=0.1)
        await limiter.acquire(0)
        key = limiter.keys.identify_bucket(0)
        await client.pexpire(key, 50)  # as if the IDENTIFY left long after its grant
        limiter.identify_sent(0)
        await limiter.aclose()
        assert 5000 < await client.pttl(key) <= 5100
        await client.pexpire(key, 60_000)  # a longer hold is never shortened
        limiter.identify_sent(0)
        await limiter.aclose()
        assert await client.pttl(key) > 50_000
        await client.delete(key)  # the provisional hold ran out before the send
        limiter.identify_sent(0)
        await limiter.aclose()
        assert 5000 < await client.pttl(key) <= 5100


@pytest.mark.anyio
async def test_a_spent_budget_waits_for_its_reset(redis_url: str) -> None:
    async with aclient(redis_url) as client:
        limit = budget(2, total=3, reset_after=0.5, k=4)
        limiter = RedisIdentifyLimiter(client, TOKEN, window=0.1, margin=0.0, limit=limit)
        assert limiter.max_concurrency == 4  # from the limit
        await limiter.acquire(0)
        assert limiter.remaining == 1
        await limiter.acquire(1)
        assert limiter.remaining == 0
        key = limiter.keys.session_budget
        assert await client.get(key) == b"0"
        assert 0 < await client.pttl(key) <= 500  # expires at the reset
        waits: list[IdentifyWait] = []
        with anyio.fail_after(5):
            await limiter.acquire(2, on_wait=waits.append)  # bucket 2 is free: the budget is not
        assert [(w.bucket, w.waits_for_reset) for w in waits] == [(2, True)]
        assert waits[0].delay <= 0.5
        assert limiter.remaining is not None
        assert limiter.remaining >= 1


@pytest.mark.anyio
async def test_a_fresh_fetch_never_refills_the_shared_budget(redis_url: str) -> None:
    async with aclient(redis_url) as one, aclient(redis_url) as two:
        a = RedisIdentifyLimiter(one, TOKEN, window=30, limit=budget(5, k=8))
        await a.acquire(0)
        await a.acquire(1)
        assert a.remaining == 3
        b = RedisIdentifyLimiter(two, TOKEN, window=30)
        b.update_limit(budget(5, k=8))  # fetched before a's identifies reached Discord
        assert b.max_concurrency == 8
        await b.acquire(2)
        assert b.remaining == 2  # a's spending stands: not refilled to 5
        b.update_limit(budget(1, k=8))  # Discord counted starts Redis never saw: lower
        await b.acquire(3)
        assert b.remaining == 0
        wait = await announced_wait(a, 4)
        assert (wait.bucket, wait.waits_for_reset) == (4, True)
        assert 3500 < wait.delay <= 3600


def test_the_asyncio_limiter_says_so_on_trio(redis_url: str) -> None:
    limiter = RedisIdentifyLimiter(redis.asyncio.Redis.from_url(redis_url), TOKEN)
    with pytest.raises(RuntimeError, match="asyncio backend"):
        anyio.run(limiter.acquire, 0, backend="trio")


def test_the_budget_seed_follows_the_fetch_then_the_reset() -> None:
    # The non-I/O half: what each call asks Redis to seed (clock values passed in).
    keys = Keys.for_token(TOKEN)
    core = IdentifyCoordinator(
        keys,
        max_concurrency=1,
        window=5.0,
        margin=0.1,
        limit=budget(7, total=10, reset_after=100.0),
        now=1000.0,
        holder="host:1",
        history=10,
    )

    def seed(now: float) -> list[str | int]:
        waiter = core.add(0, None)
        call = core.next_step(waiter, now)
        core.remove(waiter)
        assert isinstance(call, RedisCall)
        assert call.keys == [keys.identify_bucket(0), keys.session_budget]
        return call.args[2:]

    assert seed(1010.0) == [2, 7, 90_000]  # fresh: seed, or lower to 7
    assert seed(1020.0) == [1, 7, 80_000]  # later calls: seed only if absent
    assert seed(1100.0) == [1, 10, 86_400_000]  # past the reset: the full total for a day
    assert core.sent_call(0).args == ["host:1:0", 5100]


@pytest.mark.anyio
async def test_no_double_grant_among_racing_processes(redis_url: str) -> None:
    # Ten "processes" (own clients, own limiters) ask for shards 0 and 1 at once.
    granted: list[int] = []
    waited: list[int] = []
    everyone = anyio.Event()

    def settle() -> None:
        if len(granted) + len(waited) == 20:
            everyone.set()

    async def ask(limiter: RedisIdentifyLimiter, shard_id: int) -> None:
        def on_wait(wait: IdentifyWait) -> None:
            waited.append(shard_id)
            settle()

        await limiter.acquire(shard_id, on_wait=on_wait)
        granted.append(shard_id)
        settle()

    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(10)]
    try:
        limiters = [RedisIdentifyLimiter(c, TOKEN, max_concurrency=2, window=30) for c in clients]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for limiter in limiters:
                    tg.start_soon(ask, limiter, 0)
                    tg.start_soon(ask, limiter, 1)
                await everyone.wait()
                tg.cancel_scope.cancel()
    finally:
        for client in clients:
            await client.aclose()
    assert sorted(granted) == [0, 1]  # one per bucket, in all
    assert sorted(waited) == [0] * 9 + [1] * 9


def test_no_double_grant_among_racing_threads(redis_url: str) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(10)]
    limiters = [SyncRedisIdentifyLimiter(c, TOKEN, max_concurrency=2, window=30) for c in clients]
    results: list[tuple[str, int]] = []
    lock = threading.Lock()
    done = threading.Semaphore(0)
    cancel = threading.Event()
    start = threading.Barrier(20)

    def ask(limiter: SyncRedisIdentifyLimiter, shard_id: int) -> None:
        def on_wait(wait: IdentifyWait) -> None:
            with lock:
                results.append(("waited", shard_id))
            done.release()

        start.wait()
        try:
            limiter.acquire(shard_id, on_wait=on_wait, cancel=cancel)
        except gateway_sync.IdentifyCancelledError:
            return
        with lock:
            results.append(("granted", shard_id))
        done.release()

    threads = [
        threading.Thread(target=ask, args=(limiter, shard_id))
        for limiter in limiters
        for shard_id in (0, 1)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in threads:
            assert done.acquire(timeout=10)
    finally:
        cancel.set()
        for thread in threads:
            thread.join(10)
        for limiter, client in zip(limiters, clients, strict=True):
            limiter.close()
            client.close()
    assert not any(thread.is_alive() for thread in threads)  # cancel ended every wait
    assert sorted(s for what, s in results if what == "granted") == [0, 1]
    assert sorted(s for what, s in results if what == "waited") == [0] * 9 + [1] * 9


def test_nothing_identifies_while_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    server = start_redis()
    port = server.port
    # No retries inside the client: each attempt fails at once, so the limiter's own show.
    client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    limiter = SyncRedisIdentifyLimiter(client, TOKEN, window=0.1)
    limiter.acquire(0)
    stop_redis(server)
    granted = threading.Event()

    def identify() -> None:
        limiter.acquire(1)
        granted.set()

    thread = threading.Thread(target=identify)
    restarted = None
    try:
        with caplog.at_level(logging.DEBUG, logger="gateway_redis.identify"):
            thread.start()
            deadline = time.monotonic() + 10
            while len(caplog.records) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(caplog.records) >= 2  # it retried, and did not identify meanwhile
            assert not granted.is_set()
            assert "unreachable" in caplog.records[0].getMessage()
            assert caplog.records[0].levelno == logging.WARNING  # the first; then quieter
            assert caplog.records[1].levelno == logging.DEBUG
            restarted = start_redis(port)
            thread.join(10)
        assert granted.is_set()  # Redis back (empty): the script is loaded again, granted
    finally:
        limiter.close()
        client.close()
        if restarted is not None:
            stop_redis(restarted)


# -- plugged into the drivers' clusters --------------------------------------------------


@pytest.mark.anyio
async def test_an_anyio_cluster_feeds_the_limiter_and_keeps_the_buckets(redis_url: str) -> None:
    async with (
        aclient(redis_url) as client,
        FakeGateway(
            token=TOKEN,
            shards=4,
            max_concurrency=2,
            identify_window=0.3,
            session_start_remaining=50,
        ) as fake,
    ):
        limiter = RedisIdentifyLimiter(client, TOKEN, window=0.3)  # max_concurrency from REST
        gateway = gateway_anyio.Gateway(TOKEN, api_base=fake.api_base)
        connected: set[int] = set()
        cluster = gateway_anyio.Cluster(gateway, intents=513, identify_limiter=limiter)
        async with cluster, cluster.events("connect") as events:
            await cluster.spawn("auto")
            with anyio.fail_after(10):
                async for event in events:
                    connected.add(event.shard_id)
                    if len(connected) == 4:
                        break
        await limiter.aclose()
        assert limiter.max_concurrency == 2
        assert sorted(g.shard_id for g in limiter.history) == [0, 1, 2, 3]
        assert await client.get(limiter.keys.session_budget) == b"46"
        assert sum(c.identify_rejected for c in fake.connections) == 0
        assert fake.session_start_remaining == 46


def test_a_sync_cluster_feeds_the_limiter_and_keeps_the_buckets(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = SyncRedisIdentifyLimiter(client, TOKEN, window=0.3)
    options: FakeOptionsDict = {
        "token": TOKEN,
        "session_start_remaining": 50,
        "shards": 4,
        "max_concurrency": 2,
        "identify_window": 0.3,
    }
    try:
        with FakeGateway(**options).run_in_thread() as gw:
            gateway = gateway_sync.Gateway(TOKEN, api_base=gw.api_base)
            cluster = gateway_sync.Cluster(gateway, intents=513, identify_limiter=limiter)
            with cluster, cluster.events("connect") as events:
                cluster.spawn("auto")
                connected = {next(events).shard_id for _ in range(4)}
            assert connected == {0, 1, 2, 3}
            assert sum(c.identify_rejected for c in gw.fake.connections) == 0
        assert limiter.max_concurrency == 2
        assert client.get(limiter.keys.session_budget) == b"46"
    finally:
        limiter.close()
        client.close()


# -- the proof: N processes, one token, one fake ------------------------------------------


def _start_child(driver: str, redis_url: str, api_base: str, window: float, ids: list[int]) -> Any:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "SPECTACLES_TEST_TOKEN": TOKEN,
    }
    argv = [sys.executable, str(CHILD), driver, redis_url, api_base, str(window), "9"]
    return subprocess.Popen(
        [*argv, *map(str, ids)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """The gateway processes of a test, killed at its end whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
    for process in started:
        process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_processes_on_one_token_never_break_the_fakes_limits(
    redis_url: str, children: list[subprocess.Popen[str]]
) -> None:
    # 3 processes (two on anyio, one on the blocking driver) x 3 shards of 9, against one
    # fake with max_concurrency 2 and a 0.5 s window, and a budget of 6 session starts.
    window, budget_left = 0.5, 6
    fake = FakeGateway(
        token=TOKEN,
        shards=9,
        max_concurrency=2,
        identify_window=window,
        session_start_remaining=budget_left,
        heartbeat_interval=20.0,
    )
    lines: list[dict[str, Any]] = []

    def collect(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(json.loads(line))

    with fake.run_in_thread() as gw:
        layout = [("anyio", [0, 1, 2]), ("sync", [3, 4, 5]), ("anyio", [6, 7, 8])]
        for driver, ids in layout:
            children.append(_start_child(driver, redis_url, gw.api_base, window, ids))
        readers = [threading.Thread(target=collect, args=(p,), daemon=True) for p in children]
        for reader in readers:
            reader.start()

        def identified() -> int:
            return sum(len(c.identifies) for c in list(fake.connections))

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting_for_reset = [x for x in list(lines) if x.get("reset")]
            if identified() >= budget_left and waiting_for_reset:
                break
            if any(p.poll() is not None for p in children):
                break
            time.sleep(0.05)
        for process in children:
            process.kill()
        for process in children:
            process.wait(10)
    for reader in readers:
        reader.join(5)
    failed = [p.stderr.read() for p in children if p.returncode not in (-9,) and p.stderr]
    assert not failed, failed

    identifies = sorted(
        (payload.time, payload.d["shard"][0])
        for conn in fake.connections
        for payload in conn.records(2)
    )
    # The budget was spent to the last start and not beyond: the rest waited for its reset.
    assert len(identifies) == budget_left
    assert not fake.session_starts_exhausted
    assert fake.session_start_remaining == 0
    assert any(x["event"] == "identify_wait" and x["reset"] for x in lines)
    assert all(x["event"] != "error" for x in lines), lines
    # Never two identifies of one bucket within a window: no op 9, and the records agree.
    assert sum(c.identify_rejected for c in fake.connections) == 0
    for bucket in (0, 1):
        times = [t for t, shard in identifies if shard % 2 == bucket]
        assert all(b - a >= window for a, b in itertools.pairwise(times)), times
    # Every process took part: each of the three ran at least one identify... or waited.
    shards_seen = {x["shard"] for x in lines} | {shard for _, shard in identifies}
    assert {s // 3 for s in shards_seen} == {0, 1, 2}


def test_the_scaling_page_runs(redis_url: str) -> None:
    # Every Python block of docs/scaling.md runs as written, against the fake and Redis.
    text = (SRC.parent / "docs" / "scaling.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert blocks
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "REDIS_URL": redis_url,
    }
    for code in blocks:
        argv = [sys.executable, "-c", code]
        run = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    assert "identifies refused by the fake: 0" in run.stdout
    assert run.stdout.count("connected") == 4
