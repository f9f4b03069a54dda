"""Identify limiters shared by every process of a bot, through Redis.

:class:`RedisIdentifyLimiter` (the anyio driver, on the **asyncio** backend only:
``redis.asyncio`` does not run on trio) and :class:`SyncRedisIdentifyLimiter`
(gateway_sync) let one identify per ``max_concurrency`` bucket per window through,
across every process and machine that uses the same Redis and token, and spend
one shared session start budget. Pass one to a ``Cluster`` or ``Shard`` as
``identify_limiter=``; a ``Cluster`` feeds it each ``GET /gateway/bot`` answer.

How it works (atomic Lua scripts, grants that expire on their own, the window
counted from the written IDENTIFY) is in ``gateway_redis._identify_core``; the
two classes here only make its calls and sleep. See docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio
import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway_proto.driver_support import IdentifyGrant, IdentifyWait
from gateway_proto.identify import IDENTIFY_MARGIN, IDENTIFY_WINDOW, SessionStartLimit
from gateway_sync import IdentifyCancelledError

from ._identify_core import ACQUIRE_SCRIPT, SENT_SCRIPT, IdentifyCoordinator, RedisCall
from ._keys import Keys

__all__ = ["RedisIdentifyLimiter", "SyncRedisIdentifyLimiter"]

_log = logging.getLogger("gateway_redis.identify")
#: What "Redis could not be asked" looks like (a script error is a bug, and raises).
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class _LimiterBase:
    """What both limiters share: the coordinator and the read-only views of it."""

    def __init__(
        self,
        token_or_keys: str | Keys,
        *,
        max_concurrency: int,
        window: float,
        margin: float,
        limit: SessionStartLimit | None,
        clock: Callable[[], float],
        history: int,
    ) -> None:
        keys = token_or_keys if isinstance(token_or_keys, Keys) else Keys.for_token(token_or_keys)
        self._clock = clock
        self._core = IdentifyCoordinator(
            keys,
            max_concurrency=max_concurrency,
            window=window,
            margin=margin,
            limit=limit,
            now=clock(),
            holder=f"{socket.gethostname()}:{os.getpid()}",
            history=history,
        )

    @property
    def keys(self) -> Keys:
        """The Redis keys of this bot."""
        return self._core.keys

    @property
    def max_concurrency(self) -> int:
        """The number of buckets."""
        return self._core.max_concurrency

    @property
    def window(self) -> float:
        """Seconds a bucket stays held after an identify (before the margin)."""
        return self._core.window

    @property
    def remaining(self) -> int | None:
        """Session starts left after this process's last grant (``None``: no budget known)."""
        return self._core.remaining

    @property
    def history(self) -> deque[IdentifyGrant]:
        """The most recent grants of this process, oldest first (``at`` on the limiter's clock)."""
        return self._core.history

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(prefix={self.keys.prefix!r}, "
            f"max_concurrency={self.max_concurrency}, window={self.window})"
        )


class RedisIdentifyLimiter(_LimiterBase):
    """An ``IdentifyLimiter`` of ``gateway_anyio`` shared through Redis (asyncio backend only).

    One identify per bucket (``shard_id % max_concurrency``) per ``window`` across
    every process on the token, and never one once the shared session start budget
    is spent (the wait is announced through ``on_wait``, ``waits_for_reset=True``).

    Args:
        client: a ``redis.asyncio.Redis`` (the caller owns it and closes it).
        token_or_keys: the bot token (only its hash reaches Redis) or its :class:`Keys`.
        max_concurrency: identify buckets; every process must use the same number
            (a ``Cluster`` sets it from ``GET /gateway/bot`` through :meth:`update_limit`).
        window: seconds a bucket is held after an identify (Discord: 5; shorter for
            a fake gateway with a shorter ``identify_window``).
        margin: seconds added to the window (``gateway_proto.identify.IDENTIFY_MARGIN``).
        limit: a session start budget already fetched (else the first
            :meth:`update_limit` brings one; until then only buckets are limited,
            plus any budget another process put in Redis).
        clock: a monotonic clock in seconds (for local waits and the budget's reset).
        history: how many grants to keep in :attr:`history`.

    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        token_or_keys: str | Keys,
        *,
        max_concurrency: int = 1,
        window: float = IDENTIFY_WINDOW,
        margin: float = IDENTIFY_MARGIN,
        limit: SessionStartLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        history: int = 1000,
    ) -> None:
        super().__init__(
            token_or_keys,
            max_concurrency=max_concurrency,
            window=window,
            margin=margin,
            limit=limit,
            clock=clock,
            history=history,
        )
        self._acquire_script = client.register_script(ACQUIRE_SCRIPT)
        self._sent_script = client.register_script(SENT_SCRIPT)
        self._pending: set[asyncio.Task[object]] = set()

    def update_limit(self, limit: SessionStartLimit) -> None:
        """Take a fetched budget: the next identify seeds the shared one (or lowers it)."""
        self._core.update_limit(limit, now=self._clock())

    async def acquire(
        self, shard_id: int, *, on_wait: Callable[[IdentifyWait], None] | None = None
    ) -> None:
        """Return when ``shard_id`` may send IDENTIFY now (see ``gateway_anyio.IdentifyLimiter``).

        A cancelled ``acquire`` may have taken its bucket (the grant then expires
        after ``window + margin``); it never hands one out twice.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RedisIdentifyLimiter needs the asyncio backend (redis.asyncio has no trio support)"
            ) from None
        core = self._core
        waiter = core.add(shard_id, on_wait)
        try:
            while True:
                step = core.next_step(waiter, self._clock())
                if isinstance(step, RedisCall):
                    try:
                        reply = await self._acquire_script(keys=step.keys, args=step.args)
                    except _UNREACHABLE as exc:
                        step = core.failed(waiter, exc, self._clock())
                    else:
                        wait = core.answer(waiter, reply, self._clock())
                        if wait is None:
                            return
                        step = wait
                await anyio.sleep(step)
        finally:
            core.remove(waiter)

    def identify_sent(self, shard_id: int) -> None:
        """Hold ``shard_id``'s bucket for a window from now (in the background: never blocks)."""
        call = self._core.sent_call(shard_id)
        task = asyncio.get_running_loop().create_task(self._hold(call))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        """Wait for the bucket holds still on their way to Redis (the client stays open)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=5.0)

    async def _hold(self, call: RedisCall) -> None:
        try:
            await self._sent_script(keys=call.keys, args=call.args)
        except _UNREACHABLE as exc:
            # The grant's provisional hold still covers the bucket, minus the margin.
            _log.warning("could not hold identify bucket %s after the send: %s", call.keys[0], exc)


class SyncRedisIdentifyLimiter(_LimiterBase):
    """An ``IdentifyLimiter`` of ``gateway_sync`` shared through Redis (thread-safe).

    The blocking twin of :class:`RedisIdentifyLimiter` (same arguments, but a
    ``redis.Redis`` client); ``acquire`` gives up with
    ``gateway_sync.IdentifyCancelledError`` once its ``cancel`` event is set.
    Call :meth:`close` at the end to finish the bucket holds still under way.
    """

    def __init__(
        self,
        client: redis.Redis,
        token_or_keys: str | Keys,
        *,
        max_concurrency: int = 1,
        window: float = IDENTIFY_WINDOW,
        margin: float = IDENTIFY_MARGIN,
        limit: SessionStartLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        history: int = 1000,
    ) -> None:
        super().__init__(
            token_or_keys,
            max_concurrency=max_concurrency,
            window=window,
            margin=margin,
            limit=limit,
            clock=clock,
            history=history,
        )
        self._acquire_script = client.register_script(ACQUIRE_SCRIPT)
        self._sent_script = client.register_script(SENT_SCRIPT)
        self._lock = threading.Lock()
        # identify_sent runs on a shard's I/O thread and must not wait for Redis there.
        self._holder = ThreadPoolExecutor(1, thread_name_prefix="gateway-redis-identify")

    def update_limit(self, limit: SessionStartLimit) -> None:
        """Take a fetched budget: the next identify seeds the shared one (or lowers it)."""
        with self._lock:
            self._core.update_limit(limit, now=self._clock())

    def acquire(
        self,
        shard_id: int,
        *,
        on_wait: Callable[[IdentifyWait], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Return when ``shard_id`` may send IDENTIFY now (see ``gateway_sync.IdentifyLimiter``).

        Raises:
            IdentifyCancelledError: ``cancel`` was set while waiting.

        """
        core, lock = self._core, self._lock
        with lock:
            waiter = core.add(shard_id, on_wait)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise IdentifyCancelledError(f"shard {shard_id} stopped while waiting")
                with lock:
                    step = core.next_step(waiter, self._clock())
                if isinstance(step, RedisCall):
                    try:
                        reply = self._acquire_script(keys=step.keys, args=step.args)
                    except _UNREACHABLE as exc:
                        with lock:
                            step = core.failed(waiter, exc, self._clock())
                    else:
                        with lock:
                            wait = core.answer(waiter, reply, self._clock())
                        if wait is None:
                            return
                        step = wait
                if cancel is not None:
                    cancel.wait(step)
                else:
                    time.sleep(step)
        finally:
            with lock:
                core.remove(waiter)

    def identify_sent(self, shard_id: int) -> None:
        """Hold ``shard_id``'s bucket for a window from now (on a helper thread: never blocks)."""
        with self._lock:
            call = self._core.sent_call(shard_id)
        try:
            self._holder.submit(self._hold, call)  # failures are logged by _hold
        except RuntimeError:  # closed: the grant's provisional hold has to do
            _log.warning("identify limiter closed: bucket %s not held after the send", call.keys[0])

    def close(self) -> None:
        """Finish the bucket holds under way and stop the helper thread (the client stays open)."""
        self._holder.shutdown(wait=True)

    def _hold(self, call: RedisCall) -> None:
        try:
            self._sent_script(keys=call.keys, args=call.args)
        except _UNREACHABLE as exc:
            # The grant's provisional hold still covers the bucket, minus the margin.
            _log.warning("could not hold identify bucket %s after the send: %s", call.keys[0], exc)
