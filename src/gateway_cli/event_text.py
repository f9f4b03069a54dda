"""One dispatch as the CLI writes it: a strict JSON line, or a one-line human summary.

:meth:`EventRecord.to_json` writes strict JSON whatever the payload holds (NaN,
integers too long for ``str()``, deep nesting each become a string), and
:func:`summarize` says in a few words what a dispatch is about; neither raises on
anything a decoder can hand over. :class:`~gateway_cli.display.Display` picks
which of the two a line gets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["EventRecord", "summarize"]

#: Longest message content shown in a human line; the rest is elided.
_CONTENT_WIDTH = 60


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One dispatch as the CLI shows it, whichever driver delivered it.

    Attributes:
        shard_id: the shard that received it.
        name: the dispatch name (``t``).
        data: the decoded payload (``d``).
        sequence: the sequence number (``s``), if any.

    """

    shard_id: int
    name: str
    data: Any
    sequence: int | None

    def to_json(self) -> str:
        """Return the record as one line of strict JSON (no trailing newline).

        Values JSON cannot carry are written as strings: NaN and the infinities
        as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, an integer too long for
        ``str()`` in hexadecimal (``"-0x1f..."``), nesting deeper than 100 levels
        as ``"…"``; anything else the decoder could hand over by its ``str()``.
        """
        record = {
            "shard": self.shard_id,
            "seq": self.sequence,
            "event": self.name,
            "data": self.data,
        }
        try:  # the common case: one C-speed call
            return json.dumps(
                record, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
            )
        except (ValueError, TypeError, RecursionError, OverflowError):
            # A server sent what JSON cannot carry: write the closest strict JSON.
            return json.dumps(_jsonable(record, 0), ensure_ascii=False, separators=(",", ":"))


#: How deep the fallback JSON and summaries go into a payload.
_MAX_DEPTH = 100
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _number_text(value: int) -> str:
    """``str(value)``, or hexadecimal for an integer longer than ``str()`` allows."""
    try:
        return str(value)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return hex(value)


def _jsonable(value: Any, depth: int) -> Any:
    """Return ``value`` with everything strict JSON cannot carry replaced by a string."""
    if value is None or value.__class__ in (str, bool):
        return value
    if isinstance(value, int):
        try:
            str(value)  # what json.dumps will do: it refuses the same integers
        except ValueError:
            return hex(value)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE.get(value, "NaN")
    if depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): _jsonable(item, depth + 1) for key, item in value.items()}
    return _plain_text(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    value = _jsonable(key, _MAX_DEPTH)
    return value if isinstance(value, str) else json.dumps(value)


def _plain_text(value: Any) -> str:
    """``str(value)`` for what a decoder may hand over, never raising."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _shown(value: Any, depth: int = 0) -> str:
    """Return a short, bounded text for any value (a piece of a summary); never raises."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return _number_text(value)
    if isinstance(value, float):
        return repr(value)
    if depth >= 3:
        return "…"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v, depth + 1) for v in value[:4]) + "]"
    if isinstance(value, dict):
        items = list(value.items())[:4]
        return "{" + ", ".join(f"{_shown(k, 3)}: {_shown(v, depth + 1)}" for k, v in items) + "}"
    return _plain_text(value)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _user(data: Any) -> str:
    """Best display name of the user an event is about."""
    for path in (("author",), ("user",), ("member", "user")):
        user = _get(data, *path)
        if isinstance(user, dict):
            name = user.get("global_name") or user.get("username")
            if name:
                return str(name)
            if user.get("id"):
                return f"user {user['id']}"
    user_id = _get(data, "user_id")
    return f"user {user_id}" if user_id else "someone"


def _shorten(text: str, width: int = _CONTENT_WIDTH) -> str:
    text = " ".join(text.split())  # one line, whatever newlines the message had
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize(name: str, data: Any) -> str:
    """Return a short, one-line, human summary of a dispatch (never raises)."""
    try:
        return _summarize(name, data)
    except (ValueError, TypeError, RecursionError, OverflowError):
        # A field held what str() refuses (an integer of thousands of digits...).
        return _shorten(_shown(data))


def _summarize(name: str, data: Any) -> str:
    if name == "READY":
        guilds = _get(data, "guilds")
        count = len(guilds) if isinstance(guilds, list) else 0
        session = _get(data, "session_id") or "?"
        return f"as {_user(data)}, {count} guilds, session {session}"
    if name == "RESUMED":
        return "session resumed"
    if name in ("GUILD_CREATE", "GUILD_UPDATE"):
        members = _get(data, "member_count")
        extra = f", {members} members" if members is not None else ""
        return f"{_get(data, 'name') or _get(data, 'id')}{extra}"
    if name == "GUILD_DELETE":
        outage = " (unavailable)" if _get(data, "unavailable") else ""
        return f"guild {_get(data, 'id')}{outage}"
    if name == "MESSAGE_CREATE":
        content = _get(data, "content")
        text = _shorten(content) if isinstance(content, str) and content else "(no content)"
        return f"{_user(data)} in {_get(data, 'channel_id')}: {text}"
    if name in ("MESSAGE_UPDATE", "MESSAGE_DELETE"):
        return f"message {_get(data, 'id')} in {_get(data, 'channel_id')}"
    if name.startswith("MESSAGE_REACTION_"):
        emoji = _get(data, "emoji", "name") or "?"
        return f"{emoji} by {_user(data)} on {_get(data, 'message_id')}"
    if name == "TYPING_START":
        return f"{_user(data)} typing in {_get(data, 'channel_id')}"
    if name == "PRESENCE_UPDATE":
        return f"{_user(data)} is {_get(data, 'status') or '?'}"
    if name.startswith("GUILD_MEMBER_"):
        return f"{_user(data)} in guild {_get(data, 'guild_id')}"
    if name == "VOICE_STATE_UPDATE":
        channel = _get(data, "channel_id")
        where = f"in voice {channel}" if channel else "left voice"
        return f"{_user(data)} {where}"
    if name == "INTERACTION_CREATE":
        command = _get(data, "data", "name")
        what = f"/{command}" if command else f"interaction type {_get(data, 'type')}"
        return f"{what} by {_user(data)}"
    if name == "GUILD_MEMBERS_CHUNK":
        members = _get(data, "members")
        count = len(members) if isinstance(members, list) else 0
        index, total = _get(data, "chunk_index"), _get(data, "chunk_count")
        return f"{count} members, chunk {index}/{total}"
    return _generic_summary(data)


def _generic_summary(data: Any) -> str:
    if not isinstance(data, dict):
        return _shorten(_shown(data) if not isinstance(data, str) else repr(data))
    parts = [
        f"{_shown(key)}={_shown(value)}"
        for key, value in data.items()
        if isinstance(value, (str, int, float, bool)) and key != "nonce"
    ]
    return _shorten(" ".join(parts[:4])) if parts else f"{len(data)} fields"
