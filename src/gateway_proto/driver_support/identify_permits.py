"""Identify permits: the wait queue, the in-process limiters' bookkeeping, identify-sent tracking.

:class:`IdentifyQueue` lets the lowest shard id of each bucket go first;
:class:`InProcessLimiterBase` is what both drivers' in-process limiters share;
:class:`TracksIdentifySends` and :func:`note_identify_sent` tell a limiter when an
IDENTIFY was actually written; :class:`TracksSessionStartLimit` and
:func:`note_session_start_limit` hand it a fetched session start budget;
:func:`announce_identify_wait` is how every limiter reports a wait.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gateway_proto.identify import IdentifySchedule, IdentifySlot, SessionStartLimit

from .shard_events import IdentifyWait


@dataclass(eq=False, slots=True)
class IdentifyTicket:
    """One shard's place in an :class:`IdentifyQueue`.

    Attributes:
        shard_id: the shard asking.
        order: arrival number (breaks ties between two requests of one shard).
        slot: the slot granted, or ``None`` while waiting.

    """

    shard_id: int
    order: int
    slot: IdentifySlot | None = None


class IdentifyQueue:
    """Identify requests waiting for a permit: per bucket, the lowest shard id goes first.

    Why: the arithmetic of :class:`~gateway_proto.identify.IdentifySchedule` hands
    slots out in call order, and shards call when their connection happens to be
    ready, so shard 1 could identify before shard 0. Discord asks for buckets to be
    started in order. Here a request only reserves its slot when it is *due* (its
    bucket is free and it has the lowest id of its bucket's waiters); until then
    any lower id that arrives goes ahead of it. A request whose bucket is free and
    that nobody waits before is granted at once, so nothing waits for no reason.

    Drivers call :meth:`add`, then :meth:`grant` whenever they wake (it returns every
    ticket that became due, and sets its ``slot``), sleep until :meth:`wake_at`, and
    :meth:`remove` a ticket whose wait was abandoned. Not thread-safe: wrap it in a
    lock where threads share it.

    Args:
        schedule: the buckets, the window and the session start budget.

    """

    def __init__(self, schedule: IdentifySchedule) -> None:
        self.schedule = schedule
        self._waiting: list[IdentifyTicket] = []
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, shard_id: int) -> IdentifyTicket:
        """Queue a request for ``shard_id`` and return its ticket."""
        self._arrivals += 1
        ticket = IdentifyTicket(shard_id, self._arrivals)
        self._waiting.append(ticket)
        return ticket

    def remove(self, ticket: IdentifyTicket) -> None:
        """Withdraw a waiting ticket (a granted or unknown one is ignored)."""
        if ticket in self._waiting:
            self._waiting.remove(ticket)

    def grant(self, now: float) -> list[IdentifyTicket]:
        """Reserve a slot for every request due at ``now``; return those tickets, in order."""
        granted: list[IdentifyTicket] = []
        while True:
            for head in self._heads():
                if self.schedule.peek(head.shard_id, now=now).at <= now:
                    head.slot = self.schedule.reserve(head.shard_id, now=now)
                    self._waiting.remove(head)
                    granted.append(head)
                    break  # that bucket is taken now: look at the heads again
            else:
                return granted

    def wake_at(self, ticket: IdentifyTicket, now: float) -> float:
        """Return when the waiters of ``ticket``'s bucket should look again (its head is due)."""
        head = self._head_of(self.schedule.bucket(ticket.shard_id))
        return self.schedule.peek((head or ticket).shard_id, now=now).at

    def estimate(self, ticket: IdentifyTicket, now: float) -> IdentifyWait:
        """Return the wait ``ticket`` can expect if no lower shard id arrives meanwhile."""
        trial = self.schedule.copy()
        bucket = trial.bucket(ticket.shard_id)
        at = now
        for ahead in self._ordered():
            if ahead is ticket:
                break
            if trial.bucket(ahead.shard_id) == bucket:
                at = trial.reserve(ahead.shard_id, now=at).at
        slot = trial.peek(ticket.shard_id, now=at)
        return IdentifyWait(max(0.0, slot.at - now), slot.bucket, slot.waits_for_reset)

    def _ordered(self) -> list[IdentifyTicket]:
        return sorted(self._waiting, key=lambda t: (t.shard_id, t.order))

    def _heads(self) -> list[IdentifyTicket]:
        heads: dict[int, IdentifyTicket] = {}
        for ticket in self._ordered():
            heads.setdefault(self.schedule.bucket(ticket.shard_id), ticket)
        return list(heads.values())  # lowest shard id first: buckets start in order

    def _head_of(self, bucket: int) -> IdentifyTicket | None:
        for ticket in self._ordered():
            if self.schedule.bucket(ticket.shard_id) == bucket:
                return ticket
        return None


@dataclass(frozen=True, slots=True)
class IdentifyGrant:
    """One identify permit, as an in-process identify limiter recorded it.

    Attributes:
        shard_id: the shard that got it.
        bucket: its bucket.
        at: the limiter clock's time from which the shard could identify.

    """

    shard_id: int
    bucket: int
    at: float


@runtime_checkable
class TracksIdentifySends(Protocol):
    """An identify limiter that wants to know when each IDENTIFY was actually written.

    Optional for an identify limiter: a limiter that has this method is told, right
    after the shard wrote the IDENTIFY its permit allowed, and can measure the
    window from then instead of from the permit (Discord measures it as IDENTIFYs
    arrive; see :mod:`gateway_proto.identify`). The in-process limiters do.
    """

    def identify_sent(self, shard_id: int) -> None:
        """``shard_id``'s IDENTIFY was written just now; must not block."""
        ...


def note_identify_sent(limiter: object, shard_id: int) -> None:
    """Tell ``limiter`` that ``shard_id``'s IDENTIFY was written, if it keeps track."""
    if isinstance(limiter, TracksIdentifySends):
        limiter.identify_sent(shard_id)


@runtime_checkable
class TracksSessionStartLimit(Protocol):
    """An identify limiter that takes the session start budget of ``GET /gateway/bot``.

    Optional for an identify limiter: a ``Cluster`` given a limiter that has this
    method feeds it the ``session_start_limit`` of every fetch it makes (the
    in-process limiters, and ``gateway_redis``'s, which seeds the shared budget).
    """

    def update_limit(self, limit: SessionStartLimit) -> None:
        """Take a freshly fetched budget (and its ``max_concurrency``) into account."""
        ...


def note_session_start_limit(limiter: object, limit: SessionStartLimit) -> None:
    """Give ``limiter`` a freshly fetched session start budget, if it takes one."""
    if isinstance(limiter, TracksSessionStartLimit):
        limiter.update_limit(limit)


class InProcessLimiterBase:
    """What both drivers' in-process identify limiters share (no waiting, no lock).

    Holds the schedule (bucket arithmetic), the queue (lowest shard id first) and
    the grant history; the drivers add only the wait (and, for threads, a lock).
    """

    def __init__(
        self,
        max_concurrency: int,
        *,
        window: float,
        clock: Callable[[], float],
        history: int,
        log: logging.Logger,
    ) -> None:
        self._clock = clock
        self._schedule = IdentifySchedule(max_concurrency, window=window)
        self._queue = IdentifyQueue(self._schedule)
        self._log = log
        #: The most recent grants, oldest first (for metrics and tests).
        self.history: deque[IdentifyGrant] = deque(maxlen=history)
        #: Times a shard had to wait for its permit (for metrics).
        self.waits = 0

    @property
    def max_concurrency(self) -> int:
        """The number of buckets."""
        return self._schedule.max_concurrency

    @property
    def remaining(self) -> int | None:
        """Session starts left, if a budget is tracked."""
        return self._schedule.remaining

    @property
    def reset_in(self) -> float | None:
        """Seconds until the session start budget resets, if a budget is tracked."""
        reset_at = self._schedule.reset_at
        return None if reset_at is None else max(0.0, reset_at - self._clock())

    def identify_sent(self, shard_id: int) -> None:
        """Note that ``shard_id``'s IDENTIFY was just written (see :class:`TracksIdentifySends`).

        Its bucket is held for a full window (plus
        :data:`~gateway_proto.identify.IDENTIFY_MARGIN`) from now, on this limiter's clock.
        """
        self._schedule.identified(shard_id, now=self._clock())

    def _record(self, ticket: IdentifyTicket) -> None:
        slot = ticket.slot
        assert slot is not None
        self.history.append(IdentifyGrant(ticket.shard_id, slot.bucket, slot.at))

    def _announce(
        self, shard_id: int, wait: IdentifyWait, on_wait: Callable[[IdentifyWait], None] | None
    ) -> None:
        self.waits += 1
        announce_identify_wait(self._log, shard_id, wait, on_wait)


def announce_identify_wait(
    log: logging.Logger,
    shard_id: int,
    wait: IdentifyWait,
    on_wait: Callable[[IdentifyWait], None] | None,
) -> None:
    """Log an identify wait the way every limiter does, then tell the shard (``on_wait``).

    A spent session start budget is a warning (the user should learn why nothing
    connects); a bucket wait is routine, so only a debug line.
    """
    if wait.waits_for_reset:
        log.warning(
            "session start limit spent: shard %d waits %.0f s for the budget to reset",
            shard_id,
            wait.delay,
        )
    else:
        log.debug("shard %d waits %.2f s for identify bucket %d", shard_id, wait.delay, wait.bucket)
    if on_wait is not None:
        on_wait(wait)
