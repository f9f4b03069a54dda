"""Issue 11's API on the anyio driver: waiting sends, cluster-wide presence, the
dispatch-only subscription and the one name for compression (against the fake)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from gateway_anyio import ANY_DISPATCH, Cluster, Gateway, GatewayEvent, Shard
from gateway_proto.commands import Activity, UpdatePresence
from gateway_proto.driver_support import IdentifyWait
from gateway_proto.errors import CommandNotSentError, InvalidCommandError, LocalProtocolError
from gateway_testing import FakeGateway

pytestmark = pytest.mark.anyio

TOKEN = "api-token"
PRESENCE = UpdatePresence(status="idle", activities=[Activity(name="tests", type=0)])
TOO_BIG = UpdatePresence(activities=[Activity(name="x" * 100, type=0)] * 50)


def new_shard(fake: FakeGateway, **options: object) -> Shard:
    gateway = Gateway(TOKEN, api_base=fake.api_base)
    return Shard(gateway, 0, intents=513, rng=random.Random(0), **options)  # type: ignore[arg-type]


@asynccontextmanager
async def connected(shard: Shard) -> AsyncIterator[Shard]:
    """Run ``shard`` until the block ends; enter once its session is live."""
    async with anyio.create_task_group() as tg:
        async with shard.events("connect") as stream:
            tg.start_soon(shard.connect)
            with anyio.fail_after(10):
                await stream.__anext__()
        try:
            yield shard
        finally:
            with anyio.fail_after(10):
                await shard.disconnect()


async def test_send_and_wait_returns_once_the_command_is_written() -> None:
    async with FakeGateway(token=TOKEN) as fake, connected(new_shard(fake)) as shard:
        conn = await fake.next_connection()
        with anyio.fail_after(10):
            await shard.update_presence(PRESENCE)
            # Written when it returned: the fake reads it without more sends.
            payload = await conn.wait_for_op(3)
        assert payload.d["status"] == "idle"


class HeldLimiter:
    """An identify limiter that never grants: the session never goes live."""

    def __init__(self) -> None:
        self.asked = anyio.Event()

    async def acquire(
        self, shard_id: int, *, on_wait: Callable[[IdentifyWait], None] | None = None
    ) -> None:
        self.asked.set()
        await anyio.sleep_forever()


async def test_send_and_wait_raises_the_typed_error_when_the_shard_stops_first() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        limiter = HeldLimiter()
        shard = new_shard(fake, identify_limiter=limiter)
        outcome: list[BaseException] = []

        async def waiting() -> None:
            try:
                await shard.send_and_wait(PRESENCE)  # queued until READY, which never comes
            except CommandNotSentError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(shard.connect)
            with anyio.fail_after(10):
                await limiter.asked.wait()
            tg.start_soon(waiting)
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(10):
                await shard.disconnect()
        assert len(outcome) == 1
        assert isinstance(outcome[0], CommandNotSentError)
        assert outcome[0].command == PRESENCE
        assert isinstance(outcome[0], LocalProtocolError)


async def test_cluster_update_presence_reaches_every_shard_in_one_call() -> None:
    async with FakeGateway(token=TOKEN, shards=2, identify_window=0.05) as fake:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        async with Cluster(gateway, intents=513, identify_window=0.05) as cluster:
            async with cluster.events("connect") as stream:
                await cluster.spawn(2)
                with anyio.fail_after(10):
                    await stream.__anext__()
                    await stream.__anext__()
            with anyio.fail_after(10):
                assert await cluster.update_presence(PRESENCE) == [0, 1]
                for conn in fake.connections:
                    await conn.wait_for_op(3)  # written: the fake reads it in its own time
            assert [len(c.payloads(3)) for c in fake.connections] == [1, 1]
            assert sorted(await cluster.send(PRESENCE)) == [0, 1]
            # Over 4096 bytes encoded: refused by each connection, raised as itself.
            with pytest.raises(InvalidCommandError):
                await cluster.send_and_wait(TOO_BIG)
            with pytest.raises(InvalidCommandError):
                await cluster.send(TOO_BIG)


async def test_a_dispatch_subscription_gets_each_dispatch_once_by_name() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        shard = new_shard(fake)
        seen: list[str] = []
        everything: list[str] = []

        @shard.on(ANY_DISPATCH)
        def on_dispatch(event: GatewayEvent) -> None:
            seen.append(event.name)

        @shard.on("*")
        def on_any(event: GatewayEvent) -> None:
            everything.append(event.name)

        async with connected(shard), shard.events(ANY_DISPATCH) as stream:
            session = await (await fake.next_connection()).wait_identified()
            await fake.dispatch("MESSAGE_CREATE", {"guild_id": session.guild_ids[0]})
            with anyio.fail_after(10):
                async for event in stream:
                    if event.name == "MESSAGE_CREATE":
                        break
                    assert event.name in ("READY", "GUILD_CREATE")
        # Handlers drained when the shard stopped.
        assert seen.count("MESSAGE_CREATE") == 1
        assert set(seen) == {"READY", "GUILD_CREATE", "MESSAGE_CREATE"}
        # "*" sees lifecycle events and, with a listener for it, "receive" copies.
        assert "state" in everything


async def test_compression_is_the_one_name_and_compress_still_works_with_a_warning() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        assert new_shard(fake, compression="none")._runner.config.compression is None
        with pytest.warns(DeprecationWarning, match="compression="):
            shard = new_shard(fake, compress="zstd-stream")
        assert shard._runner.config.compression == "zstd-stream"
        with pytest.raises(ValueError, match="compression must be"):
            new_shard(fake, compression="gzip")
