"""Sessions (what a RESUME can pick up again) and the app-wide limits Discord keeps.

Theory of operation: a :class:`FakeSession` outlives connections. Every dispatch it
gets takes the next sequence number and goes into a bounded replay buffer, whether
or not a connection is attached, so a RESUME can replay ``s > seq`` in order. A
session dies when the client closes with 1000/1001, when the fake closes with a
code that ends sessions (4003/4004/4007/4009-4014), on op 9 ``false``, or
``session_ttl`` seconds after its last connection went away.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SESSION_ENDING_CODES", "Dispatch", "FakeSession", "FixedWindow", "SlidingWindow"]

#: Server close codes after which the session cannot be resumed (PROTOCOL.md 7).
SESSION_ENDING_CODES = frozenset({4003, 4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A dispatch as the session numbered it."""

    s: int
    t: str
    d: Any


@dataclass(eq=False)
class FakeSession:
    """A gateway session: id, shard, guilds, sequence and replay buffer.

    Attributes:
        session_id: the id READY carried.
        shard: ``(shard_id, shard_count)`` from Identify (``(0, 1)`` without one).
        guild_ids: the guilds routed to this shard.
        intents: the intents Identify asked for.
        seq: the last sequence number given out.
        invalidated: set once the session can no longer be resumed.
        detached_at: when the last connection went away (``None`` while attached).

    """

    session_id: str
    shard: tuple[int, int]
    guild_ids: list[str]
    intents: int
    buffer_size: int
    seq: int = 0
    invalidated: bool = False
    detached_at: float | None = None
    buffer: deque[Dispatch] = field(default_factory=deque)

    def number(self, t: str, d: Any) -> Dispatch:
        """Give ``(t, d)`` the next sequence number and keep it for replay."""
        self.seq += 1
        dispatch = Dispatch(self.seq, t, d)
        self.buffer.append(dispatch)
        while len(self.buffer) > self.buffer_size:
            self.buffer.popleft()
        return dispatch

    def missed(self, seq: int, *, inclusive: bool = False) -> list[Dispatch] | None:
        """Return the dispatches after ``seq``, or ``None`` if ``seq`` cannot be resumed from.

        ``inclusive``: start at ``seq`` itself, as a server that exists does (the
        client gets its last dispatch a second time).
        """
        if seq < 0 or seq > self.seq:
            return None
        oldest = self.buffer[0].s if self.buffer else self.seq + 1
        if seq + 1 < oldest:
            return None  # some of the missed dispatches were already dropped from the buffer
        first = seq if inclusive else seq + 1
        return [d for d in self.buffer if d.s >= first]

    def owns_guild(self, guild_id: str) -> bool:
        """Tell whether ``guild_id`` routes to this session's shard."""
        shard_id, count = self.shard
        return (int(guild_id) >> 22) % count == shard_id


class SlidingWindow:
    """At most ``limit`` events in any ``period`` seconds (a log of times, not a bucket)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque()

    def hit(self, now: float) -> bool:
        """Record an event at ``now``; return ``False`` if it goes over the limit."""
        while self._times and self._times[0] <= now - self.period:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) <= self.limit


class FixedWindow:
    """At most ``limit`` events per fixed window of ``period`` seconds.

    Windows start at the first event and follow each other back to back; the
    count starts over at each boundary (what one server reimplementation does,
    rather than Discord's sliding window: it lets up to ``2 * limit`` through
    around a boundary, and never trips a client that keeps to a sliding window).
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._start: float | None = None
        self._count = 0

    def hit(self, now: float) -> bool:
        """Record an event at ``now``; return ``False`` if it goes over the limit."""
        start = self._start
        if start is None:
            self._start = start = now
        elif now >= start + self.period:
            self._start = start = start + (now - start) // self.period * self.period
            self._count = 0
        self._count += 1
        return self._count <= self.limit
