"""The outbound command rate limit: a sliding-window log, 120 payloads per 60 s.

Theory of operation (PROTOCOL.md section 8): Discord disconnects (close 4008) a
connection that sends more than 120 payloads in 60 seconds, and *every* payload
counts, heartbeats, IDENTIFY and RESUME included. Heartbeats may never wait, so
room for them is reserved instead: ``ceil(60 / heartbeat_interval) + 1``
permits that commands can't use (the periodic beats a window can hold, plus one
answer to an op 1), and the periodic heartbeats are *not* logged, because the
reserve already counts them. Everything else that bypasses the limiter
(IDENTIFY, RESUME, a heartbeat the server asked for with op 1) is logged with
:meth:`CommandRateLimiter.record`, so commands wait for it. Logging the periodic
beats as well would count them twice, and with a short interval (a fake gateway's
0.5 s) the doubled count alone filled the window: no command ever left.

The reserve never takes more than half the budget (:data:`MAX_HEARTBEAT_SHARE`):
commands always get at least ``limit // 2`` permits per window. A server whose
heartbeat interval needs more (under about 1 s: only fakes and test servers do
that, Discord asks for ~41 s) makes more than ``limit`` payloads per window
unavoidable by its own heartbeats alone; commands still flow, at half the budget.

Why a log and not a token bucket: a 120-token bucket refilling at 2/s lets about
240 payloads into one 60 s window (a full bucket, then the refill). A log of send
times answers exactly "how many were sent in the last 60 s", allows bursts, and
never exceeds the window. It holds at most ``limit`` entries plus heartbeats, so it
is small.

Times are plain floats on the caller's clock; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = [
    "COMMAND_LIMIT",
    "COMMAND_WINDOW",
    "MAX_HEARTBEAT_SHARE",
    "CommandRateLimiter",
    "heartbeat_reserve",
]

#: Payloads Discord allows per window and connection.
COMMAND_LIMIT = 120
#: The window, in seconds.
COMMAND_WINDOW = 60.0
#: The largest share of the budget the heartbeat reserve may take (the rest is
#: always left to commands).
MAX_HEARTBEAT_SHARE = 0.5


def heartbeat_reserve(
    interval: float, *, window: float = COMMAND_WINDOW, limit: int = COMMAND_LIMIT
) -> int:
    """Return the permits to keep for heartbeats every ``interval`` seconds.

    ``ceil(window / interval) + 1``, capped at ``limit * MAX_HEARTBEAT_SHARE``
    (60 of Discord's 120): a short interval never leaves commands without room.
    """
    if interval <= 0:
        raise ValueError("heartbeat interval must be positive")
    return min(math.ceil(window / interval) + 1, int(limit * MAX_HEARTBEAT_SHARE))


class CommandRateLimiter:
    """A sliding-window log of sent payloads, with room reserved for heartbeats.

    A payload sent at ``t`` counts until ``t + window`` (exclusive): at any time
    ``now`` the payloads counted are those with ``now - window < t <= now``. A
    command needs fewer than ``limit - reserved`` of them, so no half-open window
    of length ``window`` ever holds more than ``limit`` payloads as long as the
    periodic heartbeats (never logged) stay within their reserve.

    Args:
        limit: payloads allowed per window (Discord: 120).
        window: the window in seconds (Discord: 60).
        reserved: permits commands may not use (set from HELLO with
            :meth:`set_heartbeat_interval`; 0 until then).

    """

    __slots__ = ("_log", "limit", "reserved", "window")

    def __init__(
        self, limit: int = COMMAND_LIMIT, window: float = COMMAND_WINDOW, *, reserved: int = 0
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs limit >= 1 and window > 0")
        if not 0 <= reserved < limit:
            raise ValueError("reserved must be in [0, limit)")
        self.limit = limit
        self.window = window
        self.reserved = reserved
        self._log: deque[float] = deque()

    def set_heartbeat_interval(self, interval: float) -> bool:
        """Reserve room for heartbeats every ``interval`` seconds.

        The reserve never takes more than half the permits (see
        :func:`heartbeat_reserve`), so commands always make progress.

        Returns:
            ``True`` if the heartbeats need more room than that cap leaves them
            (the interval is too short for the budget: only test servers do it).

        """
        self.reserved = heartbeat_reserve(interval, window=self.window, limit=self.limit)
        return math.ceil(self.window / interval) + 1 > self.reserved

    @property
    def capacity(self) -> int:
        """Permits per window commands may use: ``limit - reserved``."""
        return self.limit - self.reserved

    def _prune(self, now: float) -> deque[float]:
        # ``t + window <= now``, the same sum next_available() returns, so a deadline
        # it hands out always frees the permit despite float rounding.
        log = self._log
        window = self.window
        while log and log[0] + window <= now:
            log.popleft()
        return log

    def used(self, now: float) -> int:
        """Return how many logged payloads (all but periodic heartbeats) count at ``now``."""
        return len(self._prune(now))

    def available(self, now: float) -> int:
        """Return how many commands may be sent at ``now`` (0 if none)."""
        return max(0, self.capacity - len(self._prune(now)))

    def next_available(self, now: float) -> float:
        """Return the earliest time, ``now`` or later, at which a command may be sent."""
        log = self._prune(now)
        excess = len(log) - self.capacity
        if excess < 0:
            return now
        return log[excess] + self.window

    def try_acquire(self, now: float) -> bool:
        """Take a permit for a command at ``now``; return ``False`` (and log nothing) if none."""
        log = self._prune(now)
        if len(log) >= self.capacity:
            return False
        self.record(now)
        return True

    def record(self, now: float) -> None:
        """Log a payload that bypasses the limiter (IDENTIFY, RESUME, an op 1 heartbeat).

        Periodic heartbeats are not logged: the reserve stands for them.
        """
        log = self._prune(now)
        if log and now < log[-1]:
            # A clock that went backwards must not break the log's order.
            now = log[-1]
        log.append(now)
