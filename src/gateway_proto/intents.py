"""Gateway intents: every documented bit, and the privileged ones."""

from __future__ import annotations

import enum

__all__ = ["Intents"]


class Intents(enum.IntFlag):
    """Gateway intents (the ``intents`` bitfield of IDENTIFY).

    Bits 17-19, 22 and 23 are undocumented; setting them risks close code 4013, so
    they are not members here.
    """

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MODERATION = 1 << 2
    GUILD_EXPRESSIONS = 1 << 3
    GUILD_INTEGRATIONS = 1 << 4
    GUILD_WEBHOOKS = 1 << 5
    GUILD_INVITES = 1 << 6
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15
    GUILD_SCHEDULED_EVENTS = 1 << 16
    AUTO_MODERATION_CONFIGURATION = 1 << 20
    AUTO_MODERATION_EXECUTION = 1 << 21
    GUILD_MESSAGE_POLLS = 1 << 24
    DIRECT_MESSAGE_POLLS = 1 << 25

    @classmethod
    def all(cls) -> Intents:
        """Return every documented intent, privileged ones included (53608447)."""
        value = cls(0)
        for member in cls:
            value |= member
        return value

    @classmethod
    def privileged(cls) -> Intents:
        """Return the intents that must be enabled (or approved) in the Developer Portal."""
        return cls.GUILD_MEMBERS | cls.GUILD_PRESENCES | cls.MESSAGE_CONTENT

    @classmethod
    def default(cls) -> Intents:
        """Return every documented intent except the privileged ones (53575421)."""
        return cls.all() & ~cls.privileged()

    @classmethod
    def from_names(cls, names: str) -> Intents:
        """Parse a comma-separated list of intent names, case-insensitively.

        ``"guilds,guild_messages"`` gives ``GUILDS | GUILD_MESSAGES``; ``"all"``,
        ``"default"`` and ``"privileged"`` name the groups.

        Raises:
            ValueError: on an unknown name, listing the valid ones.

        """
        groups = {"all": cls.all, "default": cls.default, "privileged": cls.privileged}
        value = cls(0)
        for raw in names.split(","):
            name = raw.strip().upper()
            if not name:
                continue
            if name.lower() in groups:
                value |= groups[name.lower()]()
            elif name in cls.__members__:
                value |= cls.__members__[name]
            else:
                valid = ", ".join(m.lower() for m in cls.__members__)
                raise ValueError(f"unknown intent {raw.strip()!r}; valid names: {valid}")
        return value
