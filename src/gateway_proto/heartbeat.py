"""Heartbeat timing as pure arithmetic: when to beat, whether the peer is alive, latency.

Theory of operation (PROTOCOL.md section 6.1): when HELLO arrives the first
heartbeat is due after ``interval * jitter`` (``jitter`` in ``[0, 1)``, drawn from an
injected :class:`random.Random` so thousands of shards don't beat in step), then one
every ``interval``. The first beat is never later than :data:`FIRST_BEAT_LATEST` of
an interval: a server may close 4000 when the first heartbeat comes later than one
interval after *its* HELLO (PROTOCOL.md 13b), and a jitter near 1 plus the trip
both ways would land past that; the rest of the interval is the trip's margin.
Every deadline is then moved back to a multiple of the ``grid`` (seconds on the
``now`` clock, at most :data:`MAX_GRID_FRACTION` of the interval): heartbeating
early is allowed (PROTOCOL.md 6.1), and it lets all the shards of one process whose
beats fall between two grid points beat together, so one wake-up of the event loop
serves them all instead of one each. A grid of 0 keeps the exact schedule. The
cap keeps the periodic beats within the rate limiter's reserve for them
(``ceil(60 / interval) + 1`` per 60 s; a property test checks it).
Each heartbeat must be acknowledged (op 11) before the next *periodic* one is due;
if it isn't, the connection is a zombie and must be dropped (with a code that
keeps the session). A heartbeat Discord asks for (a received
op 1) goes out at once, doesn't move the periodic schedule, and its ACK counts too.

:class:`Heartbeater` never reads a clock: every method takes ``now`` (seconds on any
monotonic clock) and the connection calls them from ``receive_data`` and
``handle_timeout``.
"""

from __future__ import annotations

__all__ = [
    "FIRST_BEAT_LATEST",
    "MAX_GRID_FRACTION",
    "MAX_HEARTBEAT_INTERVAL_MS",
    "MIN_HEARTBEAT_INTERVAL_MS",
    "Heartbeater",
]

#: The shortest ``heartbeat_interval`` (milliseconds) a HELLO may carry. Discord
#: sends 41,250; test servers send tens of milliseconds. Below one millisecond
#: the schedule is meaningless (and a denormal like ``1e-322`` divides to zero).
MIN_HEARTBEAT_INTERVAL_MS = 1
#: The longest ``heartbeat_interval`` (milliseconds) a HELLO may carry: one hour.
#: Every deadline the connection hands out stays within it of ``now``, so a driver
#: can always pass it to ``select()`` or a timer (a 1e11 ms interval overflowed them).
MAX_HEARTBEAT_INTERVAL_MS = 3_600_000
#: The latest the first heartbeat may be due, as a fraction of the interval (4.1 s of
#: Discord's 41.25 s are left for HELLO's and the heartbeat's trips).
FIRST_BEAT_LATEST = 0.9
#: The largest grid, as a fraction of the interval: a heartbeat is never more than
#: this much of an interval early (5.2 s of Discord's 41.25 s), whatever grid is
#: asked for, so test servers' short intervals keep a schedule.
MAX_GRID_FRACTION = 0.125


class Heartbeater:
    """The heartbeat schedule and ACK bookkeeping of one connection.

    Args:
        interval: seconds between heartbeats (HELLO's milliseconds / 1000).
        now: when HELLO arrived.
        jitter: a number in ``[0, 1)``; the first heartbeat is due at
            ``now + interval * min(jitter, FIRST_BEAT_LATEST)``.
        grid: seconds; each deadline moves back to the multiple of it at or before
            it (capped at ``interval * MAX_GRID_FRACTION``; 0: no grid).

    Attributes:
        interval: seconds between periodic heartbeats.
        next_due: when the next periodic heartbeat is due.
        latency: seconds between the last acknowledged heartbeat and its ACK
            (``None`` until the first ACK).

    """

    __slots__ = ("_acked", "_grid", "_sent_at", "interval", "latency", "next_due")

    def __init__(
        self, interval: float, *, now: float, jitter: float, grid: float = 0.0
    ) -> None:
        if interval <= 0:
            raise ValueError("heartbeat interval must be positive")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        if not grid >= 0.0:  # NaN too
            raise ValueError("grid must be a non-negative number of seconds")
        self.interval = interval
        self._grid = min(grid, interval * MAX_GRID_FRACTION)
        self.next_due = self._on_grid(now + interval * min(jitter, FIRST_BEAT_LATEST))
        self.latency: float | None = None
        # When the heartbeat awaiting its ACK was sent (None: nothing outstanding).
        self._sent_at: float | None = None
        # Whether an ACK came back since the last periodic heartbeat (True before any).
        self._acked = True

    def is_due(self, now: float) -> bool:
        """Whether the periodic heartbeat is due at ``now``."""
        return now >= self.next_due

    def is_zombie(self) -> bool:
        """Whether the last periodic heartbeat is still unacknowledged.

        Ask this when :meth:`is_due` turns true, before sending the next beat: a
        ``True`` answer means the connection is dead (a "zombie").
        """
        return not self._acked

    def beat(self, now: float) -> None:
        """Record the periodic heartbeat sent at ``now``; the next is due an interval later."""
        self._acked = False
        self._sent_at = now
        self.next_due = self._on_grid(now + self.interval)

    def beat_requested(self, now: float) -> None:
        """Record a heartbeat sent because the server asked (op 1); the schedule stays."""
        self._sent_at = now

    def ack(self, now: float) -> float | None:
        """Record an ACK received at ``now``; return the latency it measures.

        Returns ``None`` for an ACK no heartbeat was waiting for (the latency
        keeps its previous value then).
        """
        self._acked = True
        sent_at = self._sent_at
        if sent_at is None:
            return None
        self._sent_at = None
        latency = self.latency = max(0.0, now - sent_at)
        return latency

    def _on_grid(self, due: float) -> float:
        grid = self._grid
        return due - due % grid if grid else due
