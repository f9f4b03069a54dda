"""A deterministic generator of realistic Discord gateway payloads (stdlib only).

Theory of operation: everything is derived from a seed through :class:`random.Random`,
so the same arguments always give the same payloads, byte for byte once encoded.
Shapes follow PROTOCOL.md and Discord's gateway-events docs: snowflakes are strings,
timestamps ISO-8601 (``+00:00``), members carry users, guilds carry roles, channels,
members and presences. Values survive JSON and ETF the same way: no floats except
exact binary fractions (``retry_after``), no tuples, string map keys only.

Used by the fake gateway (READY, GUILD_CREATE, GUILD_MEMBERS_CHUNK, the lively demo
stream), by the benchmarks (:func:`recorded_session`) and by the codec tests
(:func:`sample_payloads`).
"""

from __future__ import annotations

import random
from typing import Any

from gateway_testing._events import EventMaker
from gateway_testing._guilds import guild_create, soundboard_sounds
from gateway_testing._objects import BASE_TIME_MS, DISCORD_EPOCH_MS, guild_model

__all__ = [
    "BOT_USER_ID",
    "channel_info",
    "everyday_events",
    "guild_create",
    "guild_ids_for_shard",
    "guild_members",
    "ready_payload",
    "recorded_session",
    "sample_payloads",
    "soundboard_sounds",
    "voice_server_update",
    "voice_state_update",
]

Json = Any
#: The bot user's id (and its application's) in every READY the corpus makes.
BOT_USER_ID = "1158427385231155251"


def ready_payload(
    *,
    session_id: str,
    resume_url: str,
    shard: tuple[int, int],
    guild_ids: list[str],
    user_id: str = BOT_USER_ID,
) -> dict[str, Any]:
    """Return a READY ``d``: the bot user, unavailable guilds, session id and resume URL.

    ``shard`` is sent as a two-element list, as Discord's JSON has it.
    """
    return {
        "v": 10,
        "user_settings": {},
        "user": {
            "verified": True,
            "username": "spectacles-test-bot",
            "mfa_enabled": False,
            "id": user_id,
            "global_name": None,
            "flags": 0,
            "email": None,
            "discriminator": "4217",
            "clan": None,
            "bot": True,
            "avatar": "3bbd2b5a2b8b3e6b0f8e0b55c3e34aa1",
        },
        "session_type": "normal",
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "relationships": [],
        "private_channels": [],
        "presences": [],
        "guilds": [{"id": gid, "unavailable": True} for gid in guild_ids],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": ["rotterdam", "frankfurt", "milan", "madrid", "london"],
        "auth": {},
        "application": {"id": user_id, "flags": 8953856},
        "shard": [shard[0], shard[1]],
        "_trace": ['["gateway-prd-arm-us-east1-c-9k2x",{"micros":84021,"calls":[]}]'],
    }


def guild_ids_for_shard(shard_id: int, shard_count: int, count: int, *, seed: int = 0) -> list[str]:
    """Return ``count`` distinct guild ids (ascending) that route to ``shard_id``.

    Every id satisfies ``(int(id) >> 22) % shard_count == shard_id`` (PROTOCOL.md 11).
    """
    if not 0 <= shard_id < shard_count:
        raise ValueError(f"shard_id {shard_id} is not in [0, {shard_count})")
    rng = random.Random(f"guild-ids:{seed}:{shard_id}:{shard_count}")
    relative = 1_600_000_000_000 - DISCORD_EPOCH_MS  # guilds created from 2020-09 on
    out = []
    for _ in range(count):
        relative += rng.randrange(1, 3_000_000_000)
        relative += (shard_id - relative) % shard_count  # land on this shard's residue
        out.append(str((relative << 22) | rng.getrandbits(22)))
    return out


def guild_members(guild_id: str, *, seed: int, members: int = 50) -> list[dict[str, Any]]:
    """Return the guild's member objects (the same ones its GUILD_CREATE lists)."""
    return [dict(m) for m in guild_model(guild_id, seed, members, 10, 8).members]


def channel_info(guild_id: str, *, seed: int, fields: list[str]) -> dict[str, Any]:
    """Return a CHANNEL_INFO ``d`` (voice channel status/start time) for op 43."""
    model = guild_model(guild_id, seed, 50, 10, 8)
    rng = random.Random(f"channel-info:{seed}:{guild_id}")
    channels = []
    for channel_id in model.voice_channel_ids:
        entry: dict[str, Any] = {"id": channel_id}
        if "status" in fields:
            entry["status"] = rng.choice((None, "lofi beats 🎧", "standup"))
        if "voice_start_time" in fields:
            entry["voice_start_time"] = rng.choice((None, BASE_TIME_MS // 1000 - 600))
        channels.append(entry)
    return {"guild_id": guild_id, "channels": channels}


def voice_state_update(
    guild_id: str,
    channel_id: str | None,
    *,
    user_id: str = BOT_USER_ID,
    self_mute: bool = False,
    self_deaf: bool = False,
) -> dict[str, Any]:
    """Return the bot's own VOICE_STATE_UPDATE after an op 4 (carries the voice session id)."""
    return {
        "guild_id": guild_id,
        "channel_id": channel_id,
        "user_id": user_id,
        "session_id": f"{int(guild_id) % 16**32:032x}",
        "deaf": False,
        "mute": False,
        "self_deaf": self_deaf,
        "self_mute": self_mute,
        "self_video": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }


def voice_server_update(guild_id: str) -> dict[str, Any]:
    """Return the VOICE_SERVER_UPDATE that follows the bot's voice state update."""
    return {
        "token": f"{int(guild_id) % 16**16:016x}",
        "guild_id": guild_id,
        "endpoint": "rotterdam9341.discord.media:443",
    }


def everyday_events(
    *, seed: int, count: int, guild_ids: list[str], members_per_guild: int = 50
) -> list[tuple[str, dict[str, Any]]]:
    """Return ``count`` realistic dispatches ``(name, data)`` spread over ``guild_ids``.

    The mix: MESSAGE_CREATE (some with embeds, mentions, attachments), TYPING_START,
    PRESENCE_UPDATE, MESSAGE_REACTION_ADD/REMOVE, MESSAGE_UPDATE, MESSAGE_DELETE,
    GUILD_MEMBER_UPDATE, VOICE_STATE_UPDATE, INTERACTION_CREATE and, rarely, a guild
    outage (GUILD_DELETE ``unavailable`` then GUILD_CREATE). People and channels are
    those of the guilds' GUILD_CREATEs (with ``members_per_guild`` members).
    """
    if not guild_ids:
        raise ValueError("everyday_events needs at least one guild id")
    models = [guild_model(gid, seed, members_per_guild, 10, 8) for gid in guild_ids]
    maker = EventMaker(random.Random(f"events:{seed}"), models, BASE_TIME_MS)
    out: list[tuple[str, dict[str, Any]]] = []
    while len(out) < count:
        out.extend(maker.make())
    return out[:count]


def recorded_session(
    *,
    seed: int = 0,
    guilds: int = 20,
    members_per_guild: int = 200,
    events: int = 20000,
    shard: tuple[int, int] = (0, 1),
) -> list[tuple[str, dict[str, Any]]]:
    """Return the standard recorded stream: READY, a GUILD_CREATE per guild, then events."""
    ids = guild_ids_for_shard(shard[0], shard[1], guilds, seed=seed)
    session: list[tuple[str, dict[str, Any]]] = [
        (
            "READY",
            ready_payload(
                session_id=f"{random.Random(f'session:{seed}').getrandbits(128):032x}",
                resume_url="wss://gateway-us-east1-c.discord.gg",
                shard=shard,
                guild_ids=ids,
            ),
        )
    ]
    session += [
        ("GUILD_CREATE", guild_create(g, seed=seed, members=members_per_guild)) for g in ids
    ]
    session += everyday_events(
        seed=seed, count=events, guild_ids=ids, members_per_guild=members_per_guild
    )
    return session


def sample_payloads() -> dict[str, dict[str, Any]]:
    """Return one realistic ``d`` for each major dispatch name (for codec equality tests)."""
    ids = guild_ids_for_shard(0, 1, 2, seed=7)
    gid = ids[0]
    maker = EventMaker(random.Random("samples"), [guild_model(gid, 7, 5, 6, 4)], BASE_TIME_MS)
    members = guild_members(gid, seed=7, members=5)
    return {
        "READY": ready_payload(
            session_id="9f2c4f1e1b0c4ad1a7d4b3c2e1f00a55",
            resume_url="wss://gateway-us-east1-b.discord.gg",
            shard=(0, 1),
            guild_ids=ids,
        ),
        "GUILD_CREATE": guild_create(gid, seed=7, members=5, channels=6, roles=4),
        "MESSAGE_CREATE": maker.make_message_create(embeds=True),
        "MESSAGE_UPDATE": maker.make_message_update(),
        "MESSAGE_DELETE": maker.make_message_delete(),
        "TYPING_START": maker.make_typing_start(),
        "PRESENCE_UPDATE": maker.make_presence_update(),
        "MESSAGE_REACTION_ADD": maker.make_message_reaction_add(),
        "GUILD_MEMBER_UPDATE": maker.make_guild_member_update(),
        "VOICE_STATE_UPDATE": maker.make_voice_state_update(),
        "VOICE_SERVER_UPDATE": voice_server_update(gid),
        "INTERACTION_CREATE": maker.make_interaction_create(),
        "GUILD_MEMBERS_CHUNK": {
            "guild_id": gid,
            "members": members[:3],
            "chunk_index": 0,
            "chunk_count": 1,
            # Small ids can come back as integers even over JSON (PROTOCOL.md 4.3).
            "not_found": [12345, "1158427385231155299"],
            "nonce": "req-1",
        },
        "SOUNDBOARD_SOUNDS": {"guild_id": gid, "soundboard_sounds": soundboard_sounds(gid, seed=7)},
        "CHANNEL_INFO": channel_info(gid, seed=7, fields=["status", "voice_start_time"]),
        "RATE_LIMITED": {
            "opcode": 8,
            "retry_after": 29.5,
            "meta": {"guild_id": gid, "nonce": "req-2"},
        },
        "RESUMED": {"_trace": ['["gateway-prd-arm-us-east1-c-9k2x",{"micros":1021}]']},
    }
