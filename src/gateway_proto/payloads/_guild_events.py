"""The ``d`` of the guild dispatch events.

Auto moderation, entitlements and subscriptions, stage instances, guilds
and their members, roles, bans, emojis, stickers, scheduled events and
soundboard, integrations, interactions and invites.

One job: these payload types; the table from event name to type is
:data:`gateway_proto.payloads._events.DISPATCH_EVENTS`.
"""

from typing import TypeAlias

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake, Timestamp
from ._channels import ScheduledEvent, SoundboardSound, StageInstance
from ._guilds import (
    AuditLogEntry,
    AutoModerationAction,
    AutoModerationRule,
    Entitlement,
    Guild,
    Integration,
    PartialApplication,
    Subscription,
    UnavailableGuild,
)
from ._interactions import Interaction
from ._presence import Presence
from ._users import AvatarDecorationData, Collectibles, Emoji, Member, Role, Sticker, User

__all__ = [
    "AutoModerationActionExecution",
    "AutoModerationRuleCreate",
    "AutoModerationRuleDelete",
    "AutoModerationRuleUpdate",
    "EntitlementCreate",
    "EntitlementDelete",
    "EntitlementUpdate",
    "GuildAuditLogEntryCreate",
    "GuildBan",
    "GuildBanAdd",
    "GuildBanRemove",
    "GuildDelete",
    "GuildEmojisUpdate",
    "GuildIntegration",
    "GuildIntegrationsUpdate",
    "GuildMemberAdd",
    "GuildMemberRemove",
    "GuildMemberUpdate",
    "GuildMembersChunk",
    "GuildRole",
    "GuildRoleCreate",
    "GuildRoleDelete",
    "GuildRoleUpdate",
    "GuildScheduledEventCreate",
    "GuildScheduledEventDelete",
    "GuildScheduledEventUpdate",
    "GuildScheduledEventUser",
    "GuildScheduledEventUserAdd",
    "GuildScheduledEventUserRemove",
    "GuildSoundboardSoundCreate",
    "GuildSoundboardSoundDelete",
    "GuildSoundboardSoundUpdate",
    "GuildSoundboardSounds",
    "GuildSoundboardSoundsUpdate",
    "GuildStickersUpdate",
    "GuildUpdate",
    "IntegrationCreate",
    "IntegrationDelete",
    "IntegrationUpdate",
    "InteractionCreate",
    "InviteCreate",
    "InviteDelete",
    "SoundboardSounds",
    "StageInstanceCreate",
    "StageInstanceDelete",
    "StageInstanceUpdate",
    "SubscriptionCreate",
    "SubscriptionDelete",
    "SubscriptionUpdate",
]

# -- auto moderation -------------------------------------------------------------

AutoModerationRuleCreate: TypeAlias = AutoModerationRule
AutoModerationRuleUpdate: TypeAlias = AutoModerationRule
AutoModerationRuleDelete: TypeAlias = AutoModerationRule


class AutoModerationActionExecution(TypedDict):
    """AUTO_MODERATION_ACTION_EXECUTION: a rule triggered and an action ran."""

    guild_id: Snowflake
    action: AutoModerationAction
    rule_id: Snowflake
    rule_trigger_type: int
    user_id: Snowflake
    channel_id: NotRequired[Snowflake]
    message_id: NotRequired[Snowflake]
    alert_system_message_id: NotRequired[Snowflake]
    content: str
    matched_keyword: str | None
    matched_content: str | None


# -- entitlements, subscriptions, stage instances ----------------------------------------

EntitlementCreate: TypeAlias = Entitlement
EntitlementUpdate: TypeAlias = Entitlement
EntitlementDelete: TypeAlias = Entitlement
SubscriptionCreate: TypeAlias = Subscription
SubscriptionUpdate: TypeAlias = Subscription
SubscriptionDelete: TypeAlias = Subscription
StageInstanceCreate: TypeAlias = StageInstance
StageInstanceUpdate: TypeAlias = StageInstance
StageInstanceDelete: TypeAlias = StageInstance


# -- guilds ------------------------------------------------------------------------

GuildUpdate: TypeAlias = Guild
GuildDelete: TypeAlias = UnavailableGuild


class GuildAuditLogEntryCreate(AuditLogEntry):
    """GUILD_AUDIT_LOG_ENTRY_CREATE: an audit log entry with its guild's ID."""

    guild_id: Snowflake


class GuildBan(TypedDict):
    """GUILD_BAN_ADD and GUILD_BAN_REMOVE."""

    guild_id: Snowflake
    user: User


GuildBanAdd: TypeAlias = GuildBan
GuildBanRemove: TypeAlias = GuildBan


class GuildEmojisUpdate(TypedDict):
    """GUILD_EMOJIS_UPDATE: the guild's emojis, all of them."""

    guild_id: Snowflake
    emojis: list[Emoji]


class GuildStickersUpdate(TypedDict):
    """GUILD_STICKERS_UPDATE: the guild's stickers, all of them."""

    guild_id: Snowflake
    stickers: list[Sticker]


class GuildIntegrationsUpdate(TypedDict):
    """GUILD_INTEGRATIONS_UPDATE: something about the guild's integrations changed."""

    guild_id: Snowflake


class GuildMemberAdd(Member):
    """GUILD_MEMBER_ADD: the new member, with the guild's ID."""

    guild_id: Snowflake


class GuildMemberRemove(TypedDict):
    """GUILD_MEMBER_REMOVE: a user left, was kicked or banned."""

    guild_id: Snowflake
    user: User


class GuildMemberUpdate(TypedDict):
    """GUILD_MEMBER_UPDATE: a member (or its user) changed."""

    guild_id: Snowflake
    roles: list[Snowflake]
    user: User
    nick: NotRequired[str | None]
    avatar: str | None
    banner: str | None
    joined_at: Timestamp | None
    premium_since: NotRequired[Timestamp | None]
    deaf: NotRequired[bool]
    mute: NotRequired[bool]
    pending: NotRequired[bool]
    communication_disabled_until: NotRequired[Timestamp | None]
    avatar_decoration_data: NotRequired[AvatarDecorationData | None]
    collectibles: NotRequired[Collectibles | None]


class GuildMembersChunk(TypedDict):
    """GUILD_MEMBERS_CHUNK: one chunk of the answer to Request Guild Members."""

    guild_id: Snowflake
    members: list[Member]
    chunk_index: int
    chunk_count: int
    not_found: NotRequired[list[Snowflake]]
    presences: NotRequired[list[Presence]]
    nonce: NotRequired[str]


class GuildRole(TypedDict):
    """GUILD_ROLE_CREATE and GUILD_ROLE_UPDATE."""

    guild_id: Snowflake
    role: Role


GuildRoleCreate: TypeAlias = GuildRole
GuildRoleUpdate: TypeAlias = GuildRole


class GuildRoleDelete(TypedDict):
    """GUILD_ROLE_DELETE."""

    guild_id: Snowflake
    role_id: Snowflake


GuildScheduledEventCreate: TypeAlias = ScheduledEvent
GuildScheduledEventUpdate: TypeAlias = ScheduledEvent
GuildScheduledEventDelete: TypeAlias = ScheduledEvent


class GuildScheduledEventUser(TypedDict):
    """GUILD_SCHEDULED_EVENT_USER_ADD and _REMOVE: a user (un)subscribed to an event."""

    guild_scheduled_event_id: Snowflake
    user_id: Snowflake
    guild_id: Snowflake


GuildScheduledEventUserAdd: TypeAlias = GuildScheduledEventUser
GuildScheduledEventUserRemove: TypeAlias = GuildScheduledEventUser
GuildSoundboardSoundCreate: TypeAlias = SoundboardSound
GuildSoundboardSoundUpdate: TypeAlias = SoundboardSound


class GuildSoundboardSoundDelete(TypedDict):
    """GUILD_SOUNDBOARD_SOUND_DELETE."""

    sound_id: Snowflake
    guild_id: Snowflake


class GuildSoundboardSounds(TypedDict):
    """GUILD_SOUNDBOARD_SOUNDS_UPDATE and SOUNDBOARD_SOUNDS: a guild's sounds."""

    soundboard_sounds: list[SoundboardSound]
    guild_id: Snowflake


GuildSoundboardSoundsUpdate: TypeAlias = GuildSoundboardSounds
SoundboardSounds: TypeAlias = GuildSoundboardSounds


# -- integrations, interactions, invites -------------------------------------------------


class GuildIntegration(Integration):
    """INTEGRATION_CREATE and INTEGRATION_UPDATE: an integration (no ``user``) and its guild."""

    guild_id: Snowflake


IntegrationCreate: TypeAlias = GuildIntegration
IntegrationUpdate: TypeAlias = GuildIntegration


class IntegrationDelete(TypedDict):
    """INTEGRATION_DELETE."""

    id: Snowflake
    guild_id: Snowflake
    application_id: NotRequired[Snowflake]


InteractionCreate: TypeAlias = Interaction


class InviteCreate(TypedDict):
    """INVITE_CREATE."""

    channel_id: Snowflake
    code: str
    created_at: Timestamp
    guild_id: NotRequired[Snowflake]
    inviter: NotRequired[User]
    max_age: int
    max_uses: int
    target_type: NotRequired[int]
    target_user: NotRequired[User]
    target_application: NotRequired[PartialApplication]
    temporary: bool
    uses: int
    expires_at: Timestamp | None
    role_ids: NotRequired[list[Snowflake]]


class InviteDelete(TypedDict):
    """INVITE_DELETE."""

    channel_id: Snowflake
    guild_id: NotRequired[Snowflake]
    code: str
