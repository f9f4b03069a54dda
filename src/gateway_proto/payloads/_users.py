"""Users, guild members, roles, emoji and stickers (as the gateway carries them)."""

from typing_extensions import NotRequired, Required, TypedDict

from ._base import Snowflake, Timestamp

__all__ = [
    "AvatarDecorationData",
    "Collectibles",
    "Emoji",
    "Member",
    "Nameplate",
    "PartialEmoji",
    "PartialMember",
    "PartialUser",
    "Role",
    "RoleColors",
    "RoleTags",
    "Sticker",
    "StickerItem",
    "User",
    "UserPrimaryGuild",
    "UserWithMember",
]


class AvatarDecorationData(TypedDict):
    """A user's avatar decoration."""

    asset: str
    sku_id: Snowflake


class Nameplate(TypedDict):
    """A nameplate collectible."""

    sku_id: Snowflake
    asset: str
    label: str
    palette: str


class Collectibles(TypedDict):
    """A user's collectibles."""

    nameplate: NotRequired[Nameplate]


class UserPrimaryGuild(TypedDict):
    """The guild tag a user displays."""

    identity_guild_id: Snowflake | None
    identity_enabled: bool | None
    tag: str | None
    badge: str | None


class User(TypedDict):
    """A user account (bots included)."""

    id: Snowflake
    username: str
    discriminator: str
    global_name: str | None
    avatar: str | None
    bot: NotRequired[bool]
    system: NotRequired[bool]
    mfa_enabled: NotRequired[bool]
    banner: NotRequired[str | None]
    accent_color: NotRequired[int | None]
    locale: NotRequired[str]
    verified: NotRequired[bool]
    email: NotRequired[str | None]
    flags: NotRequired[int]
    premium_type: NotRequired[int]
    public_flags: NotRequired[int]
    avatar_decoration_data: NotRequired[AvatarDecorationData | None]
    collectibles: NotRequired[Collectibles | None]
    primary_guild: NotRequired[UserPrimaryGuild | None]


class PartialUser(TypedDict, total=False):
    """A user of which only ``id`` is certain (a presence update's user, for one)."""

    id: Required[Snowflake]
    username: str
    discriminator: str
    global_name: str | None
    avatar: str | None
    bot: bool


class PartialMember(TypedDict, total=False):
    """A guild member as messages and reactions carry it (no ``user``; fields may be missing)."""

    nick: str | None
    avatar: str | None
    banner: str | None
    roles: list[Snowflake]
    joined_at: Timestamp | None
    premium_since: Timestamp | None
    deaf: bool
    mute: bool
    flags: int
    pending: bool
    permissions: str
    communication_disabled_until: Timestamp | None
    avatar_decoration_data: AvatarDecorationData | None
    collectibles: Collectibles | None


class Member(TypedDict):
    """A user's membership of a guild."""

    user: NotRequired[User]
    nick: NotRequired[str | None]
    avatar: NotRequired[str | None]
    banner: NotRequired[str | None]
    roles: list[Snowflake]
    joined_at: Timestamp | None
    premium_since: NotRequired[Timestamp | None]
    deaf: bool
    mute: bool
    flags: int
    pending: NotRequired[bool]
    permissions: NotRequired[str]
    communication_disabled_until: NotRequired[Timestamp | None]
    avatar_decoration_data: NotRequired[AvatarDecorationData | None]
    collectibles: NotRequired[Collectibles | None]


class UserWithMember(User):
    """A mentioned user in a guild message, with the partial member it has there."""

    member: NotRequired[PartialMember]


class RoleTags(TypedDict, total=False):
    """What a role is tied to. The flags among these are ``None`` when set and absent when not."""

    bot_id: Snowflake
    integration_id: Snowflake
    premium_subscriber: None
    subscription_listing_id: Snowflake
    available_for_purchase: None
    guild_connections: None


class RoleColors(TypedDict):
    """A role's colours (a gradient when the secondary one is set)."""

    primary_color: int
    secondary_color: int | None
    tertiary_color: int | None


class Role(TypedDict):
    """A guild role."""

    id: Snowflake
    name: str
    color: int
    colors: RoleColors
    hoist: bool
    icon: NotRequired[str | None]
    unicode_emoji: NotRequired[str | None]
    position: int
    permissions: str
    managed: bool
    mentionable: bool
    tags: NotRequired[RoleTags]
    flags: int


class Emoji(TypedDict):
    """A custom or Unicode emoji (``id`` is ``None`` for Unicode ones)."""

    id: Snowflake | None
    name: str | None
    roles: NotRequired[list[Snowflake]]
    user: NotRequired[User]
    require_colons: NotRequired[bool]
    managed: NotRequired[bool]
    animated: NotRequired[bool]
    available: NotRequired[bool]


class PartialEmoji(TypedDict):
    """An emoji as reactions, polls and effects carry it."""

    id: Snowflake | None
    name: str | None
    animated: NotRequired[bool]


class Sticker(TypedDict):
    """A sticker (standard or guild)."""

    id: Snowflake
    pack_id: NotRequired[Snowflake]
    name: str
    description: str | None
    tags: str
    type: int
    format_type: int
    available: NotRequired[bool]
    guild_id: NotRequired[Snowflake]
    user: NotRequired[User]
    sort_value: NotRequired[int]


class StickerItem(TypedDict):
    """The short form of a sticker that messages carry."""

    id: Snowflake
    name: str
    format_type: int
