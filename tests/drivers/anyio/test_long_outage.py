"""Outages and session ends on trio's virtual clock: minutes of backoff in milliseconds.

``MockClock(autojump_threshold=0)`` jumps the clock whenever every task waits, so
the fake's 30-second outage, the reconnect backoff and the identify windows cost
no real time; connects to the fake fail at once (it resets them), so nothing
waits on the kernel meanwhile.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trio.testing

from gateway_anyio import Gateway, GatewayEvent, Shard, ShardState
from gateway_proto.events import CloseCause
from gateway_testing import FakeGateway

pytestmark = pytest.mark.anyio

TOKEN = "outage-token"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Trio, on a virtual clock."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@asynccontextmanager
async def running(fake: FakeGateway, seen: list[GatewayEvent]) -> AsyncIterator[Shard]:
    shard = Shard(
        Gateway(TOKEN, api_base=fake.api_base),
        0,
        intents=513,
        url=fake.gateway_url,
        rng=random.Random(0),
    )
    shard.on("*", seen.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(shard.connect)
        try:
            yield shard
        finally:
            with anyio.fail_after(60):
                await shard.disconnect()


async def until(predicate: Any, timeout: float = 600.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def messages(seen: list[GatewayEvent]) -> list[int]:
    return [e.data["n"] for e in seen if e.name == "MESSAGE_CREATE"]


async def send_messages(fake: FakeGateway, numbers: range) -> None:
    for n in numbers:
        await fake.dispatch("MESSAGE_CREATE", {"n": n}, shard_id=0)


async def test_a_30_second_outage_resumes_and_loses_nothing() -> None:
    seen: list[GatewayEvent] = []
    async with (
        FakeGateway(token=TOKEN, heartbeat_interval=10.0) as fake,
        running(fake, seen) as shard,
    ):
        await until(lambda: shard.state is ShardState.READY)
        await send_messages(fake, range(3))
        await until(lambda: len(messages(seen)) == 3)
        async with fake.unreachable():
            start = anyio.current_time()
            await send_messages(fake, range(3, 6))  # kept by the session for a resume
            await anyio.sleep(30.0)
            assert anyio.current_time() - start >= 30.0
            failed = shard.counters.reconnects.get("connect_failed", 0)
            assert failed >= 4  # resume URL and base URL, in turns, several times
        await until(lambda: any(e.name == "RESUMED" for e in seen))
        await send_messages(fake, range(6, 8))
        await until(lambda: len(messages(seen)) == 8)
        assert messages(seen) == list(range(8))
        sequences = [e.sequence for e in seen if e.sequence is not None]
        assert sequences == sorted(set(sequences))
        assert (shard.counters.identifies, shard.counters.resumes) == (1, 1)
        assert len(fake.connections) == 2  # the reset attempts never became connections
        assert fake.connections[1].resumed


async def test_a_server_without_resume_support_gets_a_new_session() -> None:
    seen: list[GatewayEvent] = []
    async with (
        FakeGateway(token=TOKEN, heartbeat_interval=10.0, resume_unsupported=True) as fake,
        running(fake, seen) as shard,
    ):
        await until(lambda: shard.state is ShardState.READY)
        await fake.connections[0].drop()
        await until(lambda: len([e for e in seen if e.name == "READY"]) == 2)
        first, second = (e.data["session_id"] for e in seen if e.name == "READY")
        assert first != second
        assert (shard.counters.identifies, shard.counters.resumes) == (2, 1)
        closes = [e.data.cause for e in seen if e.name == "close"]
        assert closes == [CloseCause.CONNECTION_LOST, CloseCause.INVALID_SESSION]
