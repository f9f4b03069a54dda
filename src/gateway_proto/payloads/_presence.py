"""Presences and activities."""

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake
from ._users import PartialUser

__all__ = [
    "Activity",
    "ActivityAssets",
    "ActivityButton",
    "ActivityEmoji",
    "ActivityParty",
    "ActivitySecrets",
    "ActivityTimestamps",
    "ClientStatus",
    "Presence",
]


class ActivityTimestamps(TypedDict, total=False):
    """Unix times in milliseconds of an activity's start and end."""

    start: int
    end: int


class ActivityEmoji(TypedDict):
    """The emoji of a custom status."""

    name: str
    id: NotRequired[Snowflake]
    animated: NotRequired[bool]


class ActivityParty(TypedDict, total=False):
    """The party of an activity (``size`` is ``[current, max]``)."""

    id: str
    size: list[int]


class ActivityAssets(TypedDict, total=False):
    """Images and hover texts of an activity."""

    large_image: str
    large_text: str
    large_url: str
    small_image: str
    small_text: str
    small_url: str
    invite_cover_image: str


class ActivitySecrets(TypedDict, total=False):
    """Secrets for joining and spectating."""

    join: str
    spectate: str
    match: str


class ActivityButton(TypedDict):
    """A custom button of an activity."""

    label: str
    url: str


class Activity(TypedDict):
    """A user's activity, as presences carry it.

    In a received presence, ``buttons`` holds only the labels (``list[str]``);
    :class:`ActivityButton` is the shape an application sets.
    """

    name: str
    type: int
    url: NotRequired[str | None]
    created_at: int
    timestamps: NotRequired[ActivityTimestamps]
    application_id: NotRequired[Snowflake]
    status_display_type: NotRequired[int | None]
    details: NotRequired[str | None]
    details_url: NotRequired[str | None]
    state: NotRequired[str | None]
    state_url: NotRequired[str | None]
    emoji: NotRequired[ActivityEmoji | None]
    party: NotRequired[ActivityParty]
    assets: NotRequired[ActivityAssets]
    secrets: NotRequired[ActivitySecrets]
    instance: NotRequired[bool]
    flags: NotRequired[int]
    buttons: NotRequired[list[str] | list[ActivityButton]]


class ClientStatus(TypedDict, total=False):
    """A user's status per platform; a platform without an active session is absent."""

    desktop: str
    mobile: str
    web: str
    vr: str


class Presence(TypedDict):
    """A user's presence in a guild (PRESENCE_UPDATE; GUILD_CREATE carries partial ones)."""

    user: PartialUser
    guild_id: Snowflake
    status: str
    activities: list[Activity]
    client_status: ClientStatus
