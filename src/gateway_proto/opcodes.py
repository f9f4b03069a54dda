"""Gateway opcodes (API v10)."""

from __future__ import annotations

import enum

__all__ = ["Opcode"]


class Opcode(enum.IntEnum):
    """Gateway payload opcodes.

    Unknown opcodes received from the peer are never an error here: the connection
    keeps them as plain ints, because Discord adds opcodes without a version bump.
    """

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11
    REQUEST_SOUNDBOARD_SOUNDS = 31
    REQUEST_CHANNEL_INFO = 43
