"""Shared pieces of the streams tests: a cluster on the fake that publishes to Redis."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from gateway_anyio import Cluster, Gateway
from gateway_redis._keys import Keys
from gateway_redis._resp import EventReplyReader
from gateway_redis.streams import EventPublisher, publish_cluster
from gateway_redis.worker import StreamEvent, Worker
from gateway_testing import FakeGateway

TOKEN = "streams-token.abcdef.0123456789"
KEYS = Keys.for_token(TOKEN)


@asynccontextmanager
async def publishing_cluster(
    fake: FakeGateway,
    publisher: EventPublisher,
    shards: int,
    *,
    also: Callable[[Cluster, TaskGroup], Any] | None = None,
    **options: Any,
) -> AsyncIterator[Cluster]:
    """A cluster of ``shards`` on ``fake``, publishing through ``publisher``, all READY.

    ``options``: more cluster (shard) options, e.g. ``keep_raw=True``.
    """
    async with (
        Cluster(
            Gateway(TOKEN, api_base=fake.api_base),
            intents=513,
            identify_window=0.1,
            rng=random.Random(0),
            **options,
        ) as cluster,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(publish_cluster, cluster, publisher)
        if also is not None:
            also(cluster, tg)
        async with cluster.events("READY") as ready:
            await cluster.spawn(shards)
            with anyio.fail_after(10):
                for _ in range(shards):
                    await ready.__anext__()
        yield cluster
        await cluster.aclose()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``predicate()`` holds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def collect(worker: Worker, count: int) -> list[StreamEvent]:
    """Run ``worker`` until its handler got ``count`` events (bounded), stop it; return them."""
    got: list[StreamEvent] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run, got.append)
        await until(lambda: len(got) == count)
        worker.stop()
    return got


def parse_event_reply(data: bytes, cuts: list[int]) -> Any:
    """The worker's reader (``EventReplyReader``) over ``data`` fed in pieces cut at ``cuts``.

    Checks that nothing was left over after the reply.
    """
    reader = EventReplyReader()
    walk = reader.read_groups()
    next(walk)
    edges = [0, *sorted(cuts), len(data)]
    try:
        for start, end in itertools.pairwise(edges):
            reader.feed(data[start:end])
            next(walk)
    except StopIteration as done:
        assert reader.rest() == b""
        return done.value
    raise AssertionError("the reply was not complete")


@pytest.fixture
def anyio_backend() -> str:
    """redis.asyncio runs on asyncio only."""
    return "asyncio"
