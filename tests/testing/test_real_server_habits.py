"""The fake's options for real servers' habits, and its memory over a long run.

Checked with the independent client (``_client.py``), not ``gateway_proto``: an
upgrade without a User-Agent is refused the way one server does it, a late first
heartbeat closes 4000, a fixed command window closes 4008 and starts over at its
boundary; and closed connections give their compression context back.
"""

from __future__ import annotations

import gc
import tracemalloc

import anyio
import pytest

from gateway_testing import FakeGateway

from ._client import USER_AGENT
from .conftest import FAST, connect, identified

pytestmark = pytest.mark.anyio


async def test_an_upgrade_without_a_user_agent_is_accepted_then_closed_4002() -> None:
    async with FakeGateway(**FAST) as fake:
        # Both test clients send one: websockets its own, the wsproto one ours.
        client = await connect(fake)
        await client.hello()
        assert fake.connections[0].user_agent
        await client.aclose()
        bare = await connect(fake, transport="wsproto", bare=True)
        assert await bare.closed_code() == 4002
        conn = fake.connections[1]
        assert (conn.user_agent, conn.server_close_reason) == (
            None,
            "User-Agent header is required",
        )
        assert not conn.sent  # no HELLO was ever asked for


async def test_without_the_requirement_a_bare_upgrade_gets_hello() -> None:
    async with FakeGateway(**FAST, require_user_agent=False) as fake:
        client = await connect(fake, transport="wsproto", bare=True)
        assert (await client.hello())["op"] == 10
        await client.aclose()


async def test_a_late_first_heartbeat_is_closed_4000() -> None:
    async with FakeGateway(
        **{**FAST, "heartbeat_interval": 5.0}, first_heartbeat_limit=0.2
    ) as fake:
        client = await connect(fake)
        await client.hello()
        assert await client.closed_code(timeout=3.0) == 4000
        assert fake.connections[0].server_close_reason == "Heartbeat expired"


async def test_a_first_heartbeat_in_time_is_fine_and_later_ones_follow_the_interval() -> None:
    async with FakeGateway(**FAST, first_heartbeat_limit=0.5) as fake:
        client = await connect(fake)
        await client.hello()
        await client.send({"op": 1, "d": None})
        assert (await client.recv())["op"] == 11
        conn = fake.connections[0]
        assert conn.first_heartbeat_at is not None
        assert conn.server_close_code is None
        await client.aclose()


async def test_a_fixed_window_closes_4008_past_the_limit_and_starts_over() -> None:
    options = {**FAST, "heartbeat_interval": 5.0, "command_limit": 3, "command_window": 0.4}
    async with FakeGateway(**options, fixed_command_window=True) as fake:
        client = await connect(fake)
        await client.hello()
        for _ in range(3):  # the whole window at once
            await client.send({"op": 1, "d": None})
        await fake.connections[0].wait_for_op(1, count=3)
        await anyio.sleep(0.45)  # the next window: the count starts over
        for _ in range(3):
            await client.send({"op": 1, "d": None})
        await fake.connections[0].wait_for_op(1, count=6)
        assert fake.connections[0].server_close_code is None
        await client.send({"op": 1, "d": None})  # a fourth in this window
        assert await client.closed_code() == 4008


async def _open_and_close(fake: FakeGateway, count: int) -> None:
    for _ in range(count):
        client, conn, _ = await identified(fake, compress="zlib-stream")
        await client.close(1000)
        await conn.wait_closed()


async def _growth_per_closed_connection(fake: FakeGateway) -> float:
    await _open_and_close(fake, 3)  # warm up (imports, caches, first allocations)
    tracemalloc.start()
    try:
        gc.collect()  # only what is still referenced counts, not garbage not yet collected
        before = tracemalloc.get_traced_memory()[0]
        await _open_and_close(fake, 20)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return grown / 20


async def test_closed_connections_give_their_compressor_back() -> None:
    async with FakeGateway(**{**FAST, "identify_window": 0.001}) as fake:
        # A zlib context is ~256 KiB (~335 KiB a connection kept before); what stays
        # now is the records: READY and three GUILD_CREATEs of 50 members, ~70 KiB.
        per_connection = await _growth_per_closed_connection(fake)
        assert per_connection < 128 * 1024, f"{per_connection / 1024:.0f} KiB per connection"
        # ...which tests still read after the close.
        last = fake.connections[-1]
        assert last.closed
        assert last.close_code == 1000
        assert last.identifies
        assert last.dispatches()


async def test_with_a_history_limit_a_closed_connection_is_nearly_free() -> None:
    async with FakeGateway(**{**FAST, "identify_window": 0.001}, history_limit=10) as fake:
        per_connection = await _growth_per_closed_connection(fake)
        # Left: the connection object and its small parts (closed stream, wsproto
        # state, events), ~20 KiB on asyncio; no records, no session buffer.
        assert per_connection < 32 * 1024, f"{per_connection / 1024:.1f} KiB per connection"
        assert fake.connections[-1].close_code == 1000


async def test_a_history_limit_bounds_records_and_drops_them_at_close() -> None:
    async with FakeGateway(**FAST, history_limit=4) as fake:
        client, conn, _ = await identified(fake)
        for n in range(12):
            await conn.dispatch("MESSAGE_CREATE", {"n": n})
        assert len(conn.delivered) <= 8  # trimmed in batches: never more than twice the limit
        assert conn.delivered[-1].d == {"n": 11}
        await client.close(1000)
        await conn.wait_closed()
        assert (conn.sent, conn.delivered) == ([], [])
        assert conn.close_code == 1000  # what the connection was is still there


def test_user_agent_header_of_the_test_client() -> None:
    assert USER_AGENT[0] == b"User-Agent"
