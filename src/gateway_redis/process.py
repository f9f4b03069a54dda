"""``GatewayProcess``: one gateway process among many, its shards leased through Redis.

Theory of operation: a process runs a :class:`~gateway_anyio.Cluster` and three
loops beside it. The *lease loop* renews the held leases every
``renew_interval`` (retrying faster while Redis fails), and while the process has
spare capacity it looks for free shards, acquires their leases, reads their saved
sessions and spawns them (they RESUME where a session was saved, else IDENTIFY
through the identify limiter). The *fence loop* sleeps until the earliest moment a
held shard must stop (:meth:`LeaseBook.stop_at <gateway_redis.leases.LeaseBook.stop_at>`)
and stops every shard whose lease was not renewed in time, closing with 4000 and
dropping the connection if the close takes too long, so the shard is gone before
its lease can expire and another process can start it. The *save loop* writes the
changed sessions every ``save_interval`` (fenced; see :mod:`gateway_redis.sessions`).

Stopping (``stop()``, cancellation, SIGTERM in the CLI) renews the leases once,
closes every shard with 4000 (the session stays resumable), ends the event streams
so services can drain, saves the final sessions and releases the leases: the next
process to take a shard RESUMEs it, without an identify and without losing an event.

``redis.asyncio`` runs on asyncio only: run a process on anyio's asyncio backend.

This module holds the run, the save loop and the shutdown; the lease and fence
loops are :class:`gateway_redis._leasing.Leasing`, a part of ``GatewayProcess``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from gateway_anyio import Cluster, Gateway, IdentifyLimiter, Shard
from gateway_proto.close_codes import RESUMABLE_CLOSE
from gateway_proto.config import DEFAULT_MAX_RESUME_AGE
from gateway_proto.session import Session

from ._keys import DEFAULT_NAMESPACE, Keys
from ._leasing import _REDIS_ERRORS, Leasing
from .identify import RedisIdentifyLimiter
from .leases import (
    DEFAULT_LEASE_TTL,
    LeaseBook,
    LeaseStore,
    LeaseTiming,
    ShardRequest,
    lease_value,
)
from .sessions import DEFAULT_SAVE_INTERVAL, SessionSaver, save_sessions

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["Checkpoint", "GatewayProcess", "Service", "connect_redis"]

_log = logging.getLogger("gateway_redis.process")

#: A service runs beside the shards, in the process's task group, with the cluster.
Service = Callable[[Cluster], Awaitable[object]]
#: ``(shard_id, session) -> seq``: the highest sequence of ``session`` handed on safely
#: (e.g. published); a saved session never goes past it. ``None``: nothing yet.
Checkpoint = Callable[[int, Session], int | None]


def connect_redis(url: str, *, timeout: float = 5.0) -> aioredis.Redis:
    """Return a ``redis.asyncio`` client for ``url`` that fails fast instead of retrying.

    The process's loops decide when to try again (leases have deadlines), so the
    client's own retries are off and every command is bounded by ``timeout``.
    """
    import redis.asyncio as aioredis  # noqa: PLC0415 - the extra is only needed here
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415

    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class GatewayProcess(Leasing):
    """Runs the shards this process holds leases for, and keeps them (see the module doc).

    Use it on anyio's asyncio backend::

        process = GatewayProcess(token, "redis://localhost:6379/0",
                                 intents=Intents.default(), count=16, shard_count=64)
        await process.run()          # until process.stop() or cancellation

    Args:
        token_or_gateway: a bot token or a :class:`~gateway_anyio.Gateway`.
        redis: a ``redis://`` URL or a ``redis.asyncio.Redis`` client.
        intents: the intents of every shard.
        shards: a fixed range ``"A-B/TOTAL"`` (or a :class:`ShardRequest`): this
            process runs those ids only, each as soon as its lease is free.
        count: run any ``count`` shards of ``shard_count``, whichever are free
            (taking over those of dead processes while it has room).
        shard_count: the total (the same in every process); default with
            ``count``: the recommended count of ``GET /gateway/bot``, asked once.
        timing: lease timing (default: ``LeaseTiming(ttl=lease_ttl)``).
        lease_ttl: seconds a lease lives without renewal (when ``timing`` is not given).
        save_interval: seconds between session save rounds.
        session_ttl: seconds a saved session lives after its last write
            (default: ``ShardConfig.max_resume_age``, 300 s).
        identify_limiter: the cluster's identify limiter; default: a
            :class:`~gateway_redis.identify.RedisIdentifyLimiter` on the same Redis
            and keys, so every process on the token shares the identify buckets
            and the session start budget (``Cluster.spawn`` feeds it the fetched
            ``session_start_limit``).
        services: coroutines ``service(cluster)`` run beside the shards (a
            publisher, a command applier); :attr:`owned` tells which shards are
            this process's. They are cancelled after the shards stopped, once the
            event streams ended and ``drain_timeout`` passed.
        checkpoint: see :data:`Checkpoint` (a publisher that buffers passes its
            own, so a killed process's successor resumes before any event it lost).
        owner: this process's id in Redis (default: ``host:pid:random``).
        namespace: the first part of every key.
        close_timeout: seconds a shard's closing handshake may take at shutdown.
        drain_timeout: seconds the services get to finish after the shards stopped.
        cluster_options: passed to :class:`~gateway_anyio.Cluster` (``encoding``,
            ``compression``, ...).

    Raises:
        ValueError: neither or both of ``shards`` and ``count``.

    """

    def __init__(
        self,
        token_or_gateway: str | Gateway,
        redis: str | aioredis.Redis,
        *,
        intents: int,
        shards: str | ShardRequest | None = None,
        count: int | None = None,
        shard_count: int | None = None,
        timing: LeaseTiming | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        save_interval: float = DEFAULT_SAVE_INTERVAL,
        session_ttl: float = DEFAULT_MAX_RESUME_AGE,
        identify_limiter: IdentifyLimiter | None = None,
        services: Sequence[Service] = (),
        checkpoint: Checkpoint | None = None,
        owner: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        close_timeout: float = 5.0,
        drain_timeout: float = 5.0,
        **cluster_options: Any,
    ) -> None:
        if (shards is None) == (count is None):
            raise ValueError("pass either shards='A-B/TOTAL' or count=N (with shard_count)")
        self.gateway = (
            token_or_gateway
            if isinstance(token_or_gateway, Gateway)
            else Gateway.for_token(token_or_gateway)
        )
        self._request: ShardRequest | None
        if isinstance(shards, str):
            self._request = ShardRequest.parse(shards)
        elif shards is not None:
            self._request = shards
        else:
            assert count is not None
            self._request = None if shard_count is None else ShardRequest.any(count, shard_count)
        self._count = count
        self._intents = intents
        self.timing = timing or LeaseTiming(ttl=lease_ttl)
        self.save_interval = save_interval
        self.session_ttl = session_ttl
        self.identify_limiter = identify_limiter
        self.services = tuple(services)
        self.checkpoint = checkpoint
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.keys = Keys.for_token(self.gateway.token, namespace)
        self.close_timeout = close_timeout
        self.drain_timeout = drain_timeout
        self._cluster_options = cluster_options
        self._redis_arg = redis
        self.book = LeaseBook(self.timing)
        self.saver = SessionSaver(ttl=session_ttl)
        #: The running cluster (``None`` outside :meth:`run`).
        self.cluster: Cluster | None = None
        #: Redis answered the last call (``False`` during an outage).
        self.redis_ok = True
        #: Shards stopped because their lease was lost or could not be renewed in time.
        self.fenced = 0
        #: Leases re-set after Redis lost them (a restart without persistence, a flush).
        self.restored = 0
        # Events are made in run(): anyio needs the running event loop for them.
        self._stop: anyio.Event | None = None
        self._stop_requested = False
        self._stopping = False
        self._running = False
        self._changed: anyio.Event | None = None
        self._services_left = 0
        self._services_done: anyio.Event | None = None
        self._removing: set[int] = set()
        self._started_at = time.time()

    def __repr__(self) -> str:
        return f"<GatewayProcess {self.owner} {self._request} owns {sorted(self.book.ids)}>"

    # -- what others may ask ---------------------------------------------------------

    @property
    def owned(self) -> frozenset[int]:
        """The shard ids this process holds leases for now (they run, or are starting)."""
        return self.book.ids

    @property
    def request(self) -> ShardRequest | None:
        """What this process runs (``None`` until the shard count is known)."""
        return self._request

    def stop(self) -> None:
        """Ask :meth:`run` to stop cleanly (resumable sessions, released leases).

        Call it from the event loop that runs the process (a signal handler task,
        a service); before :meth:`run` it makes the run stop at once.
        """
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()

    # -- the run -----------------------------------------------------------------------

    async def run(self) -> None:
        """Take leases and run shards until :meth:`stop` or cancellation; stop cleanly.

        Raises:
            RuntimeError: the process is already running.
            GatewayRequestError: ``GET /gateway/bot`` failed (only when the shard
                count had to be asked for).

        """
        if self._running:
            raise RuntimeError("this GatewayProcess is already running")
        self._running = True
        self._stop, self._changed = anyio.Event(), anyio.Event()
        self._services_done = anyio.Event()
        if self._stop_requested:
            self._stop.set()
        owns_client = isinstance(self._redis_arg, str)
        shared: RedisIdentifyLimiter | None = None
        redis = (
            connect_redis(self._redis_arg) if isinstance(self._redis_arg, str) else self._redis_arg
        )
        try:
            request = await self._resolve_request()
            store = LeaseStore(redis, self.keys, self.owner, self.timing, request.shard_count)
            limiter = self.identify_limiter
            if limiter is None:
                # Identifies are a per-token budget: share them through the same Redis.
                limiter = shared = RedisIdentifyLimiter(redis, self.keys)
            cluster = Cluster(
                self.gateway,
                intents=self._intents,
                identify_limiter=limiter,
                **self._cluster_options,
            )
            async with cluster:
                self.cluster = cluster
                await self._run_with(cluster, store, request, redis)
        finally:
            self.cluster = None
            self._running = False
            if shared is not None:
                with anyio.CancelScope(shield=True):
                    await shared.aclose()
            if owns_client:
                with anyio.CancelScope(shield=True):
                    await redis.aclose()

    async def _resolve_request(self) -> ShardRequest:
        if self._request is None:
            assert self._count is not None
            info = await self.gateway.fetch()
            self._request = ShardRequest.any(self._count, info.shards)
        return self._request

    async def _run_with(
        self, cluster: Cluster, store: LeaseStore, request: ShardRequest, redis: aioredis.Redis
    ) -> None:
        assert self._stop is not None
        assert self._services_done is not None
        self._services_left = len(self.services)
        if not self.services:
            self._services_done.set()
        async with anyio.create_task_group() as services:
            for service in self.services:
                services.start_soon(self._service, service, cluster)
            try:
                async with anyio.create_task_group() as loops:
                    loops.start_soon(self._lease_loop, cluster, store, request, redis, loops)
                    loops.start_soon(self._fence_loop, cluster, store, loops)
                    loops.start_soon(self._save_loop, cluster, store, redis)
                    await self._stop.wait()
                    loops.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._shutdown(cluster, store, redis)
                services.cancel_scope.cancel()

    async def _service(self, service: Service, cluster: Cluster) -> None:
        try:
            await service(cluster)
        except Exception:
            _log.exception("a gateway process service failed")
        finally:
            self._services_left -= 1
            if self._services_left <= 0 and self._services_done is not None:
                self._services_done.set()

    # -- sessions ---------------------------------------------------------------------

    async def _save_loop(self, cluster: Cluster, store: LeaseStore, redis: aioredis.Redis) -> None:
        while True:
            await anyio.sleep(self.save_interval)
            await self._save(store, redis, self._current_sessions(cluster))

    def _current_sessions(self, cluster: Cluster) -> dict[int, Session | None]:
        return {
            shard_id: shard.session
            for shard_id, shard in list(cluster.shards.items())
            if shard_id in self.book.held
        }

    def _checked(self, shard_id: int, session: Session | None) -> Session | None:
        """Apply the checkpoint: never save a sequence beyond what was handed on."""
        if session is None or self.checkpoint is None or session.sequence is None:
            return session
        handed = self.checkpoint(shard_id, session)
        if handed is None:
            return None
        return session if handed >= session.sequence else session.with_sequence(handed)

    async def _save(
        self, store: LeaseStore, redis: aioredis.Redis, current: dict[int, Session | None]
    ) -> None:
        now = anyio.current_time()
        checked = {i: self._checked(i, s) for i, s in current.items()}
        due = self.saver.due(checked, now)
        items = [
            (i, s, lease_value(self.owner, self.book.held[i].token))
            for i, s in due.items()
            if i in self.book.held
        ]
        if not items:
            return
        try:
            with anyio.fail_after(self.timing.renew_every):
                written = await save_sessions(
                    redis, self.keys, store.shard_count, items, ttl=self.session_ttl
                )
        except _REDIS_ERRORS as exc:
            self._redis_failed("saving sessions", exc)
            return
        self._redis_answered()
        for shard_id, ok in written.items():
            if ok:
                self.saver.saved(shard_id, due[shard_id], now)

    # -- stopping ---------------------------------------------------------------------

    async def _shutdown(self, cluster: Cluster, store: LeaseStore, redis: aioredis.Redis) -> None:
        """Close every shard resumably, save the sessions, release the leases (bounded)."""
        self._stopping = True
        budget = self.close_timeout + self.drain_timeout + 3 * self.timing.renew_every
        with anyio.move_on_after(budget):
            async with anyio.create_task_group() as tg:
                # One renewal first, so the closes below get the lease's whole time.
                await self._renew(cluster, store, tg)
                sessions: dict[int, Session | None] = {}
                for shard_id in list(cluster.shards):
                    tg.start_soon(self._close_shard, cluster, shard_id, sessions)
            # The event streams end: services (publishers) drain, then return.
            await cluster.aclose(RESUMABLE_CLOSE)
            if self._services_done is not None:
                with anyio.move_on_after(self.drain_timeout):
                    await self._services_done.wait()
            self.saver.forget()  # the final round writes every session, changed or not
            await self._save(store, redis, sessions)
            leases = {i: lease.token for i, lease in self.book.held.items()}
            for shard_id in leases:
                self.book.drop(shard_id)
            await self._release(store, leases)
            try:
                with anyio.fail_after(self.timing.renew_every):
                    await store.retire()
            except _REDIS_ERRORS as exc:
                self._redis_failed("removing the process record", exc)
        _log.info("stopped; sessions saved, leases released")

    async def _close_shard(
        self, cluster: Cluster, shard_id: int, sessions: dict[int, Session | None]
    ) -> None:
        timeout = self.close_timeout
        if shard_id in self.book.held:
            timeout = min(timeout, self.book.stop_timeout(shard_id, anyio.current_time()))
        shard = await self._remove(cluster, shard_id, timeout)
        if shard is not None and shard_id in self.book.held:
            sessions[shard_id] = shard.session

    async def _remove(self, cluster: Cluster, shard_id: int, timeout: float) -> Shard | None:
        """Stop and forget one shard, once (a fence and the shutdown may both ask)."""
        if shard_id in self._removing or shard_id not in cluster.shards:
            return None
        self._removing.add(shard_id)
        try:
            return await cluster.remove(shard_id, RESUMABLE_CLOSE, timeout=timeout)
        finally:
            self._removing.discard(shard_id)
