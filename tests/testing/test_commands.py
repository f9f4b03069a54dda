"""Answers to commands: members (op 8), soundboard (op 31), channel info (op 43), voice (op 4)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_testing import FakeGateway, corpus

from .conftest import FAST, connect

pytestmark = pytest.mark.anyio

MEMBERS_INTENTS = 1 | 2 | 256


async def _session(fake: FakeGateway, intents: int = MEMBERS_INTENTS) -> Any:
    client = await connect(fake)
    await client.hello()
    await client.identify(intents=intents)
    await client.recv_until(t="GUILD_CREATE")
    await client.recv_until(t="GUILD_CREATE")
    await client.recv_until(t="GUILD_CREATE")
    return client


async def test_full_member_list_in_chunks(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "members_per_guild": 25, "member_chunk_size": 10}) as fake:
        client = await _session(fake)
        guild = fake.guild_ids[0]
        await client.send(
            {
                "op": 8,
                "d": {"guild_id": guild, "query": "", "limit": 0, "nonce": "n1", "presences": True},
            }
        )
        chunks = [await client.recv() for _ in range(3)]
        assert [c["t"] for c in chunks] == ["GUILD_MEMBERS_CHUNK"] * 3
        assert [(c["d"]["chunk_index"], c["d"]["chunk_count"]) for c in chunks] == [
            (0, 3),
            (1, 3),
            (2, 3),
        ]
        assert [len(c["d"]["members"]) for c in chunks] == [10, 10, 5]
        assert all(c["d"]["nonce"] == "n1" and c["d"]["guild_id"] == guild for c in chunks)
        assert len(chunks[0]["d"]["presences"]) == 10
        expected = corpus.guild_members(guild, seed=0, members=25)
        got = [m for c in chunks for m in c["d"]["members"]]
        assert [m["user"]["id"] for m in got] == [m["user"]["id"] for m in expected]
        await client.aclose()


async def test_full_member_list_is_rate_limited_per_guild(fake: FakeGateway) -> None:
    client = await _session(fake)
    first, second = fake.guild_ids[0], fake.guild_ids[1]
    request = {"op": 8, "d": {"guild_id": first, "query": "", "limit": 0, "nonce": "a"}}
    await client.send(request)
    assert (await client.recv())["t"] == "GUILD_MEMBERS_CHUNK"
    await client.send(request)
    limited = await client.recv()
    assert limited["t"] == "RATE_LIMITED"
    assert limited["d"]["opcode"] == 8
    assert limited["d"]["meta"] == {"guild_id": first, "nonce": "a"}
    assert 0 < limited["d"]["retry_after"] <= 0.5
    # Another guild has its own window; a prefix query is not limited.
    await client.send({"op": 8, "d": {"guild_id": second, "query": "", "limit": 0}})
    assert (await client.recv())["t"] == "GUILD_MEMBERS_CHUNK"
    await client.send({"op": 8, "d": {"guild_id": first, "query": "a", "limit": 5}})
    assert (await client.recv())["t"] == "GUILD_MEMBERS_CHUNK"
    await client.aclose()


async def test_full_member_list_needs_the_members_intent(fake: FakeGateway) -> None:
    client = await _session(fake, intents=1)
    await client.send({"op": 8, "d": {"guild_id": fake.guild_ids[0], "query": "", "limit": 0}})
    assert await client.closed_code() == 4013


async def test_query_prefix_and_limit(fake: FakeGateway) -> None:
    client = await _session(fake)
    guild = fake.guild_ids[0]
    members = corpus.guild_members(guild, seed=0, members=50)
    prefix = members[0]["user"]["username"][:2]
    await client.send({"op": 8, "d": {"guild_id": guild, "query": prefix.upper(), "limit": 2}})
    chunk = (await client.recv())["d"]
    assert chunk["chunk_count"] == 1
    assert "nonce" not in chunk
    assert 1 <= len(chunk["members"]) <= 2
    for member in chunk["members"]:
        names = (member["user"]["username"].lower(), (member["nick"] or "").lower())
        assert any(n.startswith(prefix.lower()) for n in names)
    await client.aclose()


async def test_user_ids_and_not_found(fake: FakeGateway) -> None:
    client = await _session(fake)
    guild = fake.guild_ids[0]
    known = corpus.guild_members(guild, seed=0, members=50)[3]["user"]["id"]
    too_long_nonce = "x" * 33
    await client.send(
        {"op": 8, "d": {"guild_id": guild, "user_ids": [known, "42"], "nonce": too_long_nonce}}
    )
    chunk = (await client.recv())["d"]
    assert [m["user"]["id"] for m in chunk["members"]] == [known]
    assert chunk["not_found"] == ["42"]
    assert "nonce" not in chunk  # an invalid nonce is ignored
    await client.aclose()


async def test_soundboard_and_channel_info(fake: FakeGateway) -> None:
    client = await _session(fake)
    guilds = fake.guild_ids[:2]
    await client.send({"op": 31, "d": {"guild_ids": [*guilds, "999"]}})
    sounds = [await client.recv(), await client.recv()]
    assert [(p["t"], p["d"]["guild_id"]) for p in sounds] == [
        ("SOUNDBOARD_SOUNDS", guilds[0]),
        ("SOUNDBOARD_SOUNDS", guilds[1]),
    ]
    assert sounds[0]["d"]["soundboard_sounds"]
    await client.send({"op": 43, "d": {"guild_id": guilds[0], "fields": ["status"]}})
    info = await client.recv()
    assert info["t"] == "CHANNEL_INFO"
    assert info["d"]["guild_id"] == guilds[0]
    assert all(set(c) == {"id", "status"} for c in info["d"]["channels"])
    await client.aclose()


async def test_voice_state_and_presence(fake: FakeGateway) -> None:
    client = await _session(fake)
    guild = fake.guild_ids[0]
    await client.send(
        {"op": 3, "d": {"since": None, "activities": [], "status": "idle", "afk": False}}
    )
    await client.send(
        {
            "op": 4,
            "d": {"guild_id": guild, "channel_id": "123", "self_mute": True, "self_deaf": False},
        }
    )
    state, server = await client.recv(), await client.recv()
    assert state["t"] == "VOICE_STATE_UPDATE"
    assert state["d"]["channel_id"] == "123"
    assert state["d"]["self_mute"] is True
    assert state["d"]["session_id"]
    assert server["t"] == "VOICE_SERVER_UPDATE"
    assert server["d"]["guild_id"] == guild
    await client.send(
        {
            "op": 4,
            "d": {"guild_id": guild, "channel_id": None, "self_mute": False, "self_deaf": False},
        }
    )
    leave = await client.recv()
    assert leave["t"] == "VOICE_STATE_UPDATE"
    assert leave["d"]["channel_id"] is None
    conn = fake.connections[-1]
    assert conn.payloads(3)[0]["status"] == "idle"
    await client.aclose()


async def test_bad_presence_is_4001(fake: FakeGateway) -> None:
    client = await _session(fake)
    await client.send({"op": 3, "d": {"status": "sleepy", "activities": []}})
    assert await client.closed_code() == 4001
