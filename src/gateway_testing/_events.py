"""Builders of the everyday dispatches (messages, typing, presences, reactions, voice, ...).

Theory of operation: :class:`EventMaker` holds one seeded :class:`random.Random`, a
clock in Unix milliseconds that moves forward a little with every event, and the
guild models to draw people and rooms from. Each ``make_*`` method returns one
``(event name, data)`` pair shaped like Discord's (PROTOCOL.md section 13 and the
gateway-events docs). Sizes follow the real gateway: a plain MESSAGE_CREATE is
about 0.8-1.5 KB of JSON, one with embeds 1.5-3 KB.
"""

from __future__ import annotations

import random
from typing import Any

from gateway_testing._guilds import guild_create
from gateway_testing._objects import GuildModel, iso, presence, snowflake

__all__ = ["EventMaker"]

Json = Any

_WORDS = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "is",
    "it",
    "that",
    "you",
    "for",
    "this",
    "on",
    "with",
    "be",
    "have",
    "not",
    "are",
    "just",
    "like",
    "what",
    "so",
    "can",
    "we",
    "do",
    "if",
    "but",
    "my",
    "was",
    "at",
    "your",
    "all",
    "about",
    "get",
    "will",
    "it's",
    "lol",
    "yeah",
    "no",
    "how",
    "when",
    "here",
    "bot",
    "server",
    "code",
    "python",
    "async",
    "await",
    "gateway",
    "shard",
    "discord",
    "message",
    "test",
    "works",
    "broken",
    "fixed",
    "deploy",
    "merge",
    "tonight",
    "tomorrow",
    "anyone",
    "know",
    "why",
    "does",
    "this",
    "happen",
    "thanks",
    "nice",
    "gg",
]
_DOMAINS = ("github.com", "youtube.com", "docs.python.org", "en.wikipedia.org", "xkcd.com")
_FILES = (("image.png", "image/png"), ("screenshot.jpg", "image/jpeg"), ("log.txt", "text/plain"))
_UNICODE_EMOJI = ("👍", "😂", "❤️", "🎉", "🔥", "👀", "✅", "🙏")
_COMMANDS = ("ping", "help", "rank", "play", "poll", "remind", "ban", "weather")

# Cumulative weights of the mix (out of 10000), most frequent first: roughly what a busy
# bot sees with the message, typing, presence and reaction intents on. Outages are rare
# (1 in 2000) because each one re-sends a whole GUILD_CREATE.
_MIX = (
    ("MESSAGE_CREATE", 3800),
    ("TYPING_START", 5500),
    ("PRESENCE_UPDATE", 7000),
    ("MESSAGE_REACTION_ADD", 7900),
    ("MESSAGE_UPDATE", 8400),
    ("GUILD_MEMBER_UPDATE", 8800),
    ("VOICE_STATE_UPDATE", 9200),
    ("MESSAGE_DELETE", 9500),
    ("INTERACTION_CREATE", 9800),
    ("MESSAGE_REACTION_REMOVE", 9995),
    ("GUILD_CREATE", 10000),  # an outage ending: GUILD_DELETE (unavailable) then GUILD_CREATE
)


class EventMaker:
    """A deterministic source of everyday dispatches over a set of guild models."""

    def __init__(self, rng: random.Random, guilds: list[GuildModel], start_ms: int) -> None:
        self.rng = rng
        self.guilds = guilds
        self.now = start_ms
        self.recent: list[tuple[str, str, str, str]] = []  # (guild, channel, message, author)

    # -- helpers -------------------------------------------------------------------------

    def _tick(self) -> int:
        self.now += self.rng.randrange(1, 400)
        return self.now

    def _text(self, low: int, high: int) -> str:
        words = self.rng.choices(_WORDS, k=self.rng.randrange(low, high))
        return " ".join(words).capitalize()

    def _pick(self) -> tuple[GuildModel, Json, str]:
        guild = self.rng.choice(self.guilds)
        member = self.rng.choice(guild.members)
        return guild, member, self.rng.choice(guild.text_channel_ids)

    @staticmethod
    def _partial_member(member: Json) -> Json:
        """Return the member as message events carry it: without ``user``."""
        return {k: v for k, v in member.items() if k != "user"}

    # -- the events ----------------------------------------------------------------------

    def make(self) -> list[tuple[str, Json]]:
        """Return the next event (or, for an outage, the GUILD_DELETE/GUILD_CREATE pair)."""
        roll = self.rng.randrange(10000)
        name = next(n for n, limit in _MIX if roll < limit)
        if name == "GUILD_CREATE":
            return self.make_outage()
        return [(name, getattr(self, f"make_{name.lower()}")())]

    def make_message_create(self, *, embeds: bool | None = None) -> Json:
        """Return a MESSAGE_CREATE: some with mentions, embeds or attachments."""
        guild, member, channel_id = self._pick()
        now = self._tick()
        message_id = snowflake(now, self.rng)
        author = member["user"]
        mentions = []
        content = self._text(3, 40)
        if self.rng.random() < 0.15:
            other = self.rng.choice(guild.members)
            mentions.append({**other["user"], "member": self._partial_member(other)})
            content = f"<@{other['user']['id']}> {content}"
        want_embeds = author["bot"] or self.rng.random() < 0.1 if embeds is None else embeds
        message: Json = {
            "type": 0,
            "tts": False,
            "timestamp": iso(now),
            "pinned": False,
            "nonce": str(int(message_id) + self.rng.randrange(1, 999)),
            "mentions": mentions,
            "mention_roles": [],
            "mention_everyone": False,
            "member": self._partial_member(member),
            "id": message_id,
            "flags": 0,
            "embeds": self._embeds() if want_embeds else [],
            "edited_timestamp": None,
            "content": content,
            "components": [],
            "channel_type": 0,
            "channel_id": channel_id,
            "author": author,
            "attachments": self._attachments(now) if self.rng.random() < 0.08 else [],
            "guild_id": guild.guild_id,
        }
        self.recent.append((guild.guild_id, channel_id, message_id, author["id"]))
        del self.recent[:-50]
        return message

    def _embeds(self) -> list[Json]:
        if self.rng.random() < 0.5:
            domain = self.rng.choice(_DOMAINS)
            url = f"https://{domain}/{self.rng.getrandbits(40):x}"
            return [
                {
                    "type": "article",
                    "url": url,
                    "title": self._text(3, 10),
                    "description": self._text(10, 40),
                    "provider": {"name": domain.split(".")[0].title()},
                    "thumbnail": {
                        "url": f"{url}/thumb.png",
                        "proxy_url": f"https://images-ext-1.discordapp.net/external/{url[8:]}",
                        "width": 1200,
                        "height": 630,
                        "flags": 0,
                    },
                    "content_scan_version": 2,
                }
            ]
        return [
            {
                "type": "rich",
                "title": self._text(2, 8),
                "description": self._text(10, 60),
                "color": self.rng.getrandbits(24),
                "fields": [
                    {"name": self._text(1, 3), "value": self._text(2, 12), "inline": i % 2 == 0}
                    for i in range(self.rng.randrange(1, 5))
                ],
                "footer": {"text": "Powered by a bot"},
                "timestamp": iso(self.now),
            }
        ]

    def _attachments(self, now: int) -> list[Json]:
        filename, content_type = self.rng.choice(_FILES)
        attachment_id = snowflake(now, self.rng)
        url = f"https://cdn.discordapp.com/attachments/{attachment_id}/{filename}"
        out: Json = {
            "id": attachment_id,
            "filename": filename,
            "size": self.rng.randrange(1_000, 8_000_000),
            "url": f"{url}?ex={self.rng.getrandbits(32):08x}",
            "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
            "content_type": content_type,
            "content_scan_version": 2,
        }
        if content_type.startswith("image/"):
            out.update(width=self.rng.randrange(200, 2000), height=self.rng.randrange(200, 2000))
        return [out]

    def make_message_update(self) -> Json:
        """Return a MESSAGE_UPDATE: a full message with ``edited_timestamp`` set."""
        message = self.make_message_create(embeds=False)
        self.recent.pop()
        message["edited_timestamp"] = iso(self._tick())
        message["content"] += " (edit: typo)"
        return message

    def make_message_delete(self) -> Json:
        """Return a MESSAGE_DELETE of a recent message (or a made-up one)."""
        if self.recent:
            guild_id, channel_id, message_id, _ = self.recent.pop(0)
            return {"id": message_id, "channel_id": channel_id, "guild_id": guild_id}
        guild, _, channel_id = self._pick()
        return {
            "id": snowflake(self._tick(), self.rng),
            "channel_id": channel_id,
            "guild_id": guild.guild_id,
        }

    def make_typing_start(self) -> Json:
        """Return a TYPING_START (``timestamp`` in Unix seconds, as Discord sends it)."""
        guild, member, channel_id = self._pick()
        return {
            "user_id": member["user"]["id"],
            "timestamp": self._tick() // 1000,
            "member": member,
            "channel_id": channel_id,
            "guild_id": guild.guild_id,
        }

    def make_presence_update(self) -> Json:
        """Return a PRESENCE_UPDATE with activities and ``client_status``."""
        guild, member, _ = self._pick()
        return presence(self.rng, member["user"]["id"], guild.guild_id, self._tick())

    def _reaction(self, *, add: bool) -> Json:
        guild, member, channel_id = self._pick()
        if self.recent:
            _, channel_id, message_id, author_id = self.rng.choice(self.recent)
        else:
            message_id, author_id = snowflake(self._tick(), self.rng), member["user"]["id"]
        if self.rng.random() < 0.7:
            emoji: Json = {"id": None, "name": self.rng.choice(_UNICODE_EMOJI)}
        else:
            custom = self.rng.choice(guild.emojis)
            emoji = {"id": custom["id"], "name": custom["name"], "animated": custom["animated"]}
        data: Json = {
            "user_id": member["user"]["id"],
            "type": 0,
            "message_id": message_id,
            "emoji": emoji,
            "channel_id": channel_id,
            "burst": False,
            "guild_id": guild.guild_id,
        }
        if add:
            data.update(member=member, message_author_id=author_id, burst_colors=[])
        self._tick()
        return data

    def make_message_reaction_add(self) -> Json:
        """Return a MESSAGE_REACTION_ADD (unicode or custom emoji, with ``member``)."""
        return self._reaction(add=True)

    def make_message_reaction_remove(self) -> Json:
        """Return a MESSAGE_REACTION_REMOVE."""
        return self._reaction(add=False)

    def make_guild_member_update(self) -> Json:
        """Return a GUILD_MEMBER_UPDATE (a nickname or role change)."""
        guild, member, _ = self._pick()
        self._tick()
        roles = [r["id"] for r in self.rng.sample(guild.roles[1:], k=min(2, len(guild.roles) - 1))]
        return {
            **member,
            "guild_id": guild.guild_id,
            "roles": roles,
            "nick": self.rng.choice((None, f"{member['user']['username']} 🌙")),
        }

    def make_voice_state_update(self) -> Json:
        """Return a VOICE_STATE_UPDATE of a member joining, moving or leaving voice."""
        guild, member, _ = self._pick()
        voice = guild.voice_channel_ids
        return {
            "member": member,
            "user_id": member["user"]["id"],
            "suppress": False,
            "session_id": f"{self.rng.getrandbits(128):032x}",
            "self_video": False,
            "self_mute": self.rng.random() < 0.3,
            "self_deaf": False,
            "request_to_speak_timestamp": None,
            "mute": False,
            "guild_id": guild.guild_id,
            "deaf": False,
            "channel_id": self.rng.choice(voice) if voice and self.rng.random() < 0.8 else None,
            "self_stream": False,
        }

    def make_interaction_create(self) -> Json:
        """Return an INTERACTION_CREATE for a slash command (type 2)."""
        guild, member, channel_id = self._pick()
        now = self._tick()
        command = self.rng.choice(_COMMANDS)
        return {
            "version": 1,
            "type": 2,
            "token": f"aW50ZXJhY3Rpb246{self.rng.getrandbits(256):064x}",
            "member": {**member, "permissions": str(self.rng.getrandbits(40))},
            "locale": "en-US",
            "id": snowflake(now, self.rng),
            "guild_locale": "en-US",
            "guild_id": guild.guild_id,
            "guild": {"locale": "en-US", "id": guild.guild_id, "features": []},
            "entitlements": [],
            "entitlement_sku_ids": [],
            "data": {
                "type": 1,
                "name": command,
                "id": snowflake(guild.created_ms + 1000, self.rng),
                "options": [{"type": 3, "name": "query", "value": self._text(1, 4)}],
            },
            "context": 0,
            "channel_id": channel_id,
            "channel": {
                "type": 0,
                "id": channel_id,
                "guild_id": guild.guild_id,
                "name": "general",
                "flags": 0,
                "permissions": "2248473465835073",
            },
            "authorizing_integration_owners": {"0": guild.guild_id},
            "attachment_size_limit": 10485760,
            "app_permissions": "2248473465835073",
            "application_id": "1158427385231155251",
        }

    def make_outage(self) -> list[tuple[str, Json]]:
        """Return a guild going unavailable and coming back (GUILD_DELETE, GUILD_CREATE)."""
        guild = self.rng.choice(self.guilds)
        self._tick()
        again = guild_create(
            guild.guild_id,
            seed=guild.seed,
            members=len(guild.members),
            channels=guild.channel_count,
            roles=len(guild.roles),
        )
        return [
            ("GUILD_DELETE", {"id": guild.guild_id, "unavailable": True}),
            ("GUILD_CREATE", again),
        ]
