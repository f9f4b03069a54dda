"""The ``d`` of the user dispatch events.

Presence, typing, the bot's user, voice and webhooks.

One job: these payload types; the table from event name to type is
:data:`gateway_proto.payloads._events.DISPATCH_EVENTS`.
"""

from typing import TypeAlias

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake
from ._channels import VoiceState
from ._presence import Presence
from ._users import Member, PartialEmoji, User

__all__ = [
    "PresenceUpdate",
    "TypingStart",
    "UserUpdate",
    "VoiceChannelEffectSend",
    "VoiceServerUpdate",
    "VoiceStateUpdate",
    "WebhooksUpdate",
]

# -- presence, typing, users, voice, webhooks ---------------------------------------------

PresenceUpdate: TypeAlias = Presence
UserUpdate: TypeAlias = User
VoiceStateUpdate: TypeAlias = VoiceState


class TypingStart(TypedDict):
    """TYPING_START (``timestamp`` in Unix seconds)."""

    channel_id: Snowflake
    guild_id: NotRequired[Snowflake]
    user_id: Snowflake
    timestamp: int
    member: NotRequired[Member]


class VoiceChannelEffectSend(TypedDict):
    """VOICE_CHANNEL_EFFECT_SEND: an emoji reaction or a soundboard sound in voice."""

    channel_id: Snowflake
    guild_id: Snowflake
    user_id: Snowflake
    emoji: NotRequired[PartialEmoji | None]
    animation_type: NotRequired[int | None]
    animation_id: NotRequired[int]
    sound_id: NotRequired[Snowflake | int]
    sound_volume: NotRequired[float]


class VoiceServerUpdate(TypedDict):
    """VOICE_SERVER_UPDATE: where to connect for voice (``endpoint`` ``None``: wait for another)."""

    token: str
    guild_id: Snowflake
    endpoint: str | None


class WebhooksUpdate(TypedDict):
    """WEBHOOKS_UPDATE: a channel's webhooks changed."""

    guild_id: Snowflake
    channel_id: Snowflake
