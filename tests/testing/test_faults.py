"""Fault injection from the test: drops, zombies, op 7/9, closes, fragmentation, corruption."""

from __future__ import annotations

import zlib

import pytest

from gateway_testing import FakeGateway

from ._client import Closed, WebsocketsClient, WsprotoClient
from .conftest import connect, identified

pytestmark = pytest.mark.anyio


async def test_drop_without_close_frame_keeps_the_session(fake: FakeGateway) -> None:
    client, conn, payloads = await identified(fake)
    await conn.drop()
    assert await client.closed_code() is None
    assert conn.dropped
    assert conn.close_code is None
    session = fake.sessions[payloads[0]["d"]["session_id"]]
    assert not session.invalidated


async def test_drop_with_reset(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    await conn.drop(reset=True)
    assert await client.closed_code() is None


async def test_zombie_server_stops_acking(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    conn.stop_acking()
    await client.send({"op": 1, "d": 4})
    await conn.wait_for_op(1)
    await conn.request_heartbeat()  # a later payload arrives: no ACK came before it
    assert (await client.recv())["op"] == 1
    assert [p.op for p in conn.delivered if p.op == 11] == []
    await client.aclose()


async def test_reconnect_op7(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    await conn.reconnect()
    assert await client.recv() == {"t": None, "s": None, "op": 7, "d": None}
    await client.aclose()


async def test_reconnect_instead_of_hello(fake: FakeGateway) -> None:
    fake.reconnect_before_hello()
    first = await connect(fake)
    assert await first.recv() == {"t": None, "s": None, "op": 7, "d": None}
    await first.aclose()
    second = await connect(fake)  # only the next connection was affected
    assert (await second.recv())["op"] == 10
    await second.aclose()


@pytest.mark.parametrize("resumable", [True, False])
async def test_invalid_session_op9(fake: FakeGateway, resumable: bool) -> None:
    client, conn, payloads = await identified(fake)
    session = conn.session
    await conn.invalid_session(resumable=resumable)
    assert await client.recv() == {"t": None, "s": None, "op": 9, "d": resumable}
    assert session is not None
    assert session.invalidated is not resumable
    # Dispatches no longer go to this connection (they are buffered for a resume).
    await fake.dispatch("TYPING_START", {"guild_id": fake.guild_ids[0]})
    assert conn.dispatches()[-1].t == "GUILD_CREATE"
    await client.aclose()
    assert payloads


@pytest.mark.parametrize("code", [1000, 4000, 4009, 3999])
async def test_close_with_any_code(fake: FakeGateway, code: int) -> None:
    client, conn, _ = await identified(fake)
    await conn.close(code, "bye")
    assert await client.closed_code() == code
    assert conn.server_close_code == code
    assert conn.closed


async def test_client_close_code_is_recorded(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    await client.close(4321)
    assert await conn.wait_closed() == 4321


@pytest.mark.parametrize("compress", [None, "zlib-stream"])
async def test_fragmented_frames(fake: FakeGateway, compress: str | None) -> None:
    client, conn, _ = await identified(fake, compress=compress)
    conn.fragment_frames = 3
    await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": "x" * 90})
    message = await client.recv()
    assert message["d"]["content"] == "x" * 90
    if isinstance(client, WsprotoClient):
        frames_before = client.frames
        await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": "y" * 90})
        await client.recv()
        assert client.frames - frames_before == 3
    await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_fragmented_frames_seen_by_websockets(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    assert isinstance(client, WebsocketsClient)
    conn.fragment_frames = 4
    await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": "z" * 90})
    fragments = [f async for f in client.ws.recv_streaming()]
    assert len(fragments) == 4
    decoded = client.decoder.feed("".join(fragments))
    assert decoded is not None
    assert decoded["d"]["content"] == "z" * 90
    await client.aclose()


async def test_zlib_payload_split_across_messages(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake, compress="zlib-stream")
    conn.split_messages = 3
    before = len(client.decoder.messages)
    await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": "split"})
    message = await client.recv()
    assert message["d"]["content"] == "split"
    parts = [m for m in client.decoder.messages[before:] if isinstance(m, bytes)]
    assert len(parts) == 3
    assert not parts[0].endswith(b"\x00\x00\xff\xff")
    assert parts[-1].endswith(b"\x00\x00\xff\xff")
    await client.aclose()


async def test_write_delay_keeps_order(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake)
    conn.write_delay = 0.01
    for n in range(3):
        await fake.dispatch("TYPING_START", {"guild_id": fake.guild_ids[0], "n": n})
    got = [await client.recv() for _ in range(3)]
    assert [p["d"]["n"] for p in got] == [0, 1, 2]
    assert [p["s"] for p in got] == [5, 6, 7]
    await client.aclose()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("json", None), ("etf", None), ("json", "zlib-stream"), ("json", "zstd-stream")],
)
async def test_corrupted_message(fake: FakeGateway, encoding: str, compress: str | None) -> None:
    client, conn, _ = await identified(fake, encoding=encoding, compress=compress)
    await conn.send_corrupted()
    with pytest.raises(Exception) as info:  # noqa: PT011  (each decoder fails its own way)
        await client.recv()
    assert not isinstance(info.value, Closed)
    if compress == "zlib-stream":
        assert isinstance(info.value, zlib.error)
    await client.aclose()


async def test_oversized_message(fake: FakeGateway) -> None:
    client, conn, _ = await identified(fake, compress="zlib-stream")
    dispatch = await conn.send_oversized(2 * 1024 * 1024)
    assert dispatch is not None
    assert dispatch.s == 5
    message = await client.recv()
    assert len(message["d"]["content"]) == 2 * 1024 * 1024
    await client.aclose()


async def test_stream_pushes_to_identified_sessions(fake: FakeGateway) -> None:
    client, _, _ = await identified(fake)
    idle = await connect(fake)  # connected but never identified: gets nothing
    await idle.hello()
    events = [("TYPING_START", {"guild_id": fake.guild_ids[0], "n": n}) for n in range(300)]
    assert await fake.stream(events) == 300
    got = [await client.recv() for _ in range(300)]
    assert [p["d"]["n"] for p in got] == list(range(300))
    assert [p["s"] for p in got] == list(range(5, 305))
    assert fake.connections[1].dispatches() == []
    await client.aclose()
    await idle.aclose()


async def test_lively_mode_streams_the_corpus(anyio_backend: str) -> None:
    async with FakeGateway(token="test-token", event_rate=200.0, heartbeat_interval=5.0) as fake:
        client, _, _ = await identified(fake)
        got = [await client.recv() for _ in range(10)]
        assert all(p["op"] == 0 for p in got)
        assert [p["s"] for p in got] == list(range(5, 15))
        assert all(p["d"].get("guild_id", p["d"].get("id")) in fake.guild_ids for p in got)
        await client.aclose()
