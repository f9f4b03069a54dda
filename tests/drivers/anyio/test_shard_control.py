"""``Shard`` controls only the anyio driver has in this form (against the fake)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from gateway_anyio import Gateway, InProcessIdentifyLimiter, Shard, ShardState
from gateway_proto.commands import UpdatePresence
from gateway_proto.errors import LocalProtocolError
from gateway_testing import FakeGateway

pytestmark = pytest.mark.anyio

TOKEN = "control-token"


@asynccontextmanager
async def running(shard: Shard) -> AsyncIterator[Shard]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(shard.connect)
        try:
            yield shard
        finally:
            with anyio.fail_after(10):
                await shard.disconnect()


def new_shard(fake: FakeGateway, **options: object) -> Shard:
    gateway = Gateway(TOKEN, api_base=fake.api_base)
    return Shard(gateway, 0, intents=513, rng=random.Random(0), **options)  # type: ignore[arg-type]


async def until_ready(shard: Shard, connections: int) -> None:
    """Wait until the shard's session is live on its ``connections``-th connection."""
    with anyio.fail_after(10):
        while shard.state is not ShardState.READY or shard.counters.connections < connections:
            await anyio.sleep(0.01)


async def test_reconnect_resumes_and_reconnect_1000_identifies() -> None:
    async with FakeGateway(token=TOKEN, identify_window=0.05) as fake:
        # The re-identify waits out the limiter's window: keep it short here.
        shard = new_shard(fake, identify_limiter=InProcessIdentifyLimiter(window=0.1))
        async with running(shard):
            await until_ready(shard, 1)
            await shard.reconnect()
            await until_ready(shard, 2)
            await shard.reconnect(1000)
            await until_ready(shard, 3)
            first, second, third = fake.connections
            assert (second.resumed, third.resumed) == (True, False)
            assert (first.close_code, second.close_code) == (4000, 1000)
            assert shard.counters.reconnects == {"requested": 2}
            assert (shard.counters.identifies, shard.counters.resumes) == (2, 1)


async def test_disconnect_4000_leaves_a_session_another_shard_resumes() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        first = new_shard(fake)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.connect)
            await until_ready(first, 1)
            await first.disconnect(4000)
        assert first.state is ShardState.STOPPED
        session = first.session
        assert session is not None
        second = new_shard(fake, session=session)
        async with running(second):
            await until_ready(second, 1)
            conn = fake.connections[1]
            assert conn.resumed
            assert conn.payloads(6)[0]["session_id"] == session.session_id


async def test_send_needs_a_connection_and_goes_out_once_live() -> None:
    async with FakeGateway(token=TOKEN, heartbeat_interval=5.0) as fake:
        shard = new_shard(fake)
        with pytest.raises(LocalProtocolError, match="not connected"):
            await shard.send(UpdatePresence(status="idle"))
        async with running(shard):
            conn = await fake.next_connection()
            await conn.wait_identified()
            await shard.send(UpdatePresence(status="idle"))
            await conn.wait_for_op(3)
            assert conn.payloads(3)[0]["status"] == "idle"


async def test_events_stream_ends_when_the_shard_stops_and_counts_drops() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        shard = new_shard(fake)
        stream = shard.events("MESSAGE_CREATE", max_buffer=2)
        async with running(shard):
            await (await fake.next_connection()).wait_identified()
            for n in range(5):
                await fake.dispatch("MESSAGE_CREATE", {"content": str(n)}, shard_id=0)
            with anyio.fail_after(5):
                while shard.counters.dispatches < 5 + 4:  # READY, 3 GUILD_CREATEs, 5 messages
                    await anyio.sleep(0.01)
        got = [event.data["content"] async for event in stream]  # ends: the shard stopped
        assert got == ["3", "4"]
        assert stream.dropped == 3
        assert shard.counters.dropped_events == 3


async def test_state_changes_carry_reasons() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        shard = new_shard(fake)
        changes: list[tuple[str, str, str]] = []
        shard.on(
            "state", lambda e: changes.append((e.data.old.value, e.data.new.value, e.data.reason))
        )
        async with running(shard):
            await until_ready(shard, 1)
            await fake.connections[0].close(4000)
            await until_ready(shard, 2)
        path = [(old, new) for old, new, _ in changes]
        assert path[:3] == [
            ("idle", "connecting"),
            ("connecting", "identifying"),
            ("identifying", "ready"),
        ]
        assert ("ready", "reconnecting") in path
        assert ("connecting", "resuming") in path
        assert path[-1] == ("ready", "stopped")
        reconnecting = next(reason for old, new, reason in changes if new == "reconnecting")
        assert "4000" in reconnecting


async def test_a_dead_resume_url_falls_back_to_the_base_url() -> None:
    async with FakeGateway(token=TOKEN) as fake:
        first = new_shard(fake)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.connect)
            await until_ready(first, 1)
            await first.disconnect(4000)
        assert first.session is not None
        # Port 1 on loopback refuses connections: the resume host is "dead".
        dead = dataclasses.replace(first.session, resume_url="ws://127.0.0.1:1/")
        second = new_shard(fake, session=dead, url=fake.gateway_url)
        errors: list[BaseException] = []
        second.on("error", lambda event: errors.append(event.data))
        async with running(second):
            await until_ready(second, 1)
            assert fake.connections[1].resumed
            assert fake.connections[1].path == "/"
        assert second.counters.reconnects == {"connect_failed": 1}
        assert len(errors) == 1
        assert isinstance(errors[0], OSError)


async def test_a_cancelled_shard_keeps_the_session_of_its_live_connection() -> None:
    # Cancelling connect() drops the socket without a close frame, so the session is
    # resumable: `session` must be the live one (id and last sequence), not None.
    async with FakeGateway(token=TOKEN) as fake:
        shard = new_shard(fake)
        async with anyio.create_task_group() as tg:
            tg.start_soon(shard.connect)
            await until_ready(shard, 1)
            [sent] = await fake.dispatch("TYPING_START", {"channel_id": "1"}, shard_id=0)
            with anyio.fail_after(5):
                while shard.seq != sent.s:
                    await anyio.sleep(0.01)
            live = shard.session
            tg.cancel_scope.cancel()
        assert live is not None
        assert shard.session == live


async def test_the_documented_single_shard_pattern_exits() -> None:
    # Regression: docs/drivers.md starts the shard with start_soon and disconnects
    # right away; the disconnect ran first, did nothing, and connect() ran for ever.
    async with FakeGateway(token=TOKEN) as fake:
        shard = new_shard(fake)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(shard.connect)
                await shard.disconnect()
        assert shard.state is ShardState.STOPPED
        assert fake.connections == []


async def test_disconnect_sends_its_close_frame_at_once() -> None:
    # Regression: the close frame waited in the connection's buffer until the timer
    # next woke (the next heartbeat, or the close timeout), so disconnect() took up
    # to either; here both are 25-30 s away, ten times the bound below.
    async with FakeGateway(token=TOKEN, heartbeat_interval=30.0) as fake:
        shard = Shard(
            Gateway(TOKEN, api_base=fake.api_base),
            0,
            intents=513,
            rng=random.Random(0),  # the first heartbeat after 0.84 of the interval
            close_timeout=30.0,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(shard.connect)
            with anyio.fail_after(10):
                while shard.state is not ShardState.READY:
                    await anyio.sleep(0.01)
            with anyio.fail_after(3):
                await shard.disconnect(4000)
        assert shard.state is ShardState.STOPPED
        assert fake.connections[0].close_code == 4000
