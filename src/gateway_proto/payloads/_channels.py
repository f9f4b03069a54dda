"""Channels and threads, voice states, stage instances, scheduled events, soundboard sounds."""

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake, Timestamp
from ._users import Member, User

__all__ = [
    "Channel",
    "DefaultReaction",
    "ForumTag",
    "Overwrite",
    "RecurrenceRule",
    "RecurrenceRuleNWeekday",
    "ScheduledEvent",
    "ScheduledEventEntityMetadata",
    "SoundboardSound",
    "StageInstance",
    "ThreadMember",
    "ThreadMetadata",
    "VoiceState",
]


class Overwrite(TypedDict):
    """A permission overwrite (``type`` 0: role, 1: member)."""

    id: Snowflake
    type: int
    allow: str
    deny: str


class ThreadMetadata(TypedDict):
    """A thread's archive and lock state."""

    archived: bool
    auto_archive_duration: int
    archive_timestamp: Timestamp
    locked: bool
    invitable: NotRequired[bool]
    create_timestamp: NotRequired[Timestamp | None]


class ThreadMember(TypedDict):
    """A user's membership of a thread.

    ``id`` and ``user_id`` are left out inside GUILD_CREATE; ``member`` (and
    ``presence``) come only in THREAD_MEMBERS_UPDATE and with ``with_member``.
    """

    id: NotRequired[Snowflake]
    user_id: NotRequired[Snowflake]
    join_timestamp: Timestamp
    flags: int
    member: NotRequired[Member]


class DefaultReaction(TypedDict):
    """The emoji a forum or media channel shows on new posts."""

    emoji_id: Snowflake | None
    emoji_name: str | None


class ForumTag(TypedDict):
    """A tag that can be applied to forum or media posts."""

    id: Snowflake
    name: str
    moderated: bool
    emoji_id: Snowflake | None
    emoji_name: str | None


class Channel(TypedDict):
    """A guild channel, a DM, or a thread; which fields appear depends on ``type``."""

    id: Snowflake
    type: int
    guild_id: NotRequired[Snowflake]
    position: NotRequired[int]
    permission_overwrites: NotRequired[list[Overwrite]]
    name: NotRequired[str | None]
    topic: NotRequired[str | None]
    nsfw: NotRequired[bool]
    last_message_id: NotRequired[Snowflake | None]
    bitrate: NotRequired[int]
    user_limit: NotRequired[int]
    rate_limit_per_user: NotRequired[int]
    recipients: NotRequired[list[User]]
    icon: NotRequired[str | None]
    owner_id: NotRequired[Snowflake]
    application_id: NotRequired[Snowflake | None]
    managed: NotRequired[bool]
    parent_id: NotRequired[Snowflake | None]
    last_pin_timestamp: NotRequired[Timestamp | None]
    rtc_region: NotRequired[str | None]
    video_quality_mode: NotRequired[int]
    message_count: NotRequired[int]
    member_count: NotRequired[int]
    thread_metadata: NotRequired[ThreadMetadata]
    member: NotRequired[ThreadMember]
    default_auto_archive_duration: NotRequired[int]
    permissions: NotRequired[str]
    app_permissions: NotRequired[str]
    flags: NotRequired[int]
    total_message_sent: NotRequired[int]
    available_tags: NotRequired[list[ForumTag]]
    applied_tags: NotRequired[list[Snowflake]]
    default_reaction_emoji: NotRequired[DefaultReaction | None]
    default_thread_rate_limit_per_user: NotRequired[int]
    default_sort_order: NotRequired[int | None]
    default_forum_layout: NotRequired[int]
    #: THREAD_CREATE only: ``True`` when the thread was just created.
    newly_created: NotRequired[bool]


class VoiceState(TypedDict):
    """A user's voice connection state."""

    guild_id: NotRequired[Snowflake]
    channel_id: Snowflake | None
    user_id: Snowflake
    member: NotRequired[Member]
    session_id: str
    deaf: bool
    mute: bool
    self_deaf: bool
    self_mute: bool
    self_stream: NotRequired[bool]
    self_video: bool
    suppress: bool
    request_to_speak_timestamp: Timestamp | None


class StageInstance(TypedDict):
    """A live Stage."""

    id: Snowflake
    guild_id: Snowflake
    channel_id: Snowflake
    topic: str
    privacy_level: int
    discoverable_disabled: bool
    guild_scheduled_event_id: Snowflake | None


class ScheduledEventEntityMetadata(TypedDict):
    """Where an external scheduled event takes place."""

    location: NotRequired[str]


class RecurrenceRuleNWeekday(TypedDict):
    """The n-th weekday of a month (e.g. the second Tuesday)."""

    n: int
    day: int


class RecurrenceRule(TypedDict):
    """How a scheduled event repeats."""

    start: Timestamp
    end: Timestamp | None
    frequency: int
    interval: int
    by_weekday: list[int] | None
    by_n_weekday: list[RecurrenceRuleNWeekday] | None
    by_month: list[int] | None
    by_month_day: list[int] | None
    by_year_day: list[int] | None
    count: int | None


class ScheduledEvent(TypedDict):
    """A guild scheduled event."""

    id: Snowflake
    guild_id: Snowflake
    channel_id: Snowflake | None
    creator_id: NotRequired[Snowflake | None]
    name: str
    description: NotRequired[str | None]
    scheduled_start_time: Timestamp
    scheduled_end_time: Timestamp | None
    privacy_level: int
    status: int
    entity_type: int
    entity_id: Snowflake | None
    entity_metadata: ScheduledEventEntityMetadata | None
    creator: NotRequired[User]
    user_count: NotRequired[int]
    image: NotRequired[str | None]
    recurrence_rule: RecurrenceRule | None


class SoundboardSound(TypedDict):
    """A soundboard sound (default or guild)."""

    name: str
    sound_id: Snowflake
    volume: float
    emoji_id: Snowflake | None
    emoji_name: str | None
    guild_id: NotRequired[Snowflake]
    available: bool
    user: NotRequired[User]
