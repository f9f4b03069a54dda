"""Sessions: READY and GUILD_CREATEs per shard, heartbeats, resume replay, invalidation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from gateway_testing import FakeGateway

from .conftest import FAST, connect, identified

pytestmark = pytest.mark.anyio


async def test_ready_then_the_shards_guilds(anyio_backend: str) -> None:
    async with FakeGateway(shards=2, max_concurrency=2, guilds_per_shard=3, **FAST) as fake:
        client, conn, payloads = await identified(fake, shard=[1, 2])
        ready = payloads[0]
        assert ready["op"] == 0
        assert ready["t"] == "READY"
        assert ready["s"] == 1
        assert ready["d"]["shard"] == [1, 2]
        assert ready["d"]["resume_gateway_url"] == f"ws://127.0.0.1:{fake.port}/resume"
        assert ready["d"]["session_id"] == conn.session.session_id
        guild_ids = [g["id"] for g in ready["d"]["guilds"]]
        assert len(guild_ids) == 3
        assert all((int(g) >> 22) % 2 == 1 for g in guild_ids)
        creates = payloads[1:]
        assert [p["d"]["id"] for p in creates] == guild_ids
        assert [p["s"] for p in creates] == [2, 3, 4]
        assert len(creates[0]["d"]["members"]) == 50
        assert conn.identifies[0]["shard"] == [1, 2]
        await client.aclose()


async def test_dispatches_are_routed_by_guild_and_numbered(anyio_backend: str) -> None:
    async with FakeGateway(shards=2, max_concurrency=2, **FAST) as fake:
        c0, _, _ = await identified(fake, shard=[0, 2])
        c1, _, _ = await identified(fake, shard=[1, 2])
        g0 = fake.guilds_for(0, 2)[0]
        g1 = fake.guilds_for(1, 2)[0]
        await fake.dispatch("TYPING_START", {"guild_id": g1})
        await fake.dispatch("TYPING_START", {"guild_id": g0})
        await fake.dispatch("MESSAGE_CREATE", {"content": "dm"})  # no guild: shard 0
        await fake.dispatch("USER_UPDATE", {"id": "1"}, shard_id=1)
        first = [await c0.recv(), await c0.recv()]
        assert [(p["t"], p["s"], p["d"]) for p in first] == [
            ("TYPING_START", 5, {"guild_id": g0}),
            ("MESSAGE_CREATE", 6, {"content": "dm"}),
        ]
        second = [await c1.recv(), await c1.recv()]
        assert [(p["t"], p["s"]) for p in second] == [("TYPING_START", 5), ("USER_UPDATE", 6)]
        await c0.aclose()
        await c1.aclose()


async def test_heartbeats_are_acked_and_recorded(fake: FakeGateway) -> None:
    client = await connect(fake)
    await client.hello()
    conn = await fake.next_connection()
    for seq in (None, 3):
        await client.send({"op": 1, "d": seq})
        assert await client.recv() == {"t": None, "s": None, "op": 11, "d": None}
    assert conn.payloads(1) == [None, 3]
    assert len(conn.heartbeats) == 2
    assert conn.records(1)[0].time <= conn.records(1)[1].time
    await client.aclose()


async def test_heartbeat_request(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    await conn.request_heartbeat()
    assert await client.recv() == {"t": None, "s": None, "op": 1, "d": None}
    await client.aclose()


async def test_silent_client_is_closed_with_4009(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "heartbeat_grace": 0.3}) as fake:
        client, conn, _ = await identified(fake)
        assert await client.closed_code() == 4009  # 0.2 s interval + 0.3 s grace, no heartbeat
        await conn.wait_closed()
        assert conn.server_close_code == 4009
        assert conn.close_code is None  # the server started it; the client only echoed


async def test_resume_replays_missed_dispatches_in_order(fake: FakeGateway) -> None:
    client, conn, payloads = await identified(fake)
    session_id = payloads[0]["d"]["session_id"]
    guild = fake.guild_ids[0]
    await client.close(4000)
    await conn.wait_closed()
    assert conn.close_code == 4000
    for n in range(3):
        await fake.dispatch("MESSAGE_CREATE", {"guild_id": guild, "n": n})
    second = await connect(fake, path="/resume")
    await second.hello()
    await second.send({"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": 4}})
    replay = await second.recv_until(t="RESUMED")
    assert [(p["t"], p["s"]) for p in replay] == [
        ("MESSAGE_CREATE", 5),
        ("MESSAGE_CREATE", 6),
        ("MESSAGE_CREATE", 7),
        ("RESUMED", 8),
    ]
    assert [p["d"]["n"] for p in replay[:3]] == [0, 1, 2]
    new_conn = fake.connections[-1]
    assert new_conn.path == "/resume"
    assert new_conn.resumed
    assert new_conn.session is conn_session(fake, session_id)
    await fake.dispatch("MESSAGE_CREATE", {"guild_id": guild, "n": 3})
    assert (await second.recv())["s"] == 9
    await second.aclose()


def conn_session(fake: FakeGateway, session_id: str) -> object:
    return fake.sessions[session_id]


async def test_resume_from_an_older_seq_replays_more(fake: FakeGateway) -> None:
    client, conn, payloads = await identified(fake)
    session_id = payloads[0]["d"]["session_id"]
    await conn.drop()
    second = await connect(fake, path="/resume")
    await second.hello()
    await second.send({"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": 1}})
    replay = await second.recv_until(t="RESUMED")
    assert [p["s"] for p in replay] == [2, 3, 4, 5]
    await second.aclose()
    await client.aclose()


async def _resume(
    fake: FakeGateway, session_id: str, seq: int = 0
) -> tuple[dict[str, Any], int | None]:
    client = await connect(fake, path="/resume")
    await client.hello()
    await client.send({"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": seq}})
    reply = await client.recv()
    await client.aclose()
    return reply, None


async def test_unknown_session_gets_op9_false(fake: FakeGateway) -> None:
    reply, _ = await _resume(fake, "no-such-session")
    assert reply == {"t": None, "s": None, "op": 9, "d": False}


@pytest.mark.parametrize("code", [1000, 1001])
async def test_clean_close_invalidates_the_session(fake: FakeGateway, code: int) -> None:
    client, conn, payloads = await identified(fake)
    await client.close(code)
    assert await conn.wait_closed() == code
    reply, _ = await _resume(fake, payloads[0]["d"]["session_id"], 4)
    assert reply["op"] == 9
    assert reply["d"] is False


async def test_expired_session_gets_op9_false(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "session_ttl": 0.05}) as fake:
        client, conn, payloads = await identified(fake)
        await client.close(4000)
        await conn.wait_closed()
        await anyio.sleep(0.1)
        reply, _ = await _resume(fake, payloads[0]["d"]["session_id"], 4)
        assert reply["op"] == 9
        assert reply["d"] is False


async def test_resume_with_a_future_seq_is_4007(fake: FakeGateway) -> None:
    client, conn, payloads = await identified(fake)
    await conn.drop()
    second = await connect(fake)
    await second.hello()
    session_id = payloads[0]["d"]["session_id"]
    await second.send({"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": 99}})
    assert await second.closed_code() == 4007
    assert fake.sessions[session_id].invalidated
    await client.aclose()


async def test_resume_with_a_trimmed_buffer_is_4007(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "resume_buffer": 2}) as fake:
        client, conn, payloads = await identified(fake)
        await conn.drop()
        second = await connect(fake)
        await second.hello()
        session_id = payloads[0]["d"]["session_id"]
        await second.send(
            {"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": 1}}
        )
        assert await second.closed_code() == 4007
        await client.aclose()


async def test_resume_does_not_spend_a_session_start(fake: FakeGateway) -> None:
    client, conn, payloads = await identified(fake)
    remaining = fake.session_start_remaining
    await conn.drop()
    second = await connect(fake, path="/resume")
    await second.hello()
    session_id = payloads[0]["d"]["session_id"]
    await second.send({"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": 4}})
    await second.recv_until(t="RESUMED")
    assert fake.session_start_remaining == remaining
    await second.aclose()
    await client.aclose()
