"""Building blocks of realistic Discord objects: snowflakes, timestamps, users, roles, channels.

Theory of operation: every builder takes a :class:`random.Random` (or a seed string) and
returns plain ``dict``/``list``/``str``/``int``/``bool``/``None`` trees, so the result
survives JSON and ETF identically. Snowflakes are strings (as Discord's JSON sends
them); non-id integers are small (colours, flags, positions) or Unix milliseconds.
There are no floats: JSON and ETF would not agree on their text form.

A :class:`GuildModel` is the one place where a guild's members, roles and channels
are decided, so that GUILD_CREATE, GUILD_MEMBERS_CHUNK and the everyday events all
talk about the same people in the same rooms.
"""

from __future__ import annotations

import datetime
import functools
import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BASE_TIME_MS",
    "DISCORD_EPOCH_MS",
    "GuildModel",
    "guild_model",
    "iso",
    "snowflake",
    "user_object",
]

#: Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds.
DISCORD_EPOCH_MS = 1_420_070_400_000
#: The corpus "now": 2026-03-02T12:00:00Z, a fixed instant so output is deterministic.
BASE_TIME_MS = 1_772_452_800_000

Json = Any

_FIRST = [
    "ada",
    "alan",
    "grace",
    "linus",
    "ken",
    "barbara",
    "margaret",
    "dennis",
    "guido",
    "yukihiro",
    "anders",
    "bjarne",
    "james",
    "radia",
    "frances",
    "hedy",
    "katherine",
    "annie",
    "joan",
    "lynn",
    "sophie",
    "mary",
    "edsger",
    "donald",
    "niklaus",
    "tony",
    "john",
    "leslie",
    "whitfield",
    "shafi",
    "silvio",
    "judea",
    "raj",
]
_SUFFIX = ("", "_", "42", "dev", "x", "_irl", "99", "codes", "bot", ".exe", "2k", "o7")
_CHANNEL_WORDS = [
    "general",
    "random",
    "memes",
    "help",
    "announcements",
    "off-topic",
    "showcase",
    "music",
    "gaming",
    "dev",
    "art",
    "bots",
    "rules",
    "welcome",
    "voice-chat",
    "lounge",
    "support",
    "feedback",
    "events",
    "clips",
]
_ROLE_NAMES = (
    "@everyone",
    "Admin",
    "Moderator",
    "Helper",
    "Member",
    "Regular",
    "Muted",
    "Booster",
    "Events",
    "Artist",
    "Developer",
    "VIP",
    "Bot",
    "Verified",
    "Newbie",
    "Veteran",
)
_STATUSES = ("online", "online", "online", "idle", "dnd")
_ACTIVITIES = (
    (0, "Minecraft"),
    (0, "Factorio"),
    (2, "Spotify"),
    (3, "a movie"),
    (5, "Chess"),
    (0, "Visual Studio Code"),
    (4, "Custom Status"),
    (0, "Elden Ring"),
)


def snowflake(ms: int, rng: random.Random) -> str:
    """Return a snowflake (as a string) created at Unix time ``ms`` with random low bits."""
    return str(((ms - DISCORD_EPOCH_MS) << 22) | rng.getrandbits(22))


def iso(ms: int) -> str:
    """Return ``ms`` (Unix milliseconds) as Discord's ISO-8601 timestamp (``+00:00``)."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="microseconds")


def _hash(rng: random.Random) -> str:
    """Return a 32-hex-digit asset hash (avatars, icons, banners)."""
    return f"{rng.getrandbits(128):032x}"


def user_object(rng: random.Random, *, bot: bool = False, name: str | None = None) -> Json:
    """Return a user object with a fresh id (account created 2016-2025)."""
    created = rng.randrange(1_460_000_000_000, 1_740_000_000_000)
    username = name or rng.choice(_FIRST) + rng.choice(_SUFFIX)
    return {
        "id": snowflake(created, rng),
        "username": username,
        "discriminator": "0" if not bot else f"{rng.randrange(1, 10000):04d}",
        "global_name": None if bot else username.title().replace("_", " "),
        "avatar": _hash(rng) if rng.random() < 0.8 else None,
        "avatar_decoration_data": None,
        "bot": bot,
        "public_flags": rng.choice((0, 0, 0, 64, 128, 256, 4194304)),
        "primary_guild": None,
    }


@dataclass(frozen=True, slots=True)
class GuildModel:
    """Everything the corpus decided about one guild (read-only; build with :func:`guild_model`)."""

    guild_id: str
    seed: int
    channel_count: int  # as requested (``channels`` may hold one extra text channel)
    name: str
    owner_id: str
    created_ms: int
    roles: tuple[Json, ...]
    channels: tuple[Json, ...]
    members: tuple[Json, ...]
    emojis: tuple[Json, ...]

    @property
    def text_channel_ids(self) -> list[str]:
        """Ids of the guild's text channels (type 0)."""
        return [c["id"] for c in self.channels if c["type"] == 0]

    @property
    def voice_channel_ids(self) -> list[str]:
        """Ids of the guild's voice channels (type 2)."""
        return [c["id"] for c in self.channels if c["type"] == 2]


def _role(rng: random.Random, guild_id: str, index: int, created: int) -> Json:
    color = 0 if index == 0 else rng.getrandbits(24)
    return {
        "id": guild_id if index == 0 else snowflake(created + index * 60_000, rng),
        "name": _ROLE_NAMES[index % len(_ROLE_NAMES)],
        "description": None,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": index in (1, 2, 7),
        "icon": None,
        "unicode_emoji": None,
        "position": index,
        # Permissions are serialized as strings: they outgrow 53 bits.
        "permissions": str(8 if index == 1 else rng.getrandbits(40)),
        "managed": index == 12,
        "mentionable": index % 3 == 0,
        "flags": 0,
    }


def _channel(rng: random.Random, index: int, created: int, category: str | None) -> Json:
    kind = 4 if category is None else (2 if index % 5 == 4 else 0)
    base = _CHANNEL_WORDS[index % len(_CHANNEL_WORDS)]
    channel: Json = {
        "id": snowflake(created + index * 3_600_000, rng),
        "type": kind,
        "name": base.upper() if kind == 4 else f"{base}{'' if index < 20 else index}",
        "position": index,
        "permission_overwrites": [],
        "flags": 0,
    }
    if kind == 0:
        channel.update(
            parent_id=category,
            topic=rng.choice((None, f"Talk about {base} here. Be nice!")),
            nsfw=False,
            rate_limit_per_user=rng.choice((0, 0, 5, 30)),
            last_message_id=snowflake(BASE_TIME_MS - rng.randrange(10**7), rng),
            last_pin_timestamp=None,
        )
    elif kind == 2:
        channel.update(
            parent_id=category,
            bitrate=64000,
            user_limit=rng.choice((0, 10, 25)),
            rtc_region=None,
            video_quality_mode=1,
            nsfw=False,
            rate_limit_per_user=0,
            last_message_id=None,
        )
    return channel


def _member(
    who: random.Random, rng: random.Random, role_ids: list[str], guild_created: int
) -> Json:
    # ``who`` alone decides the user, so the same people exist whatever the role count.
    user = user_object(who, bot=who.random() < 0.04)
    joined = rng.randrange(guild_created, BASE_TIME_MS)
    picked = rng.sample(role_ids[1:], k=min(len(role_ids) - 1, rng.randrange(0, 4)))
    return {
        "user": user,
        "nick": rng.choice((None, None, None, user["username"].upper())),
        "avatar": None,
        "banner": None,
        "roles": picked,
        "joined_at": iso(joined),
        "premium_since": iso(joined + 86_400_000) if rng.random() < 0.05 else None,
        "deaf": False,
        "mute": False,
        "flags": rng.choice((0, 0, 2, 10)),
        "pending": False,
        "communication_disabled_until": None,
    }


@functools.lru_cache(maxsize=256)
def guild_model(guild_id: str, seed: int, members: int, channels: int, roles: int) -> GuildModel:
    """Return the (cached, deterministic) model of one guild."""
    rng = random.Random(f"guild:{seed}:{guild_id}")
    created = (int(guild_id) >> 22) + DISCORD_EPOCH_MS
    role_objs = [_role(rng, guild_id, i, created) for i in range(max(1, roles))]
    role_ids = [r["id"] for r in role_objs]
    chans: list[Json] = []
    category: str | None = None
    for index in range(max(1, channels)):
        if index % 6 == 0 and channels > 2:
            category = None  # every sixth channel opens a new category
        chan = _channel(rng, index, created, category)
        if chan["type"] == 4:
            category = chan["id"]
        chans.append(chan)
    if all(c["type"] != 0 for c in chans):
        chans.append(_channel(rng, len(chans), created, category or chans[0]["id"]))
    who = random.Random(f"members:{seed}:{guild_id}")
    people = [_member(who, rng, role_ids, created) for _ in range(max(1, members))]
    emojis = [
        {
            "id": snowflake(created + 10_000 * i, rng),
            "name": f"{rng.choice(_FIRST)}{rng.choice(('pog', 'lul', 'hype', 'sad', 'wave'))}",
            "roles": [],
            "require_colons": True,
            "managed": False,
            "animated": i % 4 == 0,
            "available": True,
        }
        for i in range(rng.randrange(2, 8))
    ]
    return GuildModel(
        guild_id=guild_id,
        seed=seed,
        channel_count=channels,
        name=f"{rng.choice(_FIRST).title()}'s {rng.choice(('Lab', 'Hangout', 'Guild', 'Den'))}",
        owner_id=people[0]["user"]["id"],
        created_ms=created,
        roles=tuple(role_objs),
        channels=tuple(chans),
        members=tuple(people),
        emojis=tuple(emojis),
    )


def presence(rng: random.Random, user_id: str, guild_id: str | None, now_ms: int) -> Json:
    """Return a presence object (PRESENCE_UPDATE shape; ``guild_id`` omitted when None)."""
    status = rng.choice(_STATUSES)
    activities: list[Json] = []
    if rng.random() < 0.6:
        kind, name = rng.choice(_ACTIVITIES)
        activity: Json = {
            "name": name,
            "type": kind,
            "id": f"{rng.getrandbits(64):016x}",
            "created_at": now_ms - rng.randrange(10**6),
            "timestamps": {"start": now_ms - rng.randrange(10**7)},
        }
        if kind == 4:
            activity["state"] = rng.choice(("brb", "coding", "touching grass", "🎮 gaming"))
        elif kind == 2:
            activity.update(
                details="Some Song", state="Some Artist", sync_id="6rqhFgbbKwnb9MLmUQDhG6"
            )
        activities.append(activity)
    platforms = rng.sample(("desktop", "mobile", "web"), k=rng.randrange(1, 3))
    out: Json = {
        "user": {"id": user_id},
        "status": status,
        "activities": activities,
        "client_status": dict.fromkeys(platforms, status),
    }
    if guild_id is not None:
        out["guild_id"] = guild_id
    return out
