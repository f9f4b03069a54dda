"""Request guild members: matching ``GUILD_MEMBERS_CHUNK`` and ``RATE_LIMITED`` to one request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
            if not isinstance(meta, Mapping):
                return None
            # The nonce is optional in meta; fall back to the guild for old servers.
            nonce = meta.get("nonce")
            if nonce == self.nonce or (
                nonce is None and str(meta.get("guild_id")) == self.guild_id
            ):
                retry = data.get("retry_after")
                delay = float(retry) if isinstance(retry, (int, float)) else 1.0
                return ChunkOutcome([], False, retry_after=max(0.0, delay))
        return None
