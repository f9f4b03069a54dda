"""A guild's full payloads: the GUILD_CREATE ``d`` and its soundboard sounds.

Both the corpus (:mod:`gateway_testing.corpus`, which re-exports them) and the event
maker (:mod:`gateway_testing._events`, for a guild coming back after an outage) build
on them, so they sit below both: the corpus imports the event maker, never the other
way round.
"""

from __future__ import annotations

import random
from typing import Any

from gateway_testing._objects import BASE_TIME_MS, guild_model, iso, presence, snowflake

__all__ = ["guild_create", "soundboard_sounds"]


def guild_create(
    guild_id: str, *, seed: int, members: int = 50, channels: int = 10, roles: int = 8
) -> dict[str, Any]:
    """Return a GUILD_CREATE ``d`` with members, channels, roles, presences and voice states."""
    model = guild_model(guild_id, seed, members, channels, roles)
    rng = random.Random(f"guild-create:{seed}:{guild_id}")
    member_list = list(model.members)
    online = [m for m in member_list if rng.random() < 0.3]
    voice = model.voice_channel_ids
    in_voice = member_list[: min(3, len(member_list))] if voice else []
    text = model.text_channel_ids
    return {
        "id": guild_id,
        "name": model.name,
        "icon": f"{rng.getrandbits(128):032x}",
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": model.owner_id,
        "region": "deprecated",
        "afk_channel_id": voice[0] if voice else None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "roles": list(model.roles),
        "emojis": list(model.emojis),
        "stickers": [],
        "features": ["COMMUNITY", "NEWS"] if members > 100 else [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": text[0],
        "system_channel_flags": 0,
        "rules_channel_id": text[0] if members > 100 else None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "max_presences": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "vanity_url_code": None,
        "premium_tier": rng.choice((0, 0, 1, 2)),
        "premium_subscription_count": rng.randrange(0, 20),
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "nsfw": False,
        "hub_type": None,
        "incidents_data": None,
        "inventory_settings": None,
        "latest_onboarding_question_id": None,
        "home_header": None,
        "joined_at": iso(model.created_ms + 86_400_000),
        "large": members > 250,
        "unavailable": False,
        "lazy": True,
        "member_count": len(member_list),
        "voice_states": [
            {
                "user_id": m["user"]["id"],
                "channel_id": voice[0],
                "session_id": f"{rng.getrandbits(128):032x}",
                "deaf": False,
                "mute": False,
                "self_deaf": False,
                "self_mute": i == 0,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            }
            for i, m in enumerate(in_voice)
        ],
        "members": member_list,
        "channels": list(model.channels),
        "threads": [],
        "presences": [presence(rng, m["user"]["id"], None, BASE_TIME_MS) for m in online],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": soundboard_sounds(guild_id, seed=seed)[:1],
        "embedded_activities": [],
        "activity_instances": [],
        "application_command_counts": {},
        "version": BASE_TIME_MS,
    }


def soundboard_sounds(guild_id: str, *, seed: int, count: int = 3) -> list[dict[str, Any]]:
    """Return a guild's soundboard sounds (the list a SOUNDBOARD_SOUNDS dispatch carries)."""
    rng = random.Random(f"sounds:{seed}:{guild_id}")
    return [
        {
            "name": rng.choice(("airhorn", "ba dum tss", "quack", "wow", "sad trombone")),
            "sound_id": snowflake(BASE_TIME_MS - rng.randrange(10**10), rng),
            "volume": 1.0 if i else 0.5,  # exact binary fractions: JSON and ETF agree
            "emoji_id": None,
            "emoji_name": rng.choice(("📢", "🦆", "🎺")),
            "guild_id": guild_id,
            "available": True,
            "user": {
                "id": snowflake(BASE_TIME_MS - rng.randrange(10**11), rng),
                "username": "sound-maker",
                "discriminator": "0",
                "avatar": None,
                "global_name": "Sound Maker",
                "public_flags": 0,
            },
        }
        for i in range(count)
    ]
