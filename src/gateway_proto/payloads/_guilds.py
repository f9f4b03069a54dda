"""Guilds and what hangs off them: integrations, automod, audit log, apps, entitlements."""

from typing import Any

from typing_extensions import NotRequired, Required, TypedDict

from ._base import Snowflake, Timestamp
from ._channels import Channel, ScheduledEvent, SoundboardSound, StageInstance, VoiceState
from ._presence import Presence
from ._users import Emoji, Member, Role, Sticker, User

__all__ = [
    "AuditLogChange",
    "AuditLogEntry",
    "AuditLogEntryInfo",
    "AutoModerationAction",
    "AutoModerationActionMetadata",
    "AutoModerationRule",
    "AutoModerationTriggerMetadata",
    "Entitlement",
    "Guild",
    "GuildCreate",
    "IncidentsData",
    "Integration",
    "IntegrationAccount",
    "IntegrationApplication",
    "PartialApplication",
    "Subscription",
    "UnavailableGuild",
    "WelcomeScreen",
    "WelcomeScreenChannel",
]


class WelcomeScreenChannel(TypedDict):
    """A channel a guild's welcome screen shows."""

    channel_id: Snowflake
    description: str
    emoji_id: Snowflake | None
    emoji_name: str | None


class WelcomeScreen(TypedDict):
    """A community guild's welcome screen."""

    description: str | None
    welcome_channels: list[WelcomeScreenChannel]


class IncidentsData(TypedDict):
    """A guild's anti-raid state."""

    invites_disabled_until: Timestamp | None
    dms_disabled_until: Timestamp | None
    dm_spam_detected_at: NotRequired[Timestamp | None]
    raid_detected_at: NotRequired[Timestamp | None]


class Guild(TypedDict):
    """A guild (GUILD_UPDATE; GUILD_CREATE adds :class:`GuildCreate`'s fields)."""

    id: Snowflake
    name: str
    icon: str | None
    icon_hash: NotRequired[str | None]
    splash: str | None
    discovery_splash: str | None
    owner: NotRequired[bool]
    owner_id: Snowflake
    permissions: NotRequired[str]
    region: NotRequired[str | None]
    afk_channel_id: Snowflake | None
    afk_timeout: int
    widget_enabled: NotRequired[bool]
    widget_channel_id: NotRequired[Snowflake | None]
    verification_level: int
    default_message_notifications: int
    explicit_content_filter: int
    roles: list[Role]
    emojis: list[Emoji]
    features: list[str]
    mfa_level: int
    application_id: Snowflake | None
    system_channel_id: Snowflake | None
    system_channel_flags: int
    rules_channel_id: Snowflake | None
    max_presences: NotRequired[int | None]
    max_members: NotRequired[int]
    vanity_url_code: str | None
    description: str | None
    banner: str | None
    premium_tier: int
    premium_subscription_count: NotRequired[int]
    preferred_locale: str
    public_updates_channel_id: Snowflake | None
    max_video_channel_users: NotRequired[int]
    max_stage_video_channel_users: NotRequired[int]
    approximate_member_count: NotRequired[int]
    approximate_presence_count: NotRequired[int]
    welcome_screen: NotRequired[WelcomeScreen]
    nsfw_level: int
    stickers: NotRequired[list[Sticker]]
    premium_progress_bar_enabled: bool
    safety_alerts_channel_id: Snowflake | None
    incidents_data: IncidentsData | None


class GuildCreate(Guild):
    """GUILD_CREATE: a guild plus the state a bot needs to start with."""

    joined_at: Timestamp
    large: bool
    unavailable: NotRequired[bool]
    member_count: int
    voice_states: list[VoiceState]
    members: list[Member]
    channels: list[Channel]
    threads: list[Channel]
    presences: list[Presence]
    stage_instances: list[StageInstance]
    guild_scheduled_events: list[ScheduledEvent]
    soundboard_sounds: list[SoundboardSound]


class UnavailableGuild(TypedDict):
    """A guild known by ID only (READY's guilds, GUILD_DELETE).

    In GUILD_DELETE, ``unavailable`` absent means the bot left or was removed.
    """

    id: Snowflake
    unavailable: NotRequired[bool]


class IntegrationAccount(TypedDict):
    """The account behind an integration."""

    id: str
    name: str


class IntegrationApplication(TypedDict):
    """The application of a bot or OAuth2 integration."""

    id: Snowflake
    name: str
    icon: str | None
    description: str
    bot: NotRequired[User]


class Integration(TypedDict):
    """A guild integration."""

    id: Snowflake
    name: str
    type: str
    enabled: bool
    syncing: NotRequired[bool]
    role_id: NotRequired[Snowflake]
    enable_emoticons: NotRequired[bool]
    expire_behavior: NotRequired[int]
    expire_grace_period: NotRequired[int]
    user: NotRequired[User]
    account: IntegrationAccount
    synced_at: NotRequired[Timestamp]
    subscriber_count: NotRequired[int]
    revoked: NotRequired[bool]
    application: NotRequired[IntegrationApplication]
    scopes: NotRequired[list[str]]


class AutoModerationTriggerMetadata(TypedDict, total=False):
    """Trigger settings; which fields apply depends on the rule's ``trigger_type``."""

    keyword_filter: list[str]
    regex_patterns: list[str]
    presets: list[int]
    allow_list: list[str]
    mention_total_limit: int
    mention_raid_protection_enabled: bool


class AutoModerationActionMetadata(TypedDict, total=False):
    """Settings of an action; which fields apply depends on its ``type``."""

    channel_id: Snowflake
    duration_seconds: int
    custom_message: str


class AutoModerationAction(TypedDict):
    """What an automod rule does when it triggers."""

    type: int
    metadata: NotRequired[AutoModerationActionMetadata]


class AutoModerationRule(TypedDict):
    """An automod rule."""

    id: Snowflake
    guild_id: Snowflake
    name: str
    creator_id: Snowflake
    event_type: int
    trigger_type: int
    trigger_metadata: AutoModerationTriggerMetadata
    actions: list[AutoModerationAction]
    enabled: bool
    exempt_roles: list[Snowflake]
    exempt_channels: list[Snowflake]


class AuditLogChange(TypedDict):
    """One changed field of an audit log entry (values keep the field's own type)."""

    new_value: NotRequired[Any]
    old_value: NotRequired[Any]
    key: str


class AuditLogEntryInfo(TypedDict, total=False):
    """Extra information some audit log actions carry."""

    application_id: Snowflake
    auto_moderation_rule_name: str
    auto_moderation_rule_trigger_type: str
    channel_id: Snowflake
    count: str
    delete_member_days: str
    id: Snowflake
    members_removed: str
    message_id: Snowflake
    role_name: str
    type: str
    integration_type: str
    status: str


class AuditLogEntry(TypedDict):
    """An audit log entry."""

    target_id: str | None
    changes: NotRequired[list[AuditLogChange]]
    user_id: Snowflake | None
    id: Snowflake
    action_type: int
    options: NotRequired[AuditLogEntryInfo]
    reason: NotRequired[str]


class PartialApplication(TypedDict, total=False):
    """An application as READY and messages carry it (only ``id`` is certain)."""

    id: Required[Snowflake]
    flags: int
    name: str
    icon: str | None
    description: str
    bot: User


class Entitlement(TypedDict):
    """A user's or guild's access to a premium offering (SKU)."""

    id: Snowflake
    sku_id: Snowflake
    application_id: Snowflake
    user_id: NotRequired[Snowflake]
    type: int
    deleted: bool
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    guild_id: NotRequired[Snowflake]
    consumed: NotRequired[bool]


class Subscription(TypedDict):
    """A user's recurring payment for SKUs."""

    id: Snowflake
    user_id: Snowflake
    sku_ids: list[Snowflake]
    entitlement_ids: list[Snowflake]
    renewal_sku_ids: list[Snowflake] | None
    current_period_start: Timestamp
    current_period_end: Timestamp
    status: int
    canceled_at: Timestamp | None
    country: NotRequired[str]
