"""Options for what servers that exist do (PROTOCOL.md 13b), and an outage."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from gateway_testing import FakeGateway

from .conftest import FAST, connect, identified

pytestmark = pytest.mark.anyio


async def _resume(fake: FakeGateway, session_id: str, seq: int) -> list[dict[str, Any]]:
    client = await connect(fake, path="/resume")
    await client.hello()
    await client.send({"op": 6, "d": {"token": "test-token", "session_id": session_id, "seq": seq}})
    replies = [await client.recv()]
    while replies[-1]["op"] == 0 and replies[-1]["t"] != "RESUMED":
        replies.append(await client.recv())
    await client.aclose()
    return replies


async def test_zero_sequence_ready(anyio_backend: str) -> None:
    async with FakeGateway(zero_sequence_ready=True, **FAST) as fake:
        client = await connect(fake)
        await client.hello()
        await client.identify()
        payloads = [await client.recv() for _ in range(2 + len(fake.guild_ids))]
        assert [(p["t"], p["s"]) for p in payloads] == [
            ("READY", 0),
            ("READY_SUPPLEMENTAL", 0),
            *[("GUILD_CREATE", 0)] * len(fake.guild_ids),
        ]
        await fake.dispatch("MESSAGE_CREATE", {"n": 0})
        assert (await client.recv())["s"] == 1
        await client.aclose()


async def test_sessions_replace_before_ready(anyio_backend: str) -> None:
    async with FakeGateway(sessions_replace_before_ready=True, **FAST) as fake:
        client = await connect(fake)
        await client.hello()
        await client.identify()
        first, ready = await client.recv(), await client.recv()
        assert (first["t"], first["s"], ready["t"], ready["s"]) == (
            "SESSIONS_REPLACE",
            1,
            "READY",
            2,
        )
        assert first["d"][0]["session_id"] == ready["d"]["session_id"]
        await client.aclose()


async def test_resume_unsupported(anyio_backend: str) -> None:
    async with FakeGateway(resume_unsupported=True, **FAST) as fake:
        client, conn, payloads = await identified(fake)
        await conn.drop()
        session_id = payloads[0]["d"]["session_id"]
        assert await _resume(fake, session_id, 4) == [{"t": None, "s": None, "op": 9, "d": False}]
        assert fake.live_session(session_id, anyio.current_time()) is None
        await client.aclose()


async def test_replay_inclusive(anyio_backend: str) -> None:
    async with FakeGateway(replay_inclusive=True, **FAST) as fake:
        client, conn, payloads = await identified(fake)  # READY s=1, GUILD_CREATE 2-4
        await conn.drop()
        await fake.dispatch("MESSAGE_CREATE", {"n": 0}, shard_id=0)  # s=5, missed
        replay = await _resume(fake, payloads[0]["d"]["session_id"], 4)
        assert [(p["t"], p["s"]) for p in replay] == [
            ("GUILD_CREATE", 4),  # the client's last one, again
            ("MESSAGE_CREATE", 5),
            ("RESUMED", 6),
        ]
        await client.aclose()


async def test_resume_url_as_given(anyio_backend: str) -> None:
    url = "ws://user:secret@127.0.0.1:{port}/r"
    async with FakeGateway(resume_url=url, **FAST) as fake:
        client, _, payloads = await identified(fake)
        expected = f"ws://user:secret@127.0.0.1:{fake.port}/r"
        assert payloads[0]["d"]["resume_gateway_url"] == expected == fake.resume_gateway_url
        await client.aclose()


async def test_unreachable_drops_and_resets_then_comes_back(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "session_ttl": 60.0}) as fake:
        client, conn, payloads = await identified(fake)
        async with fake.unreachable():
            assert conn.closed
            assert conn.dropped
            async with await anyio.connect_tcp("127.0.0.1", fake.port) as stream:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
        assert len(fake.connections) == 1  # the reset one never became a connection
        replay = await _resume(fake, payloads[0]["d"]["session_id"], 4)
        assert [p["t"] for p in replay] == ["RESUMED"]
        await client.aclose()
