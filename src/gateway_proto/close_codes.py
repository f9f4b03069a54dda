"""Close codes of the gateway, and what a client should do after each.

Theory of operation: every close falls into one of three outcomes
(:class:`CloseAction`): *resume* (the session survives: reconnect to the resume
URL and send RESUME), *identify* (the session is gone: reconnect and IDENTIFY
afresh), or *fatal* (stop; reconnecting will fail the same way). Codes Discord does
not document are treated as resumable, as Discord's docs advise for a drop with no
close code at all, and as the widely used libraries do.
"""

from __future__ import annotations

import enum

__all__ = [
    "RESUMABLE_CLOSE",
    "CloseAction",
    "CloseCode",
    "action_for_close",
    "close_code_meaning",
    "is_fatal",
    "is_sendable",
    "keeps_session",
]


class CloseCode(enum.IntEnum):
    """Close codes the Discord gateway sends (4006 is unused)."""

    UNKNOWN_ERROR = 4000
    UNKNOWN_OPCODE = 4001
    DECODE_ERROR = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SEQ = 4007
    RATE_LIMITED = 4008
    SESSION_TIMED_OUT = 4009
    INVALID_SHARD = 4010
    SHARDING_REQUIRED = 4011
    INVALID_API_VERSION = 4012
    INVALID_INTENTS = 4013
    DISALLOWED_INTENTS = 4014


class CloseAction(enum.Enum):
    """What to do after a close."""

    RESUME = "resume"
    IDENTIFY = "identify"
    FATAL = "fatal"


#: The code the client closes with when it wants to keep the session resumable
#: (zombie connection, op 7, a planned restart). 1000 and 1001 would invalidate it.
RESUMABLE_CLOSE = 4000

_MEANINGS: dict[int, str] = {
    4000: "unknown error; reconnect and resume",
    4001: "unknown opcode, or an invalid payload for an opcode",
    4002: "decode error: a payload could not be decoded or was over 4096 bytes",
    4003: "not authenticated: sent a payload before identifying, or the session was invalidated",
    4004: "authentication failed: the token is invalid",
    4005: "already authenticated: identify was sent more than once",
    4007: "invalid seq: the sequence sent with resume was invalid",
    4008: "rate limited: more than 120 payloads in 60 seconds",
    4009: "session timed out",
    4010: "invalid shard",
    4011: "sharding required: too many guilds for one session",
    4012: "invalid API version",
    4013: "invalid intents: the bitfield has undefined bits or is miscalculated",
    4014: "disallowed intents: a privileged intent is not enabled or approved",
    1000: "normal closure; the session is invalidated",
    1001: "going away; the session is invalidated",
    1006: "connection lost without a close frame",
}

_FATAL = frozenset({4004, 4010, 4011, 4012, 4013, 4014})
# The session is gone after these: a new one must be identified.
_NEEDS_IDENTIFY = frozenset({4003, 4007, 4009})


def close_code_meaning(code: int | None) -> str:
    """Return a short human description of a close code (``None``: no close frame)."""
    if code is None:
        return "connection lost without a close frame"
    return _MEANINGS.get(code, f"close code {code}")


def is_fatal(code: int | None) -> bool:
    """Whether reconnecting after a server close with this code is pointless."""
    return code in _FATAL


def is_sendable(code: int) -> bool:
    """Whether a client may put ``code`` in a close frame (RFC 6455, section 7.4).

    1000-1003 and 1007-1014 are the protocol's, 3000-4999 applications'; 1004,
    1005, 1006 and 1015 must never be sent.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def keeps_session(code: int) -> bool:
    """Whether a *client* close with this code leaves the session resumable.

    Closing with 1000 or 1001 tells Discord the bot is going offline, which
    invalidates the session; every other code keeps it.
    """
    return code not in (1000, 1001)


def action_for_close(code: int | None) -> CloseAction:
    """Classify a close received from the server (``None``: no close frame, EOF)."""
    if code in _FATAL:
        return CloseAction.FATAL
    if code in _NEEDS_IDENTIFY:
        return CloseAction.IDENTIFY
    return CloseAction.RESUME
