"""The part of the Redis identify limiters that does no I/O: scripts, keys, answers, waits.

Theory of operation. Each identify asks one Lua script (:data:`ACQUIRE_SCRIPT`),
which Redis runs atomically, so two processes can never both win a bucket:

1. it seeds the shared session start budget if the key is absent (``SET NX PX``,
   expiring at the budget's reset), or, after a fresh ``GET /gateway/bot``, lowers
   it to the fetched ``remaining`` (a fetch never *raises* it: another process
   may have spent part of it since Discord counted);
2. a spent budget answers "wait for its reset" (the key's ``PTTL``);
3. a held bucket answers "wait" with the bucket key's ``PTTL``;
4. otherwise it decrements the budget and takes the bucket key for
   ``window + margin`` (``SET PX``): the *provisional* hold. A holder that dies
   before its IDENTIFY leaves blocks the bucket no longer than that.

After the IDENTIFY was written, :data:`SENT_SCRIPT` holds the bucket for
``window + margin`` from then (never shorter than it already is), the way the
in-process limiter counts the window from the send (``gateway_proto.identify``).
All durations are the Redis server's (``PX``/``PTTL``): processes on other
machines need no common clock.

Within one process, only the lowest waiting shard id of a bucket asks Redis; the
others wait until the bucket is due locally, so local shards start in id order.
Across processes the order is best effort: whoever asks first once a bucket
frees wins it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway_proto.driver_support import IdentifyGrant, IdentifyWait, announce_identify_wait
from gateway_proto.identify import SessionStartLimit

from ._keys import Keys

__all__ = [
    "ACQUIRE_SCRIPT",
    "SENT_SCRIPT",
    "IdentifyCoordinator",
    "RedisCall",
    "Waiter",
]

_log = logging.getLogger("gateway_redis.identify")

#: KEYS: the bucket, the budget. ARGV: holder, hold ms, budget mode (0 unknown,
#: 1 seed if absent, 2 seed if absent else lower to the seed), seed remaining,
#: seed ms to the reset. Answers {1, remaining or -1}, {0, ms the bucket is held},
#: {2, ms to the budget's reset}.
ACQUIRE_SCRIPT = """
local mode = tonumber(ARGV[3])
if mode > 0 then
  local seeded = redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5], 'NX')
  if not seeded and mode == 2 then
    local left = tonumber(redis.call('GET', KEYS[2]))
    if left ~= nil and left > tonumber(ARGV[4]) then
      redis.call('SET', KEYS[2], ARGV[4], 'KEEPTTL')
    end
  end
end
local budget = redis.call('GET', KEYS[2])
if budget and tonumber(budget) <= 0 then
  return {2, redis.call('PTTL', KEYS[2])}
end
local held = redis.call('PTTL', KEYS[1])
if held > 0 then
  return {0, held}
end
local remaining = -1
if budget then
  remaining = redis.call('DECR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, remaining}
"""

#: KEYS: the bucket. ARGV: holder, hold ms. Holds the bucket at least that long from now.
SENT_SCRIPT = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""

_GRANTED, _BUCKET_HELD, _BUDGET_SPENT = 1, 0, 2
#: Seconds between two looks at a spent budget: its key may be lowered, deleted by
#: an operator or lost with Redis, and a waiter should notice within a minute.
BUDGET_RECHECK = 60.0
#: Seconds a local waiter behind its bucket's head first looks again while the head
#: is asking Redis (the answer takes a round trip, so this is short), doubling up to
#: the next.
LOCAL_POLL, LOCAL_POLL_MAX = 0.005, 0.25
#: Redis unreachable: the first retry after this many seconds, doubling up to the next.
RETRY_FIRST, RETRY_MAX = 0.1, 2.0
#: Discord's budget window when a process knows only the reset it fetched.
_RESET_EVERY = 86_400.0


@dataclass(frozen=True, slots=True)
class RedisCall:
    """One script call to make: its keys and arguments."""

    keys: list[str]
    args: list[str | int]


@dataclass(eq=False, slots=True)
class Waiter:
    """One ``acquire`` in progress (its place among the process's local waiters)."""

    shard_id: int
    order: int
    on_wait: Callable[[IdentifyWait], None] | None
    announced: bool = False
    announced_reset: bool = False
    failures: int = 0
    polls: int = 0


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class IdentifyCoordinator:
    """The bookkeeping both Redis limiters share; they add only the calls and the sleeps.

    Not thread-safe: the blocking limiter wraps it in a lock. Every method that
    depends on time takes ``now`` on the limiter's monotonic clock.
    """

    def __init__(
        self,
        keys: Keys,
        *,
        max_concurrency: int,
        window: float,
        margin: float,
        limit: SessionStartLimit | None,
        now: float,
        holder: str,
        history: int,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if window <= 0 or margin < 0:
            raise ValueError("window must be positive and margin not negative")
        self.keys = keys
        self.max_concurrency = max_concurrency
        self.window = window
        self.margin = margin
        self._holder = holder
        self._limit: SessionStartLimit | None = None
        self._limit_at = 0.0
        self._fresh = False
        self._waiting: list[Waiter] = []
        self._arrivals = 0
        self._free_at: dict[int, float] = {}
        self._budget_free_at = 0.0
        #: Session starts left after the last grant here (``None``: no budget known).
        self.remaining: int | None = None
        #: This process's most recent grants, oldest first (``at`` on the limiter's clock).
        self.history: deque[IdentifyGrant] = deque(maxlen=history)
        if limit is not None:
            self.update_limit(limit, now=now)

    @property
    def hold(self) -> float:
        """Seconds a grant, and then a written IDENTIFY, holds its bucket."""
        return self.window + self.margin

    def bucket(self, shard_id: int) -> int:
        """Return the bucket of a shard."""
        return shard_id % self.max_concurrency

    def update_limit(self, limit: SessionStartLimit, *, now: float) -> None:
        """Remember a fetched budget; the next call seeds (or lowers) the shared one."""
        self._limit, self._limit_at, self._fresh = limit, now, True
        if limit.max_concurrency != self.max_concurrency:
            self.max_concurrency = limit.max_concurrency
            self._free_at.clear()

    # -- waiters ------------------------------------------------------------------

    def add(self, shard_id: int, on_wait: Callable[[IdentifyWait], None] | None) -> Waiter:
        """Start an ``acquire`` for ``shard_id``."""
        self._arrivals += 1
        waiter = Waiter(shard_id, self._arrivals, on_wait)
        self._waiting.append(waiter)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        """End an ``acquire`` (granted, cancelled or failed)."""
        if waiter in self._waiting:
            self._waiting.remove(waiter)

    def next_step(self, waiter: Waiter, now: float) -> RedisCall | float:
        """Return the script call to make, or seconds to wait first (not the bucket's turn)."""
        bucket = self.bucket(waiter.shard_id)
        place = (waiter.shard_id, waiter.order)
        ahead = [
            w
            for w in self._waiting
            if self.bucket(w.shard_id) == bucket and (w.shard_id, w.order) < place
        ]
        if not ahead:
            return self._acquire_call(waiter, bucket, now)
        # Behind a lower shard id of this process: nothing to ask Redis before the
        # bucket is due (the head asks), or before the head's answer comes back.
        free_at = self._free_at.get(bucket, 0.0)
        due = max(free_at, self._budget_free_at)
        reset = self._budget_free_at > max(now, free_at)
        self._announce(waiter, due - now + len(ahead) * self.hold, bucket, reset=reset)
        if due > now:
            waiter.polls = 0
            return due - now
        # The head's answer is on its way (one round trip, or the client's own
        # retries while Redis is away): look again soon, then less and less often.
        waiter.polls += 1
        return min(LOCAL_POLL_MAX, LOCAL_POLL * 2.0 ** min(waiter.polls, 8))

    def answer(self, waiter: Waiter, reply: object, now: float) -> float | None:
        """Read the script's reply: ``None`` if granted, else seconds to wait before asking again.

        Raises:
            ValueError: the reply is not the script's (a different script under its name).

        """
        waiter.failures = 0
        bucket = self.bucket(waiter.shard_id)
        if not (isinstance(reply, list) and len(reply) == 2 and all(type(v) is int for v in reply)):
            raise ValueError(f"unexpected reply from the identify script: {reply!r}")
        code, value = int(reply[0]), int(reply[1])
        if code == _GRANTED:
            self._free_at[bucket] = now + self.hold
            self.remaining = None if value < 0 else value
            self.history.append(IdentifyGrant(waiter.shard_id, bucket, now))
            return None
        if code == _BUDGET_SPENT:
            # No TTL (-1) would be an operator's doing: look again now and then.
            reset_in = value / 1000 if value > 0 else BUDGET_RECHECK
            self._budget_free_at = now + reset_in
            self.remaining = 0
            self._announce(waiter, reset_in, bucket, reset=True)
            return min(reset_in, BUDGET_RECHECK)
        held = value / 1000
        self._free_at[bucket] = now + held
        self._announce(waiter, held, bucket, reset=False)
        return held

    def failed(self, waiter: Waiter, error: Exception, now: float) -> float:
        """Redis could not be asked: return seconds to wait before trying again.

        Nothing identifies meanwhile: without Redis no process can know the bucket
        is free, and identifying anyway is what the limiter exists to prevent.
        """
        delay: float = min(RETRY_MAX, RETRY_FIRST * 2.0 ** min(waiter.failures, 8))
        # The local waiters behind this one wait as long (they would only poll).
        self._free_at[self.bucket(waiter.shard_id)] = now + delay
        # A warning for the first failure of a wait, then quieter: an outage of
        # minutes would otherwise log a line per bucket every two seconds.
        level = logging.WARNING if waiter.failures == 0 else logging.DEBUG
        waiter.failures += 1
        _log.log(
            level,
            "shard %d: Redis unreachable for the identify limiter (%s); retrying in %.1f s",
            waiter.shard_id,
            error,
            delay,
        )
        return delay

    def sent_call(self, shard_id: int) -> RedisCall:
        """Return the call that holds ``shard_id``'s bucket for a window from now."""
        key = self.keys.identify_bucket(self.bucket(shard_id))
        return RedisCall([key], [f"{self._holder}:{shard_id}", _ms(self.hold)])

    # -- helpers ------------------------------------------------------------------

    def _acquire_call(self, waiter: Waiter, bucket: int, now: float) -> RedisCall:
        mode, seed, seed_ms = self._budget_args(now)
        keys = [self.keys.identify_bucket(bucket), self.keys.session_budget]
        holder = f"{self._holder}:{waiter.shard_id}"
        return RedisCall(keys, [holder, _ms(self.hold), mode, seed, seed_ms])

    def _budget_args(self, now: float) -> tuple[int, int, int]:
        limit = self._limit
        if limit is None:
            return 0, 0, 0
        reset_at = self._limit_at + limit.reset_after
        fresh, self._fresh = self._fresh, False
        if now < reset_at:
            return (2 if fresh else 1), limit.remaining, _ms(reset_at - now)
        # Past the reset this process fetched: a full budget until the one after.
        periods = math.floor((now - reset_at) / _RESET_EVERY) + 1
        return 1, limit.total, _ms(reset_at + periods * _RESET_EVERY - now)

    def _announce(self, waiter: Waiter, delay: float, bucket: int, *, reset: bool) -> None:
        # Once per acquire, and once more if the wait turns out to be the budget's
        # reset: the user must learn why nothing connects.
        if waiter.announced_reset or (waiter.announced and not reset):
            return
        waiter.announced = True
        waiter.announced_reset = reset
        wait = IdentifyWait(max(0.0, delay), bucket, reset)
        announce_identify_wait(_log, waiter.shard_id, wait, waiter.on_wait)
