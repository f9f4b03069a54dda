"""Messages and what they carry: embeds, attachments, reactions, polls, references."""

from typing import Any

from typing_extensions import NotRequired, TypedDict

from ._base import Component, Snowflake, Timestamp
from ._channels import Channel
from ._guilds import PartialApplication
from ._users import PartialEmoji, PartialMember, Sticker, StickerItem, User, UserWithMember

__all__ = [
    "Attachment",
    "ChannelMention",
    "Embed",
    "EmbedAuthor",
    "EmbedField",
    "EmbedFooter",
    "EmbedMedia",
    "EmbedProvider",
    "Message",
    "MessageActivity",
    "MessageCall",
    "MessageInteraction",
    "MessageInteractionMetadata",
    "MessageReference",
    "MessageSnapshot",
    "PartialMessage",
    "Poll",
    "PollAnswer",
    "PollAnswerCount",
    "PollMedia",
    "PollResults",
    "Reaction",
    "ReactionCountDetails",
    "RoleSubscriptionData",
    "SharedClientTheme",
]


class EmbedFooter(TypedDict):
    """An embed's footer."""

    text: str
    icon_url: NotRequired[str]
    proxy_icon_url: NotRequired[str]


class EmbedMedia(TypedDict, total=False):
    """An embed's image, thumbnail or video (``url`` is always there for images)."""

    url: str
    proxy_url: str
    height: int
    width: int
    content_type: str
    placeholder: str
    placeholder_version: int
    description: str
    flags: int


class EmbedProvider(TypedDict, total=False):
    """An embed's provider."""

    name: str
    url: str


class EmbedAuthor(TypedDict):
    """An embed's author."""

    name: str
    url: NotRequired[str]
    icon_url: NotRequired[str]
    proxy_icon_url: NotRequired[str]


class EmbedField(TypedDict):
    """One field of an embed."""

    name: str
    value: str
    inline: NotRequired[bool]


class Embed(TypedDict, total=False):
    """Rich content of a message."""

    title: str
    type: str
    description: str
    url: str
    timestamp: Timestamp
    color: int
    footer: EmbedFooter
    image: EmbedMedia
    thumbnail: EmbedMedia
    video: EmbedMedia
    provider: EmbedProvider
    author: EmbedAuthor
    fields: list[EmbedField]
    flags: int


class Attachment(TypedDict):
    """A file attached to a message."""

    id: Snowflake
    filename: str
    title: NotRequired[str]
    description: NotRequired[str]
    content_type: NotRequired[str]
    size: int
    url: str
    proxy_url: str
    height: NotRequired[int | None]
    width: NotRequired[int | None]
    placeholder: NotRequired[str]
    placeholder_version: NotRequired[int]
    ephemeral: NotRequired[bool]
    duration_secs: NotRequired[float]
    waveform: NotRequired[str]
    flags: NotRequired[int]
    clip_participants: NotRequired[list[User]]
    clip_created_at: NotRequired[Timestamp]
    application: NotRequired[PartialApplication | None]


class ChannelMention(TypedDict):
    """A channel mentioned in a crossposted message."""

    id: Snowflake
    guild_id: Snowflake
    type: int
    name: str


class ReactionCountDetails(TypedDict):
    """Reaction counts split by kind."""

    burst: int
    normal: int


class Reaction(TypedDict):
    """The reactions of one emoji on a message."""

    count: int
    count_details: ReactionCountDetails
    me: bool
    me_burst: bool
    emoji: PartialEmoji
    burst_colors: list[str]


class MessageActivity(TypedDict):
    """A Rich Presence invite in a message."""

    type: int
    party_id: NotRequired[str]


class MessageReference(TypedDict, total=False):
    """What a reply, crosspost, forward or pin notice points at."""

    type: int
    message_id: Snowflake
    channel_id: Snowflake
    guild_id: Snowflake
    fail_if_not_exists: bool


class MessageInteractionMetadata(TypedDict):
    """The interaction a message answers (the three documented kinds in one shape)."""

    id: Snowflake
    type: int
    user: User
    authorizing_integration_owners: dict[str, Snowflake]
    original_response_message_id: NotRequired[Snowflake]
    target_user: NotRequired[User]
    target_message_id: NotRequired[Snowflake]
    interacted_message_id: NotRequired[Snowflake]
    triggering_interaction_metadata: NotRequired["MessageInteractionMetadata"]


class MessageInteraction(TypedDict):
    """The older description of the interaction a message answers (deprecated by Discord)."""

    id: Snowflake
    type: int
    name: str
    user: User
    member: NotRequired[PartialMember]


class RoleSubscriptionData(TypedDict):
    """A role subscription purchase or renewal notice."""

    role_subscription_listing_id: Snowflake
    tier_name: str
    total_months_subscribed: int
    is_renewal: bool


class PollMedia(TypedDict, total=False):
    """A poll's question or an answer's text and emoji."""

    text: str
    emoji: PartialEmoji


class PollAnswer(TypedDict):
    """One answer of a poll."""

    answer_id: int
    poll_media: PollMedia


class PollAnswerCount(TypedDict):
    """Votes for one answer."""

    id: int
    count: int
    me_voted: bool


class PollResults(TypedDict):
    """A poll's vote counts (exact once ``is_finalized``)."""

    is_finalized: bool
    answer_counts: list[PollAnswerCount]


class Poll(TypedDict):
    """A poll in a message."""

    question: PollMedia
    answers: list[PollAnswer]
    expiry: Timestamp | None
    allow_multiselect: bool
    layout_type: int
    results: NotRequired[PollResults]


class MessageCall(TypedDict):
    """A call in a private channel."""

    participants: list[Snowflake]
    ended_timestamp: NotRequired[Timestamp | None]


class SharedClientTheme(TypedDict):
    """A client theme shared in a message."""

    colors: list[str]
    gradient_angle: int
    base_mix: int
    base_theme: NotRequired[int | None]


class MessageSnapshot(TypedDict):
    """A forwarded message (``message`` holds a subset of a message's fields)."""

    message: "PartialMessage"


class Message(TypedDict):
    """A message as MESSAGE_CREATE carries it.

    ``guild_id``, ``member`` and ``channel_type`` are the gateway's additions;
    ``mentions`` then carry a partial ``member`` in guilds.
    """

    id: Snowflake
    channel_id: Snowflake
    author: User
    content: str
    timestamp: Timestamp
    edited_timestamp: Timestamp | None
    tts: bool
    mention_everyone: bool
    mentions: list[UserWithMember]
    mention_roles: list[Snowflake]
    mention_channels: NotRequired[list[ChannelMention]]
    attachments: list[Attachment]
    embeds: list[Embed]
    reactions: NotRequired[list[Reaction]]
    nonce: NotRequired[int | str]
    pinned: bool
    webhook_id: NotRequired[Snowflake]
    type: int
    activity: NotRequired[MessageActivity]
    application: NotRequired[PartialApplication]
    application_id: NotRequired[Snowflake]
    flags: NotRequired[int]
    message_reference: NotRequired[MessageReference]
    message_snapshots: NotRequired[list[MessageSnapshot]]
    referenced_message: NotRequired["Message | None"]
    interaction_metadata: NotRequired[MessageInteractionMetadata]
    interaction: NotRequired[MessageInteraction]
    thread: NotRequired[Channel]
    components: NotRequired[list[Component]]
    sticker_items: NotRequired[list[StickerItem]]
    stickers: NotRequired[list[Sticker]]
    position: NotRequired[int]
    role_subscription_data: NotRequired[RoleSubscriptionData]
    resolved: NotRequired[dict[str, Any]]
    poll: NotRequired[Poll]
    call: NotRequired[MessageCall]
    shared_client_theme: NotRequired[SharedClientTheme]
    guild_id: NotRequired[Snowflake]
    member: NotRequired[PartialMember]
    channel_type: NotRequired[int]


class PartialMessage(TypedDict, total=False):
    """A message of which some fields are left out (snapshots, interaction resolved data)."""

    id: Snowflake
    channel_id: Snowflake
    type: int
    content: str
    embeds: list[Embed]
    attachments: list[Attachment]
    timestamp: Timestamp
    edited_timestamp: Timestamp | None
    flags: int
    mentions: list[User]
    mention_roles: list[Snowflake]
    stickers: list[Sticker]
    sticker_items: list[StickerItem]
    components: list[Component]

