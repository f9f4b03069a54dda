"""Identify limiter: who may IDENTIFY, and when, across every shard of a process.

The arithmetic (buckets of ``shard_id % max_concurrency``, one identify per bucket
per window, the session start budget) is ``gateway_proto.identify.IdentifySchedule``;
the order among waiters of one bucket (lowest shard id first) is
``gateway_proto.driver_support.IdentifyQueue``; this module only adds a sleep.
:class:`IdentifyLimiter` is the interface a shard talks to, so a limiter shared
across processes or machines (Redis, a broker) can be plugged in without touching
the shard. Resumes never ask it.

A limiter may also have a non-blocking ``identify_sent(shard_id)``
(``gateway_proto.driver_support.TracksIdentifySends``): the shard calls it right
after writing the IDENTIFY its permit allowed, so the window can be counted from
the send, as Discord counts it from the arrival. :class:`InProcessIdentifyLimiter`
does, and adds ``gateway_proto.identify.IDENTIFY_MARGIN``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from gateway_proto.driver_support import IdentifyGrant, IdentifyWait, InProcessLimiterBase
from gateway_proto.identify import IDENTIFY_WINDOW, SessionStartLimit

__all__ = ["IdentifyGrant", "IdentifyLimiter", "InProcessIdentifyLimiter"]

_log = logging.getLogger("gateway_anyio.limiter")


@runtime_checkable
class IdentifyLimiter(Protocol):
    """What a shard needs from an identify limiter."""

    async def acquire(
        self, shard_id: int, *, on_wait: Callable[[IdentifyWait], None] | None = None
    ) -> None:
        """Return when ``shard_id`` may send IDENTIFY *now*.

        Call ``on_wait`` (if given) before waiting, so the shard can tell its user.
        A cancelled ``acquire`` may waste its slot; it must never hand one out twice.
        """
        ...


class InProcessIdentifyLimiter(InProcessLimiterBase):
    """An :class:`IdentifyLimiter` for the shards of one process.

    One identify per bucket per window; when several shards of one bucket wait,
    the lowest shard id is granted first (Discord wants buckets started in order).

    Args:
        max_concurrency: identify buckets (``max_concurrency`` of ``GET /gateway/bot``).
        window: seconds a bucket is held after an identify (Discord: 5).
        limit: the session start budget; with it, the limiter never identifies once
            ``remaining`` is spent, and waits for ``reset_after`` instead.
        clock: the time source (default ``anyio.current_time``); inject one in tests.
        sleep: sleeps a number of seconds on that clock (default ``anyio.sleep``).
        history: how many grants to keep in :attr:`history`.

    """

    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        window: float = IDENTIFY_WINDOW,
        limit: SessionStartLimit | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        history: int = 1000,
    ) -> None:
        super().__init__(
            max_concurrency,
            window=window,
            clock=clock or anyio.current_time,
            history=history,
            log=_log,
        )
        self._sleep = sleep or anyio.sleep
        self._limit = limit

    def update_limit(self, limit: SessionStartLimit) -> None:
        """Take a freshly fetched session start budget into account."""
        self._schedule.update_limit(limit, now=self._clock())

    async def acquire(
        self, shard_id: int, *, on_wait: Callable[[IdentifyWait], None] | None = None
    ) -> None:
        """Wait for ``shard_id``'s slot (see :meth:`IdentifyLimiter.acquire`)."""
        if self._limit is not None:
            # The budget's reset_after counts from the first use, on our clock.
            self._schedule.update_limit(self._limit, now=self._clock())
            self._limit = None
        # No lock: the queue is only touched between checkpoints of one event loop.
        queue = self._queue
        ticket = queue.add(shard_id)
        try:
            announced = False
            while True:
                now = self._clock()
                for granted in queue.grant(now):
                    self._record(granted)
                if ticket.slot is not None:
                    return
                if not announced:
                    announced = True
                    self._announce(shard_id, queue.estimate(ticket, now), on_wait)
                # Sleep until the bucket's head is due, on *our* clock (an injected
                # one works); whoever wakes first grants it, so a waiter granted by
                # another returns when it wakes.
                await self._sleep(max(0.0, queue.wake_at(ticket, now) - now))
        finally:
            queue.remove(ticket)
