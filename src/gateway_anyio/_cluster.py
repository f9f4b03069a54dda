"""``Cluster``: many shards of one bot in one process, sharing an identify limiter."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from gateway_proto.close_codes import RESUMABLE_CLOSE
from gateway_proto.commands import Command, UpdatePresence
from gateway_proto.driver_support import (
    ERROR,
    GatewayEvent,
    IdentifyWait,
    ShardState,
    SpawnSpec,
    StartOrder,
    note_identify_sent,
    note_session_start_limit,
    plan_shards,
    plan_spawn,
)
from gateway_proto.errors import InvalidCommandError, LocalProtocolError
from gateway_proto.identify import IDENTIFY_WINDOW
from gateway_proto.session import Session

from ._events import DEFAULT_MAX_BUFFER, Emitter, Handler
from ._gateway import Gateway
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter
from ._shard import Shard
from ._typed import TypedEvents

__all__ = ["Cluster"]

_H = TypeVar("_H", bound=Handler)
_log = logging.getLogger("gateway_anyio.cluster")

#: Seconds ``async with`` waits, shielded, for the shards' closing handshakes on exit
#: (the core's close timeout, then the handlers' drain).
CLOSE_GRACE = 10.0
#: States in which a shard has passed its first identify point (or will not reach it).
_PASSED = frozenset(
    {ShardState.READY, ShardState.RESUMING, ShardState.RECONNECTING, ShardState.STOPPED}
)


class _PacingLimiter:
    """Passes ``acquire`` on, and tells the cluster when a shard got past it."""

    def __init__(self, limiter: IdentifyLimiter, passed: Callable[[int], None]) -> None:
        self._limiter = limiter
        self._passed = passed

    async def acquire(
        self, shard_id: int, *, on_wait: Callable[[IdentifyWait], None] | None = None
    ) -> None:
        try:
            await self._limiter.acquire(shard_id, on_wait=on_wait)
        finally:
            self._passed(shard_id)

    def identify_sent(self, shard_id: int) -> None:
        """Pass the news of a written IDENTIFY on (if the limiter keeps track)."""
        note_identify_sent(self._limiter, shard_id)


class Cluster(TypedEvents[Shard]):
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
        identify_limiter: a limiter to share (e.g. one spanning processes:
            ``gateway_redis.RedisIdentifyLimiter``); default: an
            :class:`InProcessIdentifyLimiter` built from ``GET /gateway/bot``
            (``max_concurrency``, ``session_start_limit``). Each :meth:`spawn`
            hands its fetched ``session_start_limit`` to a limiter that has an
            ``update_limit`` method.
        identify_window: the default limiter's window (Discord: 5 s).
        limiter_clock: the default limiter's clock (tests inject one).
        limiter_sleep: the default limiter's sleep on that clock.
        max_buffer: per-consumer event buffer, for the cluster and its shards.
        shard_options: passed to every :class:`Shard` (``encoding``, ``compression``,
            ``ssl_context``, timeouts, ``user_agent`` (also used by the cluster's
            own ``GET /gateway/bot``), ...). ``url=`` connects every shard there
            and asks no ``GET /gateway/bot``: ``spawn("auto")`` then starts
            ``shard_count`` shards (default 1), identifying one at a time.

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
        self._closing = False
        self._gates: dict[int, anyio.Event] = {}
        # Per shard: the scope its supervision runs in and an event set when it ended
        # (``remove`` cancels the first and waits for the second).
        self._scopes: dict[int, anyio.CancelScope] = {}
        self._done: dict[int, anyio.Event] = {}
        # Shards being removed: their end does not end the event streams.
        self._leaving: set[int] = set()

    # -- events ------------------------------------------------------------------

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

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
        stack, self._exit_stack = self._exit_stack, None
        task_group, self._task_group = self._task_group, None
        if stack is None or task_group is None:
            return None
        try:
            # Shielded, so the cleanup runs to its end even when a surrounding scope
            # was cancelled (Ctrl-C, a timeout); bounded, so leaving never hangs.
            # Shards still running get their closing handshake (1000); those the
            # cancellation already reached stop without one.
            with anyio.move_on_after(CLOSE_GRACE, shield=True):
                await self.aclose()
        finally:
            self._finish()
            task_group.cancel_scope.cancel()
            # Always leave the task group, or its cancel scope stays entered and
            # the surrounding one fails with "cancel scope isn't current". An error
            # of the body (InvalidTokenError from spawn, say) is not handed to it:
            # the task group would wrap it in an ExceptionGroup, and
            # `except InvalidTokenError` around the `async with` would miss it. It
            # propagates as itself instead. Cancellations (BaseException) go in, as
            # the task group needs them.
            if isinstance(exc, Exception):
                await stack.__aexit__(None, None, None)
                result: bool | None = None
            else:
                result = await stack.__aexit__(exc_type, exc, tb)
        return result

    async def spawn(
        self,
        shards: SpawnSpec = "auto",
        *,
        shard_count: int | None = None,
        sessions: Mapping[int, Session] | None = None,
    ) -> list[Shard]:
        """Start shards: a count, explicit ids, or ``"auto"`` (``GET /gateway/bot``).

        Returns the new shards at once; they connect in the background and ask
        for identify permits in id order: per bucket, a shard starts connecting
        once the one before it got its permit (or resumed, failed or stopped).
        Wait for ``"connect"`` events to know when they are live.

        Args:
            shards: a count (shards ``0..n-1``), shard ids, or ``"auto"``.
            shard_count: the total every shard sends in IDENTIFY, for a process
                that runs a slice of a larger layout (ids ``4..7`` of 16);
                default: the recommended count of ``GET /gateway/bot`` (or
                ``max(ids) + 1`` if larger). ``"auto"`` then spawns every shard
                of ``shard_count``.
            sessions: saved sessions by shard id (e.g. from before a restart): those
                shards RESUME instead of identifying (and skip the identify limiter);
                a session Discord no longer knows falls back to IDENTIFY.

        Raises:
            ValueError: a shard id is already running, or the spec is invalid
                (ids outside ``shard_count``).
            RuntimeError: the cluster is not entered, or closed.

        """
        if self._task_group is None or self._closing:
            raise RuntimeError("use the cluster as `async with Cluster(...) as cluster:`")
        plan_shards(shards, 1, shard_count=shard_count)  # a bad spec fails before REST
        # A URL given means no GET /gateway/bot (as for a lone Shard): see plan_spawn.
        url: str | None = self._shard_options.get("url")
        info = (
            None
            if url is not None
            else await self.gateway.fetch(user_agent=self._shard_options.get("user_agent"))
        )
        ids, total, max_concurrency = plan_spawn(shards, info, shard_count=shard_count)
        url = url or (None if info is None else info.url)
        if any(shard_id in self.shards for shard_id in ids):
            raise ValueError(f"shards {sorted(set(ids) & set(self.shards))} are already running")
        if self.identify_limiter is None:
            window, clock, sleep = self._limiter_args
            self.identify_limiter = InProcessIdentifyLimiter(
                max_concurrency,
                window=window,
                limit=None if info is None else info.session_start_limit,
                clock=clock,
                sleep=sleep,
            )
        elif info is not None:
            # A limiter given (one across processes, say) learns each fetched budget.
            note_session_start_limit(self.identify_limiter, info.session_start_limit)
        order = StartOrder(ids, max_concurrency)

        def passed(shard_id: int) -> None:
            following = order.passed(shard_id)
            if following is not None:
                self._gates[following].set()

        def on_state(shard: Shard) -> None:
            if shard.state in _PASSED:
                passed(shard.id)

        limiter = _PacingLimiter(self.identify_limiter, passed)
        started = []
        for shard_id in ids:
            options = {"max_buffer": self._max_buffer, **self._shard_options, "url": url}
            shard = Shard(
                self.gateway,
                shard_id,
                shard_count=total,
                intents=self.intents,
                identify_limiter=limiter,
                session=None if sessions is None else sessions.get(shard_id),
                **options,
            )
            shard._emitter.add_parent(self._emitter)
            shard._on_state = on_state
            self.shards[shard_id] = shard
            self._gates[shard_id] = anyio.Event()
            self._scopes[shard_id] = anyio.CancelScope()
            self._done[shard_id] = anyio.Event()
            started.append(shard)
            self._task_group.start_soon(self._supervise, shard)
        self._emitter.reopen()  # new shards: something feeds the streams again
        for shard_id in order.first():
            self._gates[shard_id].set()
        return started

    async def aclose(self, code: int = 1000) -> None:
        """Disconnect every shard (with ``code``) and end the event streams."""
        self._closing = True
        for gate in self._gates.values():
            gate.set()  # shards not started yet see _closing and never start
        async with anyio.create_task_group() as tg:
            for shard in self.shards.values():
                tg.start_soon(shard.disconnect, code)
        self._finish()

    async def remove(
        self, shard_id: int, code: int = RESUMABLE_CLOSE, *, timeout: float | None = None
    ) -> Shard:
        """Stop one shard and forget it, so that its id can be spawned again.

        The shard closes with ``code`` (default 4000: the session stays resumable;
        read it from the returned shard's ``session``). If it has not stopped
        within ``timeout`` seconds, its connection is dropped without a closing
        handshake (still resumable), so the call returns in bounded time; a
        process that must stop a shard by a deadline (a lost lease) relies on it.

        Raises:
            KeyError: no shard of that id is in :attr:`shards`.

        """
        shard = self.shards[shard_id]
        gate, done, scope = self._gates[shard_id], self._done[shard_id], self._scopes[shard_id]
        self._leaving.add(shard_id)
        try:
            if gate.is_set():  # a shard still waiting for its turn has nothing to close
                with anyio.move_on_after(float("inf") if timeout is None else timeout):
                    await shard.disconnect(code)
            scope.cancel()  # a no-op once the shard stopped; else the forced stop
            if self._task_group is not None:
                await done.wait()
        finally:
            self._leaving.discard(shard_id)
        del self.shards[shard_id], self._gates[shard_id], self._scopes[shard_id]
        del self._done[shard_id]
        self.errors.pop(shard_id, None)
        return shard

    # -- commands for every shard -----------------------------------------------------

    async def send(self, command: Command) -> list[int]:
        """Queue ``command`` on every connected shard; return the ids of those that took it.

        A shard that is not connected at that moment (waiting for its turn,
        between connections, stopped) is skipped: it is not in the result.

        Raises:
            InvalidCommandError: the command is invalid or too large.

        """
        taken: list[int] = []
        for shard in list(self.shards.values()):
            try:
                await shard.send(command)
            except InvalidCommandError:
                raise
            except LocalProtocolError:
                continue  # not connected: skipped, as documented
            taken.append(shard.id)
        return taken

    async def send_and_wait(self, command: Command) -> list[int]:
        """Send ``command`` on every connected shard and wait until each has written it.

        The shards wait (for READY/RESUMED and their rate limiters) side by side.
        Returns the ids of the shards that wrote it; one not connected when called,
        or that stopped before writing it, is left out.

        Raises:
            InvalidCommandError: the command is invalid or too large.

        """
        written: list[int] = []
        invalid: list[InvalidCommandError] = []

        async def one(shard: Shard) -> None:
            try:
                await shard.send_and_wait(command)
            except InvalidCommandError as exc:
                invalid.append(exc)  # raised as itself below, not in an ExceptionGroup
            except LocalProtocolError:
                return  # not connected, or stopped first (CommandNotSentError)
            else:
                written.append(shard.id)

        async with anyio.create_task_group() as tg:
            for shard in list(self.shards.values()):
                tg.start_soon(one, shard)
        if invalid:
            raise invalid[0]
        return sorted(written)

    async def update_presence(self, presence: UpdatePresence) -> list[int]:
        """Set the bot's presence on every connected shard in one call (op 3 each).

        Waits until each shard has written it (see :meth:`send_and_wait`) and
        returns their ids. A shard that connects later identifies with the
        ``presence`` it was built with (``Cluster(..., presence=...)``).
        """
        return await self.send_and_wait(presence)

    def _finish(self) -> None:
        self._emitter.close()

    async def _supervise(self, shard: Shard) -> None:
        done = self._done[shard.id]
        try:
            with self._scopes[shard.id]:
                await self._gates[shard.id].wait()
                if self._closing:
                    return
                await shard.connect()
        except Exception as exc:
            # One shard's fatal error must not take the others down; it is reported.
            self.errors[shard.id] = exc
            _log.error("shard %d stopped: %s", shard.id, exc)
            self._emitter.emit(GatewayEvent(ERROR, shard.id, exc, None, shard))
        finally:
            done.set()
            self._end_streams_if_unfed()

    def _end_streams_if_unfed(self) -> None:
        """End the event streams once every shard (not being removed) has stopped."""
        if self._closing:
            return  # aclose() ends them
        ids = [i for i in self.shards if i not in self._leaving]
        if not ids or not all(self._done[i].is_set() for i in ids):
            return
        failed = [self.errors[i] for i in sorted(ids) if i in self.errors]
        self._emitter.end_streams(failed[0] if failed else None)
