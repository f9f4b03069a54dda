"""Command validation: field rules raise InvalidCommandError where the command is built."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_proto import (
    Activity,
    InvalidCommandError,
    Opcode,
    RequestChannelInfo,
    RequestGuildMembers,
    RequestSoundboardSounds,
    UpdatePresence,
    UpdateVoiceState,
)


def test_payloads() -> None:
    assert UpdatePresence(
        status="dnd", activities=[Activity(name="x", type=4, state="busy")], since=5, afk=True
    ).to_payload() == {
        "since": 5,
        "activities": [{"name": "x", "type": 4, "state": "busy"}],
        "status": "dnd",
        "afk": True,
    }
    assert UpdateVoiceState(guild_id=1, channel_id="2", self_deaf=True).to_payload() == {
        "guild_id": "1",
        "channel_id": "2",
        "self_mute": False,
        "self_deaf": True,
    }
    assert RequestGuildMembers(guild_id=1, query="ab", limit=10, nonce="n").to_payload() == {
        "guild_id": "1",
        "presences": False,
        "query": "ab",
        "limit": 10,
        "nonce": "n",
    }
    assert RequestGuildMembers(guild_id="1", user_ids=[2, "3"]).to_payload() == {
        "guild_id": "1",
        "presences": False,
        "user_ids": ["2", "3"],
    }
    assert RequestSoundboardSounds(guild_ids=[1, 2]).to_payload() == {"guild_ids": ["1", "2"]}
    assert RequestChannelInfo(guild_id=9).to_payload() == {
        "guild_id": "9",
        "fields": ["status", "voice_start_time"],
    }


def test_opcodes() -> None:
    assert int(Opcode.PRESENCE_UPDATE) == 3
    assert UpdatePresence.opcode is Opcode.PRESENCE_UPDATE
    assert UpdateVoiceState.opcode == 4
    assert RequestGuildMembers.opcode == 8
    assert RequestSoundboardSounds.opcode == 31
    assert RequestChannelInfo.opcode == 43


BAD: list[tuple[str, Any]] = [
    ("status", lambda: UpdatePresence(status="away")),  # type: ignore[arg-type]
    ("activity object", lambda: UpdatePresence(activities=[{"name": "x"}])),  # type: ignore[list-item]
    ("since", lambda: UpdatePresence(since=True)),
    ("afk", lambda: UpdatePresence(afk=1)),  # type: ignore[arg-type]
    ("activity name", lambda: Activity(name="")),
    ("activity type", lambda: Activity(name="x", type=6)),  # type: ignore[arg-type]
    ("url only streaming", lambda: Activity(name="x", type=0, url="https://twitch.tv/x")),
    ("snowflake text", lambda: UpdateVoiceState(guild_id="abc", channel_id=None)),
    ("snowflake bool", lambda: UpdateVoiceState(guild_id=True, channel_id=None)),
    ("snowflake range", lambda: UpdateVoiceState(guild_id=1 << 64, channel_id=None)),
    ("self_mute", lambda: UpdateVoiceState(guild_id=1, channel_id=2, self_mute=None)),  # type: ignore[arg-type]
    ("neither query nor ids", lambda: RequestGuildMembers(guild_id=1)),
    ("both query and ids", lambda: RequestGuildMembers(guild_id=1, query="", user_ids=[1])),
    ("negative limit", lambda: RequestGuildMembers(guild_id=1, query="", limit=-1)),
    ("nonce over 32 bytes", lambda: RequestGuildMembers(guild_id=1, query="", nonce="é" * 17)),
    ("101 user ids", lambda: RequestGuildMembers(guild_id=1, user_ids=list(range(1, 102)))),
    ("empty user ids", lambda: RequestGuildMembers(guild_id=1, user_ids=[])),
    ("user ids as str", lambda: RequestGuildMembers(guild_id=1, user_ids="123")),
    ("presences", lambda: RequestGuildMembers(guild_id=1, query="", presences="yes")),  # type: ignore[arg-type]
    ("no guild ids", lambda: RequestSoundboardSounds(guild_ids=[])),
    ("guild ids as str", lambda: RequestSoundboardSounds(guild_ids="12")),
    ("unknown field", lambda: RequestChannelInfo(guild_id=1, fields=["topic"])),  # type: ignore[list-item]
    ("fields as str", lambda: RequestChannelInfo(guild_id=1, fields="status")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("build", [b for _, b in BAD], ids=[name for name, _ in BAD])
def test_invalid_commands_raise_value_errors(build: Any) -> None:
    with pytest.raises(InvalidCommandError) as info:
        build()
    assert isinstance(info.value, ValueError)


def test_nonce_of_exactly_32_bytes_is_fine() -> None:
    assert RequestGuildMembers(guild_id=1, query="", nonce="x" * 32).nonce == "x" * 32
    assert len(RequestGuildMembers(guild_id=1, user_ids=list(range(1, 101))).user_ids or ()) == 100


def test_commands_are_frozen_and_compare_by_value() -> None:
    a = UpdatePresence(status="idle", activities=[Activity(name="x")])
    b = UpdatePresence(status="idle", activities=(Activity(name="x"),))
    assert a == b
    with pytest.raises(AttributeError):
        a.status = "dnd"  # type: ignore[misc]
