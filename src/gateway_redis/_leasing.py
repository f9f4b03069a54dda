"""How a gateway process holds its shards: leases claimed, renewed, released, fenced.

Theory of operation (the *lease loop* and the *fence loop* of
:mod:`gateway_redis.process`): the lease loop renews the held leases every
``renew_interval`` (faster while Redis fails), claims free shards while the
process has room, spawns them with their saved sessions, and writes the process
record; the fence loop stops every shard whose lease was not renewed in time,
before it can expire. Both keep the process's view of Redis's health
(``redis_ok``, logged once per outage).

:class:`Leasing` is a part of :class:`~gateway_redis.process.GatewayProcess`
(plain inheritance, one object); it declares the state it uses, which
``GatewayProcess.__init__`` sets.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from redis.exceptions import RedisError

from gateway_anyio import Cluster, Shard
from gateway_proto.session import Session

from ._keys import Keys
from .leases import Lease, LeaseBook, LeaseStore, LeaseTiming, Renewal, ShardRequest, plan_claims
from .sessions import SessionSaver, load_sessions

if TYPE_CHECKING:
    import redis.asyncio as aioredis


__all__ = ["Leasing"]

_log = logging.getLogger("gateway_redis.process")  # one logger for the whole process

_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class Leasing:
    """The shards' leases and their fences (a part of ``GatewayProcess``)."""

    # Set by GatewayProcess.__init__ (see there).
    timing: LeaseTiming
    book: LeaseBook
    saver: SessionSaver
    owner: str
    keys: Keys
    redis_ok: bool
    fenced: int
    restored: int
    _changed: anyio.Event | None
    _started_at: float

    if TYPE_CHECKING:

        async def _remove(
            self, cluster: Cluster, shard_id: int, timeout: float
        ) -> Shard | None: ...  # GatewayProcess's: stop and forget one shard, once

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = anyio.Event()

    def _redis_failed(self, what: str, exc: BaseException) -> None:
        if self.redis_ok:
            _log.warning(
                "Redis unreachable (%s: %r); shards keep running until their leases' deadlines",
                what,
                exc,
            )
        else:
            _log.debug("Redis still unreachable (%s: %r)", what, exc)
        self.redis_ok = False

    def _redis_answered(self) -> None:
        if not self.redis_ok:
            _log.warning("Redis reachable again")
        self.redis_ok = True

    # -- leases ------------------------------------------------------------------------

    async def _lease_loop(
        self,
        cluster: Cluster,
        store: LeaseStore,
        request: ShardRequest,
        redis: aioredis.Redis,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        timing = self.timing
        next_claim = anyio.current_time()
        while True:
            ok = await self._renew(cluster, store, tg)
            now = anyio.current_time()
            if ok and now >= next_claim and len(self.book.held) < request.count:
                ok = await self._claim(cluster, store, request, redis, tg)
                next_claim = anyio.current_time() + timing.claim_every
            if ok:
                ok = await self._announce(store, request)
            delay = timing.renew_every if ok else timing.retry_every
            if len(self.book.held) < request.count:
                delay = min(delay, max(0.0, next_claim - anyio.current_time()))
            await anyio.sleep(delay)

    async def _renew(self, cluster: Cluster, store: LeaseStore, tg: anyio.abc.TaskGroup) -> bool:
        held = {i: lease.token for i, lease in self.book.held.items()}
        if not held:
            return True
        sent = anyio.current_time()
        try:
            with anyio.fail_after(self.timing.renew_every):
                results = await store.renew(held)
        except _REDIS_ERRORS as exc:
            self._redis_failed("renewing leases", exc)
            return False
        self._redis_answered()
        late: dict[int, int] = {}
        for shard_id, result in results.items():
            if result is Renewal.LOST:
                if shard_id in self.book.held:
                    _log.warning("shard %d: its lease is another process's now; stopping", shard_id)
                    self._fence(cluster, store, shard_id, tg, release=False)
                continue
            if self.book.renewed(shard_id, sent):
                if result is Renewal.RESTORED:
                    self.restored += 1
                    self.saver.forget(shard_id)  # Redis lost the saved session too
                    _log.warning("shard %d: Redis had lost its lease; set it again", shard_id)
            else:
                late[shard_id] = held[shard_id]  # stopped meanwhile: give it back
        if late:
            await self._release(store, late)
        self._notify()
        return True

    async def _claim(
        self,
        cluster: Cluster,
        store: LeaseStore,
        request: ShardRequest,
        redis: aioredis.Redis,
        tg: anyio.abc.TaskGroup,
    ) -> bool:
        held = self.book.ids
        try:
            with anyio.fail_after(self.timing.renew_every):
                taken = await store.taken(i for i in request.candidates if i not in held)
                wanted = plan_claims(request, held, taken)
                sent = anyio.current_time()
                tokens = await store.acquire(wanted)
        except _REDIS_ERRORS as exc:
            self._redis_failed("claiming shards", exc)
            return False
        if not tokens:
            return True
        for shard_id, token in tokens.items():
            self.book.add(shard_id, token, sent)
        self._notify()
        ids = sorted(tokens)
        try:
            with anyio.fail_after(self.timing.renew_every):
                sessions = await load_sessions(redis, self.keys, request.shard_count, ids)
        except _REDIS_ERRORS as exc:
            # Without the saved sessions these shards would identify: give them back
            # and claim them again once Redis answers.
            self._redis_failed("reading saved sessions", exc)
            for shard_id in ids:
                self.book.drop(shard_id)
            await self._release(store, tokens)
            return False
        _log.info(
            "took shards %s (%d to resume, %d to identify)",
            ids,
            len(sessions),
            len(ids) - len(sessions),
        )
        # In a task of its own: spawning asks GET /gateway/bot, which may retry for a
        # while, and the lease loop must keep renewing meanwhile.
        tg.start_soon(self._spawn, cluster, store, request, tokens, sessions)
        return True

    async def _spawn(
        self,
        cluster: Cluster,
        store: LeaseStore,
        request: ShardRequest,
        tokens: dict[int, int],
        sessions: dict[int, Session],
    ) -> None:
        ids = sorted(tokens)
        # A shard must never start after its lease's stop time: give up before it
        # (the stop time only moves later while the spawn waits).
        held = self.book.held
        deadline = min((self.book.stop_at(i) for i in ids if i in held), default=0.0)
        deadline -= self.timing.stop_grace
        failure: BaseException | None = None
        with anyio.move_on_at(deadline) as scope:
            try:
                await cluster.spawn(ids, shard_count=request.shard_count, sessions=sessions)
            except Exception as exc:
                failure = exc
        if failure is None and not scope.cancelled_caught:
            return
        _log.error("could not start shards %s: %s", ids, failure or "GET /gateway/bot timed out")
        for shard_id in ids:
            self.book.drop(shard_id)
        self._notify()
        await self._release(store, tokens)

    async def _announce(self, store: LeaseStore, request: ShardRequest) -> bool:
        record = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "request": str(request),
            "shard_count": request.shard_count,
            "shards": ",".join(map(str, sorted(self.book.ids))),
            "started": self._started_at,
            "updated": time.time(),
        }
        try:
            with anyio.fail_after(self.timing.renew_every):
                await store.announce(record)
        except _REDIS_ERRORS as exc:
            self._redis_failed("writing the process record", exc)
            return False
        return True

    async def _release(self, store: LeaseStore, leases: dict[int, int]) -> None:
        try:
            with anyio.fail_after(self.timing.renew_every):
                await store.release(leases)
        except _REDIS_ERRORS as exc:
            # They expire by themselves; until then nobody else can take them.
            self._redis_failed("releasing leases", exc)

    # -- fencing ----------------------------------------------------------------------

    async def _fence_loop(
        self, cluster: Cluster, store: LeaseStore, tg: anyio.abc.TaskGroup
    ) -> None:
        while True:
            for shard_id in self.book.must_stop(anyio.current_time()):
                _log.warning(
                    "shard %d: lease not renewed in time; stopping it before it can expire",
                    shard_id,
                )
                self._fence(cluster, store, shard_id, tg, release=True)
            wake = self.book.next_stop()
            changed = self._changed
            assert changed is not None
            with anyio.move_on_at(float("inf") if wake is None else wake):
                await changed.wait()

    def _fence(
        self,
        cluster: Cluster,
        store: LeaseStore,
        shard_id: int,
        tg: anyio.abc.TaskGroup,
        *,
        release: bool,
    ) -> None:
        """Drop the lease now and stop the shard in the background, by the lease's deadline."""
        timeout = self.book.stop_timeout(shard_id, anyio.current_time())
        lease = self.book.drop(shard_id)
        self.saver.forget(shard_id)
        self.fenced += 1
        self._notify()
        tg.start_soon(
            self._stop_shard, cluster, store, shard_id, timeout, lease if release else None
        )

    async def _stop_shard(
        self,
        cluster: Cluster,
        store: LeaseStore,
        shard_id: int,
        timeout: float,
        release: Lease | None,
    ) -> None:
        await self._remove(cluster, shard_id, timeout)
        if release is not None:
            await self._release(store, {shard_id: release.token})
