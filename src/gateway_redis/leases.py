"""Shard leases: which process runs which shard, with failover and fencing.

Theory of operation: Redis holds one lease per shard id (``Keys.lease(count, id)``),
a string ``"{owner}|{token}"`` with a TTL. ``token`` is a fencing token, taken from
``Keys.fence(count, id)`` with INCR at each acquisition, so two tenures of one shard
(even by the same owner) never carry the same value. Acquire, renew and release are
Lua scripts: a lease is renewed or released only while it still holds our value.

The decisions are pure and take ``now`` (a monotonic clock, in seconds):
:class:`LeaseBook` knows which leases a process holds and, from the *send* time of
the last successful renewal of each, when the process must have stopped that shard.
Redis starts the TTL when the renewal *arrives*, never earlier, so a process that
stops the shard by ``sent + ttl - margin`` has stopped it before Redis can let the
lease expire and hand it to another process: two processes never run one shard id
at once, even when Redis is unreachable or the process stalls. :func:`plan_claims`
picks the free shards a process with spare capacity takes.

:class:`LeaseStore` is the thin Redis side (``redis.asyncio``: the asyncio backend
of anyio only).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from ._keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = [
    "DEFAULT_LEASE_TTL",
    "Lease",
    "LeaseBook",
    "LeaseStore",
    "LeaseTiming",
    "Renewal",
    "ShardRequest",
    "lease_value",
    "plan_claims",
]

#: Seconds a lease lives without renewal (a dead process's shards wait this long).
DEFAULT_LEASE_TTL = 15.0

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?/(\d+)$")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long leases live and how a process keeps them.

    Args:
        ttl: seconds a lease lives in Redis after its last renewal.
        renew_interval: seconds between renewals (default ``ttl / 3``).
        safety_margin: a shard is stopped ``safety_margin`` seconds before its
            lease could expire (counted from the send of the last successful
            renewal); half of it is the shard's closing handshake, after which
            the connection is dropped (default ``ttl / 5``).
        claim_interval: seconds between looks for free shards while the process
            has spare capacity (default: ``renew_interval``).
        retry_interval: seconds between renewal attempts while Redis fails
            (default ``renew_interval / 4``).

    Raises:
        ValueError: the numbers leave no time to renew before the stop.

    """

    ttl: float = DEFAULT_LEASE_TTL
    renew_interval: float | None = None
    safety_margin: float | None = None
    claim_interval: float | None = None
    retry_interval: float | None = None

    def __post_init__(self) -> None:
        if not self.ttl > 0:
            raise ValueError("lease ttl must be a positive number of seconds")
        if not 0 < self.margin < self.ttl:
            raise ValueError("safety_margin must be between 0 and the lease ttl")
        if not 0 < self.renew_every < self.ttl - self.margin:
            raise ValueError(
                "renew_interval must be positive and shorter than ttl - safety_margin "
                "(a lease must get a renewal before its shard is stopped)"
            )
        if not (self.claim_every > 0 and self.retry_every > 0):
            raise ValueError("claim_interval and retry_interval must be positive")

    @property
    def renew_every(self) -> float:
        """Seconds between renewals."""
        return self.ttl / 3 if self.renew_interval is None else self.renew_interval

    @property
    def margin(self) -> float:
        """Seconds before a possible expiry by which a shard has begun to stop."""
        return self.ttl / 5 if self.safety_margin is None else self.safety_margin

    @property
    def claim_every(self) -> float:
        """Seconds between looks for free shards."""
        return self.renew_every if self.claim_interval is None else self.claim_interval

    @property
    def retry_every(self) -> float:
        """Seconds between renewal attempts while they fail."""
        return self.renew_every / 4 if self.retry_interval is None else self.retry_interval

    @property
    def stop_grace(self) -> float:
        """Seconds a fenced shard gets for its closing handshake before it is dropped."""
        return self.margin / 2

    @property
    def ttl_ms(self) -> int:
        """The TTL in milliseconds, as Redis takes it."""
        return max(1, round(self.ttl * 1000))


@dataclass(frozen=True, slots=True)
class ShardRequest:
    """Which shards a process runs: any ``count`` of ``shard_count``, or fixed ids.

    Build it with :meth:`any` or :meth:`parse` (``"0-63/256"``).

    Attributes:
        shard_count: the total number of shards (the same in every process).
        count: how many shards this process runs at most.
        ids: the only ids it may run (``None``: any id of ``shard_count``).

    """

    shard_count: int
    count: int
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.shard_count < 1 or self.count < 1:
            raise ValueError("shard_count and count must be at least 1")
        if self.ids is not None and any(not 0 <= i < self.shard_count for i in self.ids):
            raise ValueError(f"shard ids go from 0 to {self.shard_count - 1}")

    @classmethod
    def any(cls, count: int, shard_count: int) -> ShardRequest:
        """Run any ``count`` shards of ``shard_count`` (whichever are free)."""
        return cls(shard_count, min(count, shard_count))

    @classmethod
    def parse(cls, text: str) -> ShardRequest:
        """Parse a fixed range ``A-B/TOTAL`` (or ``A/TOTAL``).

        Raises:
            ValueError: with a one-line explanation.

        """
        match = _RANGE.match(text.strip())
        if match is None:
            raise ValueError(f"expected A-B/TOTAL (e.g. 0-63/256), got {text!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        total = int(match.group(3))
        if first > last or last >= max(total, 1):
            raise ValueError(f"shard range {text!r} is empty or outside 0..TOTAL-1")
        ids = tuple(range(first, last + 1))
        return cls(total, len(ids), ids)

    @property
    def candidates(self) -> range | tuple[int, ...]:
        """Every id this process may run, in the order it claims them."""
        return range(self.shard_count) if self.ids is None else self.ids

    def __str__(self) -> str:
        if self.ids is None:
            return f"any {self.count} of {self.shard_count}"
        return f"{self.ids[0]}-{self.ids[-1]}/{self.shard_count}"


def plan_claims(request: ShardRequest, held: Collection[int], taken: Collection[int]) -> list[int]:
    """Return the shard ids to try to acquire now: free ones, lowest first, up to the spare.

    Args:
        request: what the process runs.
        held: the ids it holds.
        taken: the ids other processes hold (a lease exists).

    """
    spare = request.count - len(held)
    if spare <= 0:
        return []
    out: list[int] = []
    for shard_id in request.candidates:
        if shard_id not in held and shard_id not in taken:
            out.append(shard_id)
            if len(out) == spare:
                break
    return out


@dataclass(frozen=True, slots=True)
class Lease:
    """One held lease.

    Attributes:
        shard_id: the shard.
        token: its fencing token.
        renewed_at: when the last successful renewal (or the acquisition) was *sent*.

    """

    shard_id: int
    token: int
    renewed_at: float


def lease_value(owner: str, token: int) -> str:
    """Return what a lease key holds for ``owner`` with fencing ``token``."""
    return f"{owner}|{token}"


class Renewal(IntEnum):
    """What a renewal found in Redis (the renew script's answer)."""

    #: The lease was someone else's: stop the shard now.
    LOST = 0
    #: Still ours; its TTL starts again.
    RENEWED = 1
    #: The key was gone (Redis restarted or was flushed) and nobody took the shard: re-set.
    RESTORED = 2


@dataclass
class LeaseBook:
    """The leases one process holds, and when each shard must stop (pure; ``now`` given).

    Attributes:
        timing: the lease timing.

    """

    timing: LeaseTiming
    _held: dict[int, Lease] = field(default_factory=dict)

    @property
    def held(self) -> Mapping[int, Lease]:
        """The held leases, by shard id."""
        return self._held

    @property
    def ids(self) -> frozenset[int]:
        """The ids of the held leases."""
        return frozenset(self._held)

    def add(self, shard_id: int, token: int, sent_at: float) -> None:
        """Record a lease acquired by a request sent at ``sent_at``."""
        self._held[shard_id] = Lease(shard_id, token, sent_at)

    def renewed(self, shard_id: int, sent_at: float) -> bool:
        """Record a successful renewal sent at ``sent_at``.

        Returns ``False`` when the lease is no longer held (the answer came after
        the shard was stopped): the caller should release it.
        """
        lease = self._held.get(shard_id)
        if lease is None:
            return False
        if self.stop_at(shard_id) <= sent_at:
            # Sent after the deadline: the shard is being stopped, so the renewal
            # must not revive it (the fence loop drops it).
            return True
        self._held[shard_id] = Lease(shard_id, lease.token, max(sent_at, lease.renewed_at))
        return True

    def drop(self, shard_id: int) -> Lease | None:
        """Forget a lease (lost, expired or released); return it if it was held."""
        return self._held.pop(shard_id, None)

    def stop_at(self, shard_id: int) -> float:
        """Return when the shard must begin to stop, unless renewed before."""
        return self._held[shard_id].renewed_at + self.timing.ttl - self.timing.margin

    def must_stop(self, now: float) -> list[int]:
        """Return the held ids whose stop time has come, lowest first."""
        return sorted(i for i in self._held if now >= self.stop_at(i))

    def next_stop(self) -> float | None:
        """Return the earliest stop time of the held leases (``None`` without any)."""
        if not self._held:
            return None
        return min(self.stop_at(i) for i in self._held)

    def stop_timeout(self, shard_id: int, now: float) -> float:
        """Return the seconds a shard being stopped at ``now`` may take, at most.

        It must be gone before ``renewed_at + ttl - margin / 2``: half the margin
        is kept between the forced end of the shard and the earliest expiry.
        """
        lease = self._held.get(shard_id)
        if lease is None:
            return self.timing.stop_grace
        deadline = lease.renewed_at + self.timing.ttl - self.timing.stop_grace
        return max(0.0, deadline - now)


# -- Redis ------------------------------------------------------------------------------

# KEYS: lease, fence. ARGV: owner, ttl_ms. Returns the fencing token, or false if taken.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: lease, fence. ARGV: value, ttl_ms, token. 1 renewed, 2 restored, 0 lost.
# A missing key can only mean Redis lost it (a restart without persistence, a flush):
# an expired lease has been given up by the owner before its expiry (the LeaseBook),
# so the owner would not renew it. The fence counter is raised past our token, so a
# later acquisition still gets a larger one.
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[3])
end
return 2
"""

# KEYS: lease. ARGV: value. Deletes the lease only while it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseStore:
    """The Redis calls behind leases (thin: every decision is the :class:`LeaseBook`'s).

    Args:
        redis: a ``redis.asyncio.Redis`` client.
        keys: the bot's keys.
        owner: this process's owner id (unique per process run).
        timing: the lease timing.
        shard_count: the total shard count (part of every key).

    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        owner: str,
        timing: LeaseTiming,
        shard_count: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.owner = owner
        self.timing = timing
        self.shard_count = shard_count
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _lease(self, shard_id: int) -> str:
        return self.keys.lease(self.shard_count, shard_id)

    def _fence(self, shard_id: int) -> str:
        return self.keys.fence(self.shard_count, shard_id)

    async def taken(self, ids: Iterable[int]) -> set[int]:
        """Return which of ``ids`` have a lease (held by anyone)."""
        ids = list(ids)
        if not ids:
            return set()
        values = await self.redis.mget([self._lease(i) for i in ids])
        return {i for i, value in zip(ids, values, strict=True) if value is not None}

    async def owners(self, ids: Iterable[int]) -> dict[int, str | None]:
        """Return the lease value of each id (``None``: free), for status and tests."""
        ids = list(ids)
        values = await self.redis.mget([self._lease(i) for i in ids]) if ids else []
        return {i: _text(v) for i, v in zip(ids, values, strict=True)}

    async def acquire(self, ids: Iterable[int]) -> dict[int, int]:
        """Try to acquire the leases of ``ids``; return the fencing token of each won."""
        ids = list(ids)
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard_id in ids:
                await self._acquire(
                    keys=[self._lease(shard_id), self._fence(shard_id)],
                    args=[self.owner, self.timing.ttl_ms],
                    client=pipe,
                )
            answers = await pipe.execute()
        return {i: int(t) for i, t in zip(ids, answers, strict=True) if t is not None}

    async def renew(self, leases: Mapping[int, int]) -> dict[int, Renewal]:
        """Renew the leases (shard id to token); return what each renewal found."""
        if not leases:
            return {}
        items = list(leases.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard_id, token in items:
                await self._renew(
                    keys=[self._lease(shard_id), self._fence(shard_id)],
                    args=[lease_value(self.owner, token), self.timing.ttl_ms, token],
                    client=pipe,
                )
            answers = await pipe.execute()
        return {i: Renewal(int(a)) for (i, _), a in zip(items, answers, strict=True)}

    async def release(self, leases: Mapping[int, int]) -> None:
        """Release the leases (shard id to token) that are still ours."""
        if not leases:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard_id, token in leases.items():
                await self._release(
                    keys=[self._lease(shard_id)],
                    args=[lease_value(self.owner, token)],
                    client=pipe,
                )
            await pipe.execute()

    async def announce(self, record: Mapping[str, object]) -> None:
        """Write this process's liveness record (``Keys.process``), expiring with the TTL."""
        key = self.keys.process(self.owner)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={k: str(v) for k, v in record.items()})
            pipe.pexpire(key, self.timing.ttl_ms)
            await pipe.execute()

    async def retire(self) -> None:
        """Delete this process's liveness record."""
        await self.redis.delete(self.keys.process(self.owner))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
