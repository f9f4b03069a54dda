"""Identify limiter: who may IDENTIFY, and when, across every shard of a process.

The blocking twin of ``gateway_anyio._limiter``. The arithmetic (buckets of
``shard_id % max_concurrency``, one identify per bucket per window, the session
start budget) is ``gateway_proto.identify.IdentifySchedule``, and the order among
waiters of one bucket (lowest shard id first) is
``gateway_proto.driver_support.IdentifyQueue``; this module only adds a
:class:`threading.Lock` and a sleep. :class:`IdentifyLimiter` is the interface a
shard talks to, so a limiter shared across processes or machines can be plugged in
without touching the shard. Resumes never ask it.

A limiter may also have a non-blocking ``identify_sent(shard_id)``
(``gateway_proto.driver_support.TracksIdentifySends``): the shard calls it right
after writing the IDENTIFY its permit allowed, so the window can be counted from
the send, as Discord counts it from the arrival. :class:`InProcessIdentifyLimiter`
does, and adds ``gateway_proto.identify.IDENTIFY_MARGIN``.

A shard calls ``acquire`` from a short-lived helper thread, never from its I/O
thread, so waiting for a slot (a whole window, or the daily reset) never delays a
heartbeat; the ``cancel`` event lets the shard stop such a wait when it closes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gateway_proto.driver_support import IdentifyGrant, IdentifyWait, InProcessLimiterBase
from gateway_proto.identify import IDENTIFY_WINDOW, SessionStartLimit

__all__ = [
    "IdentifyCancelledError",
    "IdentifyGrant",
    "IdentifyLimiter",
    "InProcessIdentifyLimiter",
]

_log = logging.getLogger("gateway_sync.limiter")


class IdentifyCancelledError(Exception):
    """``acquire`` gave up because its ``cancel`` event was set (the shard is stopping)."""


@runtime_checkable
class IdentifyLimiter(Protocol):
    """What a shard needs from an identify limiter (thread-safe implementations only)."""

    def acquire(
        self,
        shard_id: int,
        *,
        on_wait: Callable[[IdentifyWait], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Return when ``shard_id`` may send IDENTIFY *now*.

        Call ``on_wait`` (if given) before waiting, so the shard can tell its user.
        Raise :class:`IdentifyCancelledError` promptly once ``cancel`` is set. A
        cancelled ``acquire`` may waste its slot; it must never hand one out twice.
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
        clock: the time source (default ``time.monotonic``); inject one in tests.
        sleep: sleeps a number of seconds on that clock (default: a wait on the
            ``cancel`` event, so a stopping shard is not held up).
        history: how many grants to keep in :attr:`history`.

    """

    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        window: float = IDENTIFY_WINDOW,
        limit: SessionStartLimit | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        history: int = 1000,
    ) -> None:
        super().__init__(
            max_concurrency,
            window=window,
            clock=clock or time.monotonic,
            history=history,
            log=_log,
        )
        self._sleep = sleep
        self._limit = limit
        self._lock = threading.Lock()

    def update_limit(self, limit: SessionStartLimit) -> None:
        """Take a freshly fetched session start budget into account."""
        with self._lock:
            self._schedule.update_limit(limit, now=self._clock())

    def identify_sent(self, shard_id: int) -> None:
        """Note that ``shard_id``'s IDENTIFY was just written: its window starts now."""
        with self._lock:
            super().identify_sent(shard_id)

    def acquire(
        self,
        shard_id: int,
        *,
        on_wait: Callable[[IdentifyWait], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Wait for ``shard_id``'s slot (see :meth:`IdentifyLimiter.acquire`)."""
        queue = self._queue
        with self._lock:
            if self._limit is not None:
                # The budget's reset_after counts from the first use, on our clock.
                self._schedule.update_limit(self._limit, now=self._clock())
                self._limit = None
            ticket = queue.add(shard_id)
        try:
            announced = False
            while True:
                if cancel is not None and cancel.is_set():
                    raise IdentifyCancelledError(f"shard {shard_id} stopped while waiting")
                with self._lock:
                    now = self._clock()
                    for granted in queue.grant(now):
                        self._record(granted)
                    if ticket.slot is not None:
                        return
                    wake_at = queue.wake_at(ticket, now)
                    wait = None if announced else queue.estimate(ticket, now)
                if wait is not None:
                    announced = True
                    self._announce(shard_id, wait, on_wait)
                # Sleep until the bucket's head is due, on *our* clock (an injected
                # one works); whoever wakes first grants it, so a waiter granted by
                # another returns when it wakes.
                left = max(0.0, wake_at - now)
                if self._sleep is not None:
                    self._sleep(left)
                elif cancel is not None:
                    cancel.wait(left)
                else:
                    time.sleep(left)
        finally:
            with self._lock:
                queue.remove(ticket)
