"""Commands: what the application asks the connection to send.

Each command is a frozen, slotted dataclass that validates its fields when it is
built, so bad input raises :class:`~gateway_proto.errors.InvalidCommandError` at
the line that made it, long before anything reaches Discord. Snowflakes may be
given as ``int`` or ``str``; they are stored (and sent) as ``str``.

``to_payload()`` returns the ``d`` of the payload; ``opcode`` names its ``op``.
The connection also checks the encoded size (4096 bytes at most) in ``send``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import InvalidCommandError
from .opcodes import Opcode

__all__ = [
    "Activity",
    "ActivityType",
    "Command",
    "RequestChannelInfo",
    "RequestGuildMembers",
    "RequestSoundboardSounds",
    "Snowflake",
    "Status",
    "UpdatePresence",
    "UpdateVoiceState",
]

#: A Discord id, as the API's ``str`` or as an ``int``.
Snowflake = int | str
#: Presence statuses a bot may set.
Status = Literal["online", "dnd", "idle", "invisible", "offline"]
#: 0 Playing, 1 Streaming, 2 Listening, 3 Watching, 4 Custom, 5 Competing.
ActivityType = Literal[0, 1, 2, 3, 4, 5]

_STATUSES = frozenset({"online", "dnd", "idle", "invisible", "offline"})
_CHANNEL_INFO_FIELDS = frozenset({"status", "voice_start_time"})
_MAX_NONCE_BYTES = 32
_MAX_USER_IDS = 100


def _snowflake(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidCommandError(f"{what} must be a snowflake (int or str), got {value!r}")
    text = str(value)
    if not text.isdigit() or int(text) >= 1 << 64:
        raise InvalidCommandError(
            f"{what} must be a snowflake (a 64-bit unsigned id), got {value!r}"
        )
    return text


def _check_bool(value: object, what: str) -> None:
    if not isinstance(value, bool):
        raise InvalidCommandError(f"{what} must be a bool, got {value!r}")


class Command:
    """Base class of the commands an application may send."""

    __slots__ = ()
    #: The payload's ``op``.
    opcode: ClassVar[Opcode]

    def to_payload(self) -> Any:
        """Return the payload's ``d``: plain dicts, lists, str, int, bool and None."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """An activity in a presence; bots may set only these fields.

    Attributes:
        name: the activity's name (for a custom status, any text; Discord shows ``state``).
        type: 0 Playing, 1 Streaming, 2 Listening, 3 Watching, 4 Custom, 5 Competing.
        state: the custom status text, or the activity's state line.
        url: the stream URL; only for Streaming (twitch.tv or youtube.com).

    """

    name: str
    type: ActivityType = 0
    state: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidCommandError("activity name must be a non-empty str")
        if self.type not in (0, 1, 2, 3, 4, 5) or isinstance(self.type, bool):
            raise InvalidCommandError(f"activity type must be 0-5, got {self.type!r}")
        if self.url is not None and self.type != 1:
            raise InvalidCommandError("activity url is only allowed for type 1 (Streaming)")

    def to_payload(self) -> dict[str, Any]:
        """Return the activity object as Discord expects it."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.state is not None:
            out["state"] = self.state
        if self.url is not None:
            out["url"] = self.url
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePresence(Command):
    """Op 3: set the bot's status and activities (also usable at IDENTIFY).

    Discord allows about 5 status changes per 20 seconds per client.
    """

    opcode: ClassVar[Opcode] = Opcode.PRESENCE_UPDATE
    status: Status = "online"
    activities: Sequence[Activity] = ()
    since: int | None = None
    afk: bool = False

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise InvalidCommandError(
                f"status must be one of {sorted(_STATUSES)}, got {self.status!r}"
            )
        object.__setattr__(self, "activities", tuple(self.activities))
        for activity in self.activities:
            if not isinstance(activity, Activity):
                raise InvalidCommandError(f"activities must be Activity objects, got {activity!r}")
        if self.since is not None and (
            isinstance(self.since, bool) or not isinstance(self.since, int)
        ):
            raise InvalidCommandError("since must be Unix milliseconds (int) or None")
        _check_bool(self.afk, "afk")

    def to_payload(self) -> dict[str, Any]:
        """Return the presence object."""
        return {
            "since": self.since,
            "activities": [a.to_payload() for a in self.activities],
            "status": self.status,
            "afk": self.afk,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateVoiceState(Command):
    """Op 4: join, move between or leave (``channel_id=None``) voice channels."""

    opcode: ClassVar[Opcode] = Opcode.VOICE_STATE_UPDATE
    guild_id: Snowflake
    channel_id: Snowflake | None
    self_mute: bool = False
    self_deaf: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "guild_id", _snowflake(self.guild_id, "guild_id"))
        if self.channel_id is not None:
            object.__setattr__(self, "channel_id", _snowflake(self.channel_id, "channel_id"))
        _check_bool(self.self_mute, "self_mute")
        _check_bool(self.self_deaf, "self_deaf")

    def to_payload(self) -> dict[str, Any]:
        """Return the voice state object."""
        return {
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "self_mute": self.self_mute,
            "self_deaf": self.self_deaf,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestGuildMembers(Command):
    """Op 8: ask for a guild's members; they arrive as ``GUILD_MEMBERS_CHUNK`` s.

    Give exactly one of ``query`` (a username prefix; ``""`` with ``limit=0`` asks
    for every member and needs the GUILD_MEMBERS intent) or ``user_ids`` (at most
    100). ``nonce`` (at most 32 bytes) comes back on the chunks.
    """

    opcode: ClassVar[Opcode] = Opcode.REQUEST_GUILD_MEMBERS
    guild_id: Snowflake
    query: str | None = None
    limit: int = 0
    presences: bool = False
    user_ids: Sequence[Snowflake] | None = None
    nonce: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "guild_id", _snowflake(self.guild_id, "guild_id"))
        if (self.query is None) == (self.user_ids is None):
            raise InvalidCommandError("give exactly one of query or user_ids")
        if self.query is not None and not isinstance(self.query, str):
            raise InvalidCommandError("query must be a str")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise InvalidCommandError(f"limit must be an int >= 0, got {self.limit!r}")
        if self.user_ids is not None:
            if isinstance(self.user_ids, (str, bytes)):
                raise InvalidCommandError("user_ids must be a sequence of snowflakes")
            ids = tuple(_snowflake(u, "user_ids item") for u in self.user_ids)
            if not ids or len(ids) > _MAX_USER_IDS:
                raise InvalidCommandError(f"user_ids must hold 1 to {_MAX_USER_IDS} ids")
            object.__setattr__(self, "user_ids", ids)
        _check_bool(self.presences, "presences")
        if self.nonce is not None and (
            not isinstance(self.nonce, str) or len(self.nonce.encode()) > _MAX_NONCE_BYTES
        ):
            raise InvalidCommandError(f"nonce must be a str of at most {_MAX_NONCE_BYTES} bytes")

    def to_payload(self) -> dict[str, Any]:
        """Return the request object."""
        out: dict[str, Any] = {"guild_id": self.guild_id, "presences": self.presences}
        if self.query is not None:
            out["query"] = self.query
            out["limit"] = self.limit
        else:
            out["user_ids"] = list(self.user_ids or ())
            if self.limit:
                out["limit"] = self.limit
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSoundboardSounds(Command):
    """Op 31: ask for the soundboard sounds of guilds (one ``SOUNDBOARD_SOUNDS`` each)."""

    opcode: ClassVar[Opcode] = Opcode.REQUEST_SOUNDBOARD_SOUNDS
    guild_ids: Sequence[Snowflake] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.guild_ids, (str, bytes)):
            raise InvalidCommandError("guild_ids must be a sequence of snowflakes")
        ids = tuple(_snowflake(g, "guild_ids item") for g in self.guild_ids)
        if not ids:
            raise InvalidCommandError("guild_ids must not be empty")
        object.__setattr__(self, "guild_ids", ids)

    def to_payload(self) -> dict[str, Any]:
        """Return the request object."""
        return {"guild_ids": list(self.guild_ids)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestChannelInfo(Command):
    """Op 43: ask for ephemeral channel fields (answered by ``CHANNEL_INFO``)."""

    opcode: ClassVar[Opcode] = Opcode.REQUEST_CHANNEL_INFO
    guild_id: Snowflake
    fields: Sequence[Literal["status", "voice_start_time"]] = ("status", "voice_start_time")

    def __post_init__(self) -> None:
        object.__setattr__(self, "guild_id", _snowflake(self.guild_id, "guild_id"))
        if isinstance(self.fields, str):
            raise InvalidCommandError("fields must be a sequence of field names")
        names = tuple(self.fields)
        if not names or not set(names) <= _CHANNEL_INFO_FIELDS:
            raise InvalidCommandError(
                f"fields must be a non-empty subset of {sorted(_CHANNEL_INFO_FIELDS)}"
            )
        object.__setattr__(self, "fields", names)

    def to_payload(self) -> dict[str, Any]:
        """Return the request object."""
        return {"guild_id": self.guild_id, "fields": list(self.fields)}
