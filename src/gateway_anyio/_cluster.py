"""``Cluster``: many shards of one bot in one process, sharing an identify limiter."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio
from anyio.abc import TaskGroup

from gateway_proto.driver_support import ERROR, GatewayEvent, SpawnSpec, plan_shards
from gateway_proto.identify import IDENTIFY_WINDOW

from ._events import DEFAULT_MAX_BUFFER, Emitter, EventStream, Handler
from ._gateway import Gateway
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter
from ._shard import Shard

__all__ = ["Cluster"]

_H = TypeVar("_H", bound=Handler)
_log = logging.getLogger("gateway_anyio.cluster")


class Cluster:
    """Spawns and supervises shards; every event arrives here with its shard.

    Use it as an async context manager::

        async with Cluster(token, intents=Intents.GUILDS) as cluster:
            await cluster.spawn("auto")
            async for event in cluster.events("MESSAGE_CREATE"):
                print(event.shard_id, event.data["content"])

    Every IDENTIFY of every shard (re-identifies after a lost session included)
    goes through one :class:`IdentifyLimiter`, which honours ``max_concurrency``
    buckets, the 5 s window and the session start budget; resumes skip it.

    Args:
        token_or_gateway: a bot token or a :class:`Gateway`.
        intents: the intents bitfield for every shard.
        identify_limiter: a limiter to share (e.g. one spanning processes);
            default: an :class:`InProcessIdentifyLimiter` built from
            ``GET /gateway/bot`` (``max_concurrency``, ``session_start_limit``).
        identify_window: the default limiter's window (Discord: 5 s).
        limiter_clock: the default limiter's clock (tests inject one).
        limiter_sleep: the default limiter's sleep on that clock.
        max_buffer: per-consumer event buffer, for the cluster and its shards.
        shard_options: passed to every :class:`Shard` (``encoding``, ``compress``,
            ``ssl_context``, timeouts, ...).

    """

    def __init__(
        self,
        token_or_gateway: str | Gateway,
        *,
        intents: int,
        identify_limiter: IdentifyLimiter | None = None,
        identify_window: float = IDENTIFY_WINDOW,
        limiter_clock: Callable[[], float] | None = None,
        limiter_sleep: Callable[[float], Awaitable[object]] | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        **shard_options: Any,
    ) -> None:
        self.gateway = (
            token_or_gateway
            if isinstance(token_or_gateway, Gateway)
            else Gateway.for_token(token_or_gateway)
        )
        self.intents = intents
        self.identify_limiter = identify_limiter
        self._limiter_args = (identify_window, limiter_clock, limiter_sleep)
        self._max_buffer = max_buffer
        self._shard_options = shard_options
        #: The spawned shards, by id.
        self.shards: dict[int, Shard] = {}
        #: Errors that stopped shards for good, by shard id.
        self.errors: dict[int, BaseException] = {}
        self._emitter = Emitter(_log, max_pending=max_buffer)
        self._task_group: TaskGroup | None = None
        self._exit_stack: Any = None

    # -- events ------------------------------------------------------------------

    @overload
    def on(self, name: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, name: str, handler: _H) -> _H: ...

    def on(self, name: str, handler: _H | None = None) -> _H | Callable[[_H], _H]:
        """Register a handler for an event of any shard (``event.shard`` tells which)."""
        return self._emitter.on(name) if handler is None else self._emitter.on(name, handler)

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

    def events(self, *names: str, max_buffer: int | None = None) -> EventStream:
        """Iterate over every shard's events (see ``Shard.events`` for buffering)."""
        return self._emitter.events(*names, max_buffer=max_buffer or self._max_buffer)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        self._exit_stack = anyio.create_task_group()
        self._task_group = await self._exit_stack.__aenter__()
        self._emitter.attach(self._task_group)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if exc is None:
                await self.aclose()
            else:
                self._finish()
                assert self._task_group is not None
                self._task_group.cancel_scope.cancel()
        finally:
            stack, self._exit_stack, self._task_group = self._exit_stack, None, None
        result: bool | None = await stack.__aexit__(exc_type, exc, tb)
        return result

    async def spawn(self, shards: SpawnSpec = "auto") -> list[Shard]:
        """Start shards: a count, explicit ids, or ``"auto"`` (``GET /gateway/bot``).

        Returns the new shards at once; they connect in the background, in id
        order through the identify limiter. Wait for ``"connect"`` events to know
        when they are live.
        """
        if self._task_group is None:
            raise RuntimeError("use the cluster as `async with Cluster(...) as cluster:`")
        info = await self.gateway.fetch()
        ids, total = plan_shards(shards, info.shards)
        if self.identify_limiter is None:
            window, clock, sleep = self._limiter_args
            self.identify_limiter = InProcessIdentifyLimiter(
                info.max_concurrency,
                window=window,
                limit=info.session_start_limit,
                clock=clock,
                sleep=sleep,
            )
        started = []
        for shard_id in ids:
            if shard_id in self.shards:
                raise ValueError(f"shard {shard_id} is already running")
            options = {"url": info.url, "max_buffer": self._max_buffer, **self._shard_options}
            shard = Shard(
                self.gateway,
                shard_id,
                shard_count=total,
                intents=self.intents,
                identify_limiter=self.identify_limiter,
                **options,
            )
            shard._emitter.parents.append(self._emitter)
            self.shards[shard_id] = shard
            started.append(shard)
            self._task_group.start_soon(self._supervise, shard)
        return started

    async def aclose(self, code: int = 1000) -> None:
        """Disconnect every shard (with ``code``) and end the event streams."""
        async with anyio.create_task_group() as tg:
            for shard in self.shards.values():
                tg.start_soon(shard.disconnect, code)
        self._finish()

    def _finish(self) -> None:
        self._emitter.close()

    async def _supervise(self, shard: Shard) -> None:
        try:
            await shard.connect()
        except Exception as exc:
            # One shard's fatal error must not take the others down; it is reported.
            self.errors[shard.id] = exc
            _log.error("shard %d stopped: %s", shard.id, exc)
            self._emitter.emit(GatewayEvent(ERROR, shard.id, exc, None, shard))
