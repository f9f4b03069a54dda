"""Interactions (INTERACTION_CREATE) and application command permissions."""

from typing import Any

from typing_extensions import NotRequired, TypedDict

from ._base import Component, Snowflake
from ._channels import Channel
from ._guilds import Entitlement
from ._messages import Attachment, Message, PartialMessage
from ._users import Member, PartialMember, Role, User

__all__ = [
    "ApplicationCommandPermission",
    "ApplicationCommandPermissions",
    "CommandOption",
    "Interaction",
    "InteractionData",
    "Resolved",
]


class Resolved(TypedDict, total=False):
    """Objects an interaction refers to, by ID."""

    users: dict[Snowflake, User]
    members: dict[Snowflake, PartialMember]
    roles: dict[Snowflake, Role]
    channels: dict[Snowflake, Channel]
    messages: dict[Snowflake, PartialMessage]
    attachments: dict[Snowflake, Attachment]


class CommandOption(TypedDict):
    """A filled-in option of an application command (nested for subcommands)."""

    name: str
    type: int
    value: NotRequired[str | int | float | bool]
    options: NotRequired[list["CommandOption"]]
    focused: NotRequired[bool]


class InteractionData(TypedDict, total=False):
    """An interaction's ``data``: the documented kinds in one shape.

    Application commands carry ``id``, ``name`` and ``type``; message components
    ``custom_id`` and ``component_type``; modal submissions ``custom_id`` and
    ``components``. Check the interaction's ``type`` before reading.
    """

    id: Snowflake
    name: str
    type: int
    resolved: Resolved
    options: list[CommandOption]
    guild_id: Snowflake
    target_id: Snowflake
    custom_id: str
    component_type: int
    values: list[str]
    components: list[Component]


class Interaction(TypedDict):
    """INTERACTION_CREATE: a slash command, a component click, a modal submission, ..."""

    id: Snowflake
    application_id: Snowflake
    type: int
    data: NotRequired[InteractionData]
    guild: NotRequired[dict[str, Any]]
    guild_id: NotRequired[Snowflake]
    channel: NotRequired[Channel]
    channel_id: NotRequired[Snowflake]
    member: NotRequired[Member]
    user: NotRequired[User]
    token: str
    version: int
    message: NotRequired[Message]
    app_permissions: str
    locale: NotRequired[str]
    guild_locale: NotRequired[str]
    entitlements: list[Entitlement]
    authorizing_integration_owners: dict[str, Snowflake]
    context: NotRequired[int]
    attachment_size_limit: int


class ApplicationCommandPermission(TypedDict):
    """One permission of a command: a role, user or channel allowed or denied."""

    id: Snowflake
    type: int
    permission: bool


class ApplicationCommandPermissions(TypedDict):
    """APPLICATION_COMMAND_PERMISSIONS_UPDATE: a command's permissions in a guild."""

    id: Snowflake
    application_id: Snowflake
    guild_id: Snowflake
    permissions: list[ApplicationCommandPermission]
