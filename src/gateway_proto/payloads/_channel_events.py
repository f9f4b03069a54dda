"""The ``d`` of the channel dispatch events.

Channels, threads and their members, pins, voice channel status (and
application command permissions).

One job: these payload types; the table from event name to type is
:data:`gateway_proto.payloads._events.DISPATCH_EVENTS`.
"""

from typing import TypeAlias

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake, Timestamp
from ._channels import Channel, ThreadMember
from ._interactions import ApplicationCommandPermissions
from ._presence import Presence

__all__ = [
    "ApplicationCommandPermissionsUpdate",
    "ChannelCreate",
    "ChannelDelete",
    "ChannelInfo",
    "ChannelInfoChannel",
    "ChannelPinsUpdate",
    "ChannelUpdate",
    "ThreadCreate",
    "ThreadDelete",
    "ThreadListSync",
    "ThreadMemberUpdate",
    "ThreadMemberWithPresence",
    "ThreadMembersUpdate",
    "ThreadUpdate",
    "VoiceChannelStartTimeUpdate",
    "VoiceChannelStatusUpdate",
]

# -- channels and threads ----------------------------------------------------------

ApplicationCommandPermissionsUpdate: TypeAlias = ApplicationCommandPermissions
ChannelCreate: TypeAlias = Channel
ChannelUpdate: TypeAlias = Channel
ChannelDelete: TypeAlias = Channel
ThreadCreate: TypeAlias = Channel
ThreadUpdate: TypeAlias = Channel


class ChannelInfoChannel(TypedDict):
    """Ephemeral data of one channel in CHANNEL_INFO."""

    id: Snowflake
    status: NotRequired[str | None]
    voice_start_time: NotRequired[int | None]


class ChannelInfo(TypedDict):
    """CHANNEL_INFO: the answer to Request Channel Info."""

    guild_id: Snowflake
    channels: list[ChannelInfoChannel]


class ChannelPinsUpdate(TypedDict):
    """CHANNEL_PINS_UPDATE: a message was pinned or unpinned."""

    guild_id: NotRequired[Snowflake]
    channel_id: Snowflake
    last_pin_timestamp: NotRequired[Timestamp | None]


class VoiceChannelStatusUpdate(TypedDict):
    """VOICE_CHANNEL_STATUS_UPDATE: a voice channel's status text changed."""

    id: Snowflake
    guild_id: Snowflake
    status: str | None


class VoiceChannelStartTimeUpdate(TypedDict):
    """VOICE_CHANNEL_START_TIME_UPDATE: a voice channel's session start time changed."""

    id: Snowflake
    guild_id: Snowflake
    voice_start_time: NotRequired[int | None]


class ThreadDelete(TypedDict):
    """THREAD_DELETE: the deleted thread, by its IDs and type only."""

    id: Snowflake
    guild_id: Snowflake
    parent_id: Snowflake | None
    type: int


class ThreadListSync(TypedDict):
    """THREAD_LIST_SYNC: the active threads of channels the bot gained access to."""

    guild_id: Snowflake
    channel_ids: NotRequired[list[Snowflake]]
    threads: list[Channel]
    members: list[ThreadMember]


class ThreadMemberUpdate(ThreadMember):
    """THREAD_MEMBER_UPDATE: the bot's own thread member, with the guild's ID."""

    guild_id: Snowflake


class ThreadMemberWithPresence(ThreadMember):
    """A thread member as THREAD_MEMBERS_UPDATE adds it (with member and presence)."""

    presence: NotRequired[Presence | None]


class ThreadMembersUpdate(TypedDict):
    """THREAD_MEMBERS_UPDATE: users were added to or removed from a thread."""

    id: Snowflake
    guild_id: Snowflake
    member_count: int
    added_members: NotRequired[list[ThreadMemberWithPresence]]
    removed_member_ids: NotRequired[list[Snowflake]]
