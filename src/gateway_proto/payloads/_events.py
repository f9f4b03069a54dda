"""The ``d`` of every dispatch (op 0) event, and the table from event name to payload type.

Events whose payload is a plain object get an alias named after the event
(``ChannelCreate`` is :class:`Channel`), so a handler's annotation reads like the
event it handles.
"""

from typing import TypeAlias

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake, Timestamp
from ._channels import (
    Channel,
    ScheduledEvent,
    SoundboardSound,
    StageInstance,
    ThreadMember,
    VoiceState,
)
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
from ._interactions import ApplicationCommandPermissions, Interaction
from ._messages import Message
from ._presence import Presence
from ._users import (
    AvatarDecorationData,
    Collectibles,
    Emoji,
    Member,
    PartialEmoji,
    Role,
    Sticker,
    User,
)

__all__ = [
    "DISPATCH_EVENTS",
    "ApplicationCommandPermissionsUpdate",
    "AutoModerationActionExecution",
    "AutoModerationRuleCreate",
    "AutoModerationRuleDelete",
    "AutoModerationRuleUpdate",
    "ChannelCreate",
    "ChannelDelete",
    "ChannelInfo",
    "ChannelInfoChannel",
    "ChannelPinsUpdate",
    "ChannelUpdate",
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
    "MessageCreate",
    "MessageDelete",
    "MessageDeleteBulk",
    "MessagePollVote",
    "MessagePollVoteAdd",
    "MessagePollVoteRemove",
    "MessageReactionAdd",
    "MessageReactionRemove",
    "MessageReactionRemoveAll",
    "MessageReactionRemoveEmoji",
    "MessageUpdate",
    "PresenceUpdate",
    "RateLimited",
    "RateLimitedRequestGuildMembers",
    "Ready",
    "Resumed",
    "SoundboardSounds",
    "StageInstanceCreate",
    "StageInstanceDelete",
    "StageInstanceUpdate",
    "SubscriptionCreate",
    "SubscriptionDelete",
    "SubscriptionUpdate",
    "ThreadCreate",
    "ThreadDelete",
    "ThreadListSync",
    "ThreadMemberUpdate",
    "ThreadMemberWithPresence",
    "ThreadMembersUpdate",
    "ThreadUpdate",
    "TypingStart",
    "UserUpdate",
    "VoiceChannelEffectSend",
    "VoiceChannelStartTimeUpdate",
    "VoiceChannelStatusUpdate",
    "VoiceServerUpdate",
    "VoiceStateUpdate",
    "WebhooksUpdate",
]

# -- session ---------------------------------------------------------------------


class Ready(TypedDict):
    """READY: the new session, the bot's user and its guilds (all unavailable at first)."""

    v: int
    user: User
    guilds: list[UnavailableGuild]
    session_id: str
    resume_gateway_url: str
    shard: NotRequired[list[int]]
    application: PartialApplication


class Resumed(TypedDict, total=False):
    """RESUMED: the replay is over (Discord documents no fields)."""


class RateLimitedRequestGuildMembers(TypedDict):
    """RATE_LIMITED's ``meta`` for a rate-limited Request Guild Members (op 8)."""

    guild_id: Snowflake
    nonce: NotRequired[str]


class RateLimited(TypedDict):
    """RATE_LIMITED: a send event was refused by Discord's rate limit."""

    opcode: int
    retry_after: float
    meta: RateLimitedRequestGuildMembers


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


# -- messages ----------------------------------------------------------------------

MessageCreate: TypeAlias = Message
MessageUpdate: TypeAlias = Message


class MessageDelete(TypedDict):
    """MESSAGE_DELETE."""

    id: Snowflake
    channel_id: Snowflake
    guild_id: NotRequired[Snowflake]


class MessageDeleteBulk(TypedDict):
    """MESSAGE_DELETE_BULK."""

    ids: list[Snowflake]
    channel_id: Snowflake
    guild_id: NotRequired[Snowflake]


class MessageReactionRemove(TypedDict):
    """MESSAGE_REACTION_REMOVE: a user took a reaction back."""

    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: NotRequired[Snowflake]
    emoji: PartialEmoji
    burst: bool
    type: int


class MessageReactionAdd(MessageReactionRemove):
    """MESSAGE_REACTION_ADD: a user reacted (with its member in guilds)."""

    member: NotRequired[Member]
    message_author_id: NotRequired[Snowflake]
    burst_colors: NotRequired[list[str]]


class MessageReactionRemoveAll(TypedDict):
    """MESSAGE_REACTION_REMOVE_ALL."""

    channel_id: Snowflake
    message_id: Snowflake
    guild_id: NotRequired[Snowflake]


class MessageReactionRemoveEmoji(MessageReactionRemoveAll):
    """MESSAGE_REACTION_REMOVE_EMOJI: every reaction of one emoji was removed."""

    emoji: PartialEmoji


class MessagePollVote(TypedDict):
    """MESSAGE_POLL_VOTE_ADD and MESSAGE_POLL_VOTE_REMOVE (one event per answer)."""

    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: NotRequired[Snowflake]
    answer_id: int


MessagePollVoteAdd: TypeAlias = MessagePollVote
MessagePollVoteRemove: TypeAlias = MessagePollVote

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


#: Every dispatch name Discord documents, with the name of its payload type in
#: :mod:`gateway_proto.payloads`. ``scripts/gen_typed_events.py`` builds the
#: drivers' typed ``on()``/``events()`` overloads from it.
DISPATCH_EVENTS: dict[str, str] = {
    "READY": "Ready",
    "RESUMED": "Resumed",
    "RATE_LIMITED": "RateLimited",
    "APPLICATION_COMMAND_PERMISSIONS_UPDATE": "ApplicationCommandPermissionsUpdate",
    "AUTO_MODERATION_RULE_CREATE": "AutoModerationRuleCreate",
    "AUTO_MODERATION_RULE_UPDATE": "AutoModerationRuleUpdate",
    "AUTO_MODERATION_RULE_DELETE": "AutoModerationRuleDelete",
    "AUTO_MODERATION_ACTION_EXECUTION": "AutoModerationActionExecution",
    "CHANNEL_CREATE": "ChannelCreate",
    "CHANNEL_UPDATE": "ChannelUpdate",
    "CHANNEL_DELETE": "ChannelDelete",
    "CHANNEL_INFO": "ChannelInfo",
    "CHANNEL_PINS_UPDATE": "ChannelPinsUpdate",
    "THREAD_CREATE": "ThreadCreate",
    "THREAD_UPDATE": "ThreadUpdate",
    "THREAD_DELETE": "ThreadDelete",
    "THREAD_LIST_SYNC": "ThreadListSync",
    "THREAD_MEMBER_UPDATE": "ThreadMemberUpdate",
    "THREAD_MEMBERS_UPDATE": "ThreadMembersUpdate",
    "ENTITLEMENT_CREATE": "EntitlementCreate",
    "ENTITLEMENT_UPDATE": "EntitlementUpdate",
    "ENTITLEMENT_DELETE": "EntitlementDelete",
    "GUILD_CREATE": "GuildCreate",
    "GUILD_UPDATE": "GuildUpdate",
    "GUILD_DELETE": "GuildDelete",
    "GUILD_AUDIT_LOG_ENTRY_CREATE": "GuildAuditLogEntryCreate",
    "GUILD_BAN_ADD": "GuildBanAdd",
    "GUILD_BAN_REMOVE": "GuildBanRemove",
    "GUILD_EMOJIS_UPDATE": "GuildEmojisUpdate",
    "GUILD_STICKERS_UPDATE": "GuildStickersUpdate",
    "GUILD_INTEGRATIONS_UPDATE": "GuildIntegrationsUpdate",
    "GUILD_MEMBER_ADD": "GuildMemberAdd",
    "GUILD_MEMBER_REMOVE": "GuildMemberRemove",
    "GUILD_MEMBER_UPDATE": "GuildMemberUpdate",
    "GUILD_MEMBERS_CHUNK": "GuildMembersChunk",
    "GUILD_ROLE_CREATE": "GuildRoleCreate",
    "GUILD_ROLE_UPDATE": "GuildRoleUpdate",
    "GUILD_ROLE_DELETE": "GuildRoleDelete",
    "GUILD_SCHEDULED_EVENT_CREATE": "GuildScheduledEventCreate",
    "GUILD_SCHEDULED_EVENT_UPDATE": "GuildScheduledEventUpdate",
    "GUILD_SCHEDULED_EVENT_DELETE": "GuildScheduledEventDelete",
    "GUILD_SCHEDULED_EVENT_USER_ADD": "GuildScheduledEventUserAdd",
    "GUILD_SCHEDULED_EVENT_USER_REMOVE": "GuildScheduledEventUserRemove",
    "GUILD_SOUNDBOARD_SOUND_CREATE": "GuildSoundboardSoundCreate",
    "GUILD_SOUNDBOARD_SOUND_UPDATE": "GuildSoundboardSoundUpdate",
    "GUILD_SOUNDBOARD_SOUND_DELETE": "GuildSoundboardSoundDelete",
    "GUILD_SOUNDBOARD_SOUNDS_UPDATE": "GuildSoundboardSoundsUpdate",
    "SOUNDBOARD_SOUNDS": "SoundboardSounds",
    "INTEGRATION_CREATE": "IntegrationCreate",
    "INTEGRATION_UPDATE": "IntegrationUpdate",
    "INTEGRATION_DELETE": "IntegrationDelete",
    "INTERACTION_CREATE": "InteractionCreate",
    "INVITE_CREATE": "InviteCreate",
    "INVITE_DELETE": "InviteDelete",
    "MESSAGE_CREATE": "MessageCreate",
    "MESSAGE_UPDATE": "MessageUpdate",
    "MESSAGE_DELETE": "MessageDelete",
    "MESSAGE_DELETE_BULK": "MessageDeleteBulk",
    "MESSAGE_REACTION_ADD": "MessageReactionAdd",
    "MESSAGE_REACTION_REMOVE": "MessageReactionRemove",
    "MESSAGE_REACTION_REMOVE_ALL": "MessageReactionRemoveAll",
    "MESSAGE_REACTION_REMOVE_EMOJI": "MessageReactionRemoveEmoji",
    "MESSAGE_POLL_VOTE_ADD": "MessagePollVoteAdd",
    "MESSAGE_POLL_VOTE_REMOVE": "MessagePollVoteRemove",
    "PRESENCE_UPDATE": "PresenceUpdate",
    "STAGE_INSTANCE_CREATE": "StageInstanceCreate",
    "STAGE_INSTANCE_UPDATE": "StageInstanceUpdate",
    "STAGE_INSTANCE_DELETE": "StageInstanceDelete",
    "SUBSCRIPTION_CREATE": "SubscriptionCreate",
    "SUBSCRIPTION_UPDATE": "SubscriptionUpdate",
    "SUBSCRIPTION_DELETE": "SubscriptionDelete",
    "TYPING_START": "TypingStart",
    "USER_UPDATE": "UserUpdate",
    "VOICE_CHANNEL_EFFECT_SEND": "VoiceChannelEffectSend",
    "VOICE_CHANNEL_START_TIME_UPDATE": "VoiceChannelStartTimeUpdate",
    "VOICE_CHANNEL_STATUS_UPDATE": "VoiceChannelStatusUpdate",
    "VOICE_STATE_UPDATE": "VoiceStateUpdate",
    "VOICE_SERVER_UPDATE": "VoiceServerUpdate",
    "WEBHOOKS_UPDATE": "WebhooksUpdate",
}
