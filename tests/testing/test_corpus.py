"""The corpus: deterministic, realistic, routed to the right shard, JSON/ETF-stable."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import erlpack
import pytest

from gateway_testing import corpus

from ._client import normalise


def test_same_seed_same_payloads() -> None:
    ids = corpus.guild_ids_for_shard(0, 1, 3)
    first = corpus.everyday_events(seed=1, count=300, guild_ids=ids)
    assert first == corpus.everyday_events(seed=1, count=300, guild_ids=ids)
    assert first != corpus.everyday_events(seed=2, count=300, guild_ids=ids)


@pytest.mark.parametrize(("shard_id", "count"), [(0, 1), (1, 3), (5, 16)])
def test_guild_ids_route_to_their_shard(shard_id: int, count: int) -> None:
    ids = corpus.guild_ids_for_shard(shard_id, count, 20, seed=3)
    assert len(set(ids)) == 20
    assert all((int(g) >> 22) % count == shard_id for g in ids)


def test_guild_ids_reject_a_shard_outside_the_count() -> None:
    with pytest.raises(ValueError, match="not in"):
        corpus.guild_ids_for_shard(2, 2, 1)


def test_ready_shape() -> None:
    ready = corpus.ready_payload(
        session_id="abc", resume_url="ws://x/resume", shard=(1, 2), guild_ids=["1", "2"]
    )
    assert ready["v"] == 10
    assert ready["session_id"] == "abc"
    assert ready["resume_gateway_url"] == "ws://x/resume"
    assert ready["shard"] == [1, 2]
    assert ready["guilds"] == [{"id": "1", "unavailable": True}, {"id": "2", "unavailable": True}]
    assert ready["user"]["bot"] is True
    assert ready["application"]["id"] == ready["user"]["id"]


def test_guild_create_is_consistent_with_members() -> None:
    gid = corpus.guild_ids_for_shard(0, 1, 1)[0]
    guild = corpus.guild_create(gid, seed=4, members=30, channels=8, roles=5)
    assert guild["id"] == gid
    assert guild["member_count"] == len(guild["members"]) == 30
    assert len(guild["roles"]) == 5
    assert guild["roles"][0]["id"] == gid  # @everyone has the guild's id
    assert {c["type"] for c in guild["channels"]} >= {0, 4}
    assert [m["user"]["id"] for m in guild["members"]] == [
        m["user"]["id"] for m in corpus.guild_members(gid, seed=4, members=30)
    ]
    for member in guild["members"]:
        assert isinstance(member["user"]["id"], str)
        assert member["joined_at"].endswith("+00:00")


def test_everyday_mix_and_sizes() -> None:
    ids = corpus.guild_ids_for_shard(0, 1, 5)
    events = corpus.everyday_events(seed=0, count=3000, guild_ids=ids)
    names = Counter(name for name, _ in events)
    for name in (
        "MESSAGE_CREATE",
        "TYPING_START",
        "PRESENCE_UPDATE",
        "MESSAGE_REACTION_ADD",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "GUILD_MEMBER_UPDATE",
        "VOICE_STATE_UPDATE",
        "INTERACTION_CREATE",
    ):
        assert names[name] > 0, name
    messages = [d for n, d in events if n == "MESSAGE_CREATE"]
    sizes = sorted(len(json.dumps(d)) for d in messages)
    assert 300 <= sizes[len(sizes) // 2] <= 2048
    assert any(d["embeds"] for d in messages)
    assert any(d["mentions"] for d in messages)
    assert any(d["attachments"] for d in messages)
    assert all(d["guild_id"] in ids for n, d in events if n.startswith("MESSAGE"))


def test_recorded_session_layout() -> None:
    session = corpus.recorded_session(guilds=4, members_per_guild=10, events=100, shard=(1, 2))
    assert session[0][0] == "READY"
    assert session[0][1]["shard"] == [1, 2]
    assert [n for n, _ in session[1:5]] == ["GUILD_CREATE"] * 4
    assert len(session) == 1 + 4 + 100


def _floats(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return [value] if isinstance(value, float) else []


@pytest.mark.parametrize(("name", "data"), sorted(corpus.sample_payloads().items()))
def test_samples_survive_json_and_etf_alike(name: str, data: dict[str, Any]) -> None:
    assert json.loads(json.dumps(data)) == data
    assert normalise(erlpack.unpack(erlpack.pack(data))) == data
    # Any float is an exact binary fraction, so every encoding spells it the same.
    assert all(f == round(f * 1024) / 1024 for f in _floats(data)), name


def test_samples_cover_the_major_dispatches() -> None:
    samples = corpus.sample_payloads()
    for name in (
        "READY",
        "GUILD_CREATE",
        "MESSAGE_CREATE",
        "PRESENCE_UPDATE",
        "GUILD_MEMBERS_CHUNK",
        "INTERACTION_CREATE",
    ):
        assert name in samples
    assert samples["MESSAGE_CREATE"]["embeds"]
    assert samples["GUILD_MEMBERS_CHUNK"]["not_found"]
    assert samples["GUILD_CREATE"]["members"]
    assert samples["GUILD_CREATE"]["channels"]
