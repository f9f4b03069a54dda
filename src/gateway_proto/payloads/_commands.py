"""Payloads an application sends (their ``d``), and HELLO's.

The core builds these from :mod:`gateway_proto.commands`; the types are here for
code that reads ``send`` events (``event.data["d"]``) or builds a
:class:`~gateway_proto.commands.RawCommand` by hand.
"""

from typing import Any

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake

__all__ = [
    "ActivityUpdate",
    "GatewayPayload",
    "HelloData",
    "IdentifyCommand",
    "IdentifyProperties",
    "RequestChannelInfoCommand",
    "RequestGuildMembersCommand",
    "RequestSoundboardSoundsCommand",
    "ResumeCommand",
    "UpdatePresenceCommand",
    "UpdateVoiceStateCommand",
]


class GatewayPayload(TypedDict):
    """The envelope of every gateway message (``s`` and ``t`` are ``None`` unless ``op`` is 0)."""

    op: int
    d: Any
    s: NotRequired[int | None]
    t: NotRequired[str | None]


class HelloData(TypedDict):
    """HELLO (op 10): the heartbeat interval in milliseconds."""

    heartbeat_interval: int


class IdentifyProperties(TypedDict):
    """Identify's connection properties."""

    os: str
    browser: str
    device: str


class ActivityUpdate(TypedDict):
    """An activity as a bot may set it (bots can set only these fields)."""

    name: str
    type: int
    url: NotRequired[str | None]
    state: NotRequired[str | None]


class UpdatePresenceCommand(TypedDict):
    """Update Presence (op 3), also Identify's ``presence``."""

    since: int | None
    activities: list[ActivityUpdate]
    status: str
    afk: bool


class IdentifyCommand(TypedDict):
    """Identify (op 2)."""

    token: str
    properties: IdentifyProperties
    compress: NotRequired[bool]
    large_threshold: NotRequired[int]
    shard: NotRequired[list[int]]
    presence: NotRequired[UpdatePresenceCommand]
    intents: int


class ResumeCommand(TypedDict):
    """Resume (op 6)."""

    token: str
    session_id: str
    seq: int


class RequestGuildMembersCommand(TypedDict):
    """Request Guild Members (op 8): give ``query`` and ``limit``, or ``user_ids``."""

    guild_id: Snowflake
    query: NotRequired[str]
    limit: NotRequired[int]
    presences: NotRequired[bool]
    user_ids: NotRequired[Snowflake | list[Snowflake]]
    nonce: NotRequired[str]


class RequestSoundboardSoundsCommand(TypedDict):
    """Request Soundboard Sounds (op 31)."""

    guild_ids: list[Snowflake]


class RequestChannelInfoCommand(TypedDict):
    """Request Channel Info (op 43): ``fields`` among ``"status"`` and ``"voice_start_time"``."""

    guild_id: Snowflake
    fields: list[str]


class UpdateVoiceStateCommand(TypedDict):
    """Update Voice State (op 4): join, move (``channel_id``) or leave (``None``)."""

    guild_id: Snowflake
    channel_id: Snowflake | None
    self_mute: bool
    self_deaf: bool
