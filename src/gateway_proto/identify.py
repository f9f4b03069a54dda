"""Identify concurrency, as pure arithmetic: who may IDENTIFY, and when.

Theory of operation: Discord lets ``max_concurrency`` identifies start in each 5 s
window, one per *bucket* (``shard_id % max_concurrency``), and a fixed number of
session starts per ``reset_after`` (1000 a day for most bots; spending them all
resets the bot's token). Both limits span every shard of the application, across
processes and machines, so they cannot live inside one connection. This module
keeps the arithmetic, with time passed in; drivers wrap it in a lock (one process)
or in a shared store (many machines), sleep until the slot it hands out, then call
``GatewayConnection.identify(now)``. Resumes never take a slot.

Whose clock: Discord measures the window between IDENTIFYs as they *arrive*, and a
slot is handed out a moment before its IDENTIFY leaves (the permit has to reach
the shard, the shard has to write). Two identifies one window apart by the slots
can land less than a window apart at Discord when the first one took longer to
get out, and Discord then refuses the second (op 9). So a driver reports when the
IDENTIFY was actually written (:meth:`IdentifySchedule.identified`): the bucket
is then held for a full window from that moment, plus :data:`IDENTIFY_MARGIN` for
the jitter of the way to Discord, which no client can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "IDENTIFY_MARGIN",
    "IDENTIFY_WINDOW",
    "IdentifySchedule",
    "IdentifySlot",
    "SessionStartLimit",
]

#: Seconds each bucket is held after an identify.
IDENTIFY_WINDOW = 5.0
#: Seconds added to the window after an IDENTIFY was written (see
#: :meth:`IdentifySchedule.identified`): covers the jitter of its way to Discord.
IDENTIFY_MARGIN = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStartLimit:
    """``session_start_limit`` of ``GET /gateway/bot`` (``reset_after`` in seconds).

    Attributes:
        total: session starts allowed per window.
        remaining: session starts left in the current window.
        reset_after: seconds until the window resets.
        max_concurrency: identifies allowed per 5 s (the number of buckets).

    """

    total: int
    remaining: int
    reset_after: float
    max_concurrency: int

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SessionStartLimit:
        """Build from the API's object, whose ``reset_after`` is in milliseconds.

        Raises:
            ValueError: if a field is missing or not a number.

        """
        try:
            return cls(
                total=int(data["total"]),
                remaining=int(data["remaining"]),
                reset_after=float(data["reset_after"]) / 1000.0,
                max_concurrency=max(1, int(data.get("max_concurrency", 1))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed session_start_limit: {data!r}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifySlot:
    """When one shard may identify.

    Attributes:
        at: the time (on the caller's clock) from which the identify may be sent.
        bucket: the shard's bucket, ``shard_id % max_concurrency``.
        waits_for_reset: ``True`` if the session start budget is spent and the slot
            lies after its reset; a driver should tell the user it is waiting.

    """

    at: float
    bucket: int
    waits_for_reset: bool


class IdentifySchedule:
    """Hands out identify slots: one per bucket per window, within the start budget.

    Args:
        max_concurrency: the number of buckets.
        window: seconds a bucket stays taken after an identify (5 on Discord).
        limit: the session start budget, or ``None`` to ignore it.
        now: the time at which ``limit`` was fetched (its ``reset_after`` counts from it).
        margin: seconds added to the window when the caller reports the identify's
            send (:meth:`identified`).

    """

    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        window: float = IDENTIFY_WINDOW,
        limit: SessionStartLimit | None = None,
        now: float = 0.0,
        margin: float = IDENTIFY_MARGIN,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        if margin < 0:
            raise ValueError("margin must not be negative")
        self.max_concurrency = max_concurrency
        self.window = window
        self.margin = margin
        self._bucket_free: dict[int, float] = {}
        self._total: int | None = None
        self._remaining = 0
        self._reset_at = 0.0
        self._reset_every = 86400.0
        if limit is not None:
            self.update_limit(limit, now=now)

    def bucket(self, shard_id: int) -> int:
        """Return the bucket of a shard."""
        return shard_id % self.max_concurrency

    @property
    def remaining(self) -> int | None:
        """Session starts left (``None`` when no budget is tracked)."""
        return None if self._total is None else self._remaining

    @property
    def reset_at(self) -> float | None:
        """When the session start budget resets (``None`` when no budget is tracked)."""
        return None if self._total is None else self._reset_at

    def update_limit(self, limit: SessionStartLimit, *, now: float) -> None:
        """Take a freshly fetched budget (and its ``max_concurrency``) into account."""
        self._total = limit.total
        self._remaining = limit.remaining
        self._reset_at = now + limit.reset_after
        if limit.max_concurrency != self.max_concurrency:
            self.max_concurrency = limit.max_concurrency
            self._bucket_free.clear()

    def reserve(self, shard_id: int, *, now: float) -> IdentifySlot:
        """Reserve the earliest identify slot for a shard and return it.

        Calls made in shard order start buckets in order, as Discord asks. A slot
        is spent even if the caller then does not identify; reserve only when about
        to identify.
        """
        slot, remaining, reset_at = self._plan(shard_id, now)
        if self._total is not None:
            self._remaining, self._reset_at = remaining, reset_at
        self._bucket_free[slot.bucket] = slot.at + self.window
        return slot

    def identified(self, shard_id: int, *, now: float) -> None:
        """Note that the shard's IDENTIFY was written at ``now`` (after its :meth:`reserve`).

        The shard's bucket is then held until ``now + window + margin``, or longer
        if it already was: the window is measured from the send, not from the
        slot, so the time the permit took to become an IDENTIFY on the wire can't
        bring the next identify of the bucket inside Discord's window.
        """
        bucket = self.bucket(shard_id)
        held = now + self.window + self.margin
        self._bucket_free[bucket] = max(self._bucket_free.get(bucket, held), held)

    def peek(self, shard_id: int, *, now: float) -> IdentifySlot:
        """Return the slot :meth:`reserve` would hand out at ``now``, reserving nothing."""
        return self._plan(shard_id, now)[0]

    def copy(self) -> IdentifySchedule:
        """Return an independent copy (to try reservations out without spending them)."""
        clone = IdentifySchedule(self.max_concurrency, window=self.window, margin=self.margin)
        clone._bucket_free = dict(self._bucket_free)
        clone._total, clone._remaining = self._total, self._remaining
        clone._reset_at, clone._reset_every = self._reset_at, self._reset_every
        return clone

    def _plan(self, shard_id: int, now: float) -> tuple[IdentifySlot, int, float]:
        bucket = self.bucket(shard_id)
        at = max(now, self._bucket_free.get(bucket, now))
        waits = False
        remaining, reset_at = self._remaining, self._reset_at
        if self._total is not None:
            while at >= reset_at:
                remaining = self._total
                reset_at += self._reset_every
            if remaining <= 0:
                waits = True
                at = reset_at
                remaining = self._total
                reset_at += self._reset_every
            remaining -= 1
        return IdentifySlot(at=at, bucket=bucket, waits_for_reset=waits), remaining, reset_at
