"""Request guild members: matching ``GUILD_MEMBERS_CHUNK`` and ``RATE_LIMITED`` to one request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MAX_RETRY_AFTER", "ChunkOutcome", "MemberChunkCollector", "retry_after"]

#: The longest wait a ``RATE_LIMITED`` answer can impose, in seconds; a longer
#: ``retry_after`` (1e10 overflowed the sync driver's wait) is cut to this.
#: Discord's member-request window is well under it.
MAX_RETRY_AFTER: Final = 60.0
#: The opcode ``RATE_LIMITED.opcode`` names for a member request.
_REQUEST_GUILD_MEMBERS: Final = 8


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """What one matching dispatch means for a member request.

    Attributes:
        members: members carried by this chunk.
        done: the last chunk arrived (``chunk_index == chunk_count - 1``).
        retry_after: set when Discord answered ``RATE_LIMITED``: wait this long,
            then send the request again.

    """

    members: list[Any]
    done: bool
    retry_after: float | None = None


class MemberChunkCollector:
    """Matches ``GUILD_MEMBERS_CHUNK`` and ``RATE_LIMITED`` dispatches to one request.

    Args:
        nonce: the request's nonce (fresh per request, at most 32 bytes).
        guild_id: the guild asked about.

    """

    def __init__(self, nonce: str, guild_id: str) -> None:
        self.nonce = nonce
        self.guild_id = guild_id
        self._seen_chunks: set[int] = set()

    def feed(self, name: str, data: Any) -> ChunkOutcome | None:
        """Return the outcome of a dispatch, or ``None`` if it is not for this request."""
        if not isinstance(data, Mapping):
            return None
        if name == "GUILD_MEMBERS_CHUNK" and data.get("nonce") == self.nonce:
            members = data.get("members")
            index = data.get("chunk_index", 0)
            count = data.get("chunk_count", 1)
            if isinstance(index, int):
                self._seen_chunks.add(index)
            done = isinstance(count, int) and len(self._seen_chunks) >= count
            return ChunkOutcome(list(members) if isinstance(members, list) else [], done)
        if name == "RATE_LIMITED":
            meta = data.get("meta")
            opcode = data.get("opcode", _REQUEST_GUILD_MEMBERS)
            if not isinstance(meta, Mapping) or opcode.__class__ is not int:
                return None
            if opcode != _REQUEST_GUILD_MEMBERS:
                return None  # another command was limited
            # The nonce is optional in meta; fall back to the guild for old servers.
            nonce = meta.get("nonce")
            if nonce == self.nonce or (nonce is None and self._is_guild(meta.get("guild_id"))):
                return ChunkOutcome([], False, retry_after=retry_after(data.get("retry_after")))
        return None

    def _is_guild(self, guild_id: Any) -> bool:
        # A snowflake as a str, or as an int (ETF below 2**53): str() only on a
        # bounded int, as a 20,000-bit one would raise.
        if guild_id.__class__ is int and -(2**64) < guild_id < 2**64:
            guild_id = str(guild_id)
        return guild_id.__class__ is str and guild_id == self.guild_id


def retry_after(value: Any) -> float:
    """Return the seconds a ``RATE_LIMITED`` ``retry_after`` asks to wait, made safe to sleep.

    A number is clamped to ``[0, MAX_RETRY_AFTER]`` (an infinity or an integer too
    large for a float too: compared before any conversion); anything else (a
    missing value, NaN, a bool, a string) means the default of 1 s.
    """
    if value.__class__ is not int and value.__class__ is not float:
        return 1.0
    if value != value:  # noqa: PLR0124 - NaN (math.isnan would overflow on a bignum)
        return 1.0
    if value >= MAX_RETRY_AFTER:
        return MAX_RETRY_AFTER
    if value <= 0:
        return 0.0
    return float(value)
