"""``Cluster``: many shards of one bot in one process, sharing an identify limiter.

Thread ownership: the cluster's methods run on the caller's threads; its shards'
I/O threads only call its hooks (pacing spawns, recording a shard's fatal error).
The two dicts it exposes, :attr:`Cluster.shards` and :attr:`Cluster.errors`, are
never changed in place: a new dict replaces the old one (under a lock, one
assignment), so any thread may iterate them while shards are spawned or stop.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

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
from gateway_proto.errors import CommandNotSentError, InvalidCommandError, LocalProtocolError
from gateway_proto.identify import IDENTIFY_WINDOW

from ._events import DEFAULT_MAX_BUFFER, Emitter, Handler
from ._gateway import Gateway
from ._inline import refuse_to_wait
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter
from ._shard import Shard
from ._typed import TypedEvents

__all__ = ["Cluster"]

_H = TypeVar("_H", bound=Handler)
_log = logging.getLogger("gateway_sync.cluster")

#: States in which a shard has passed its first identify point (or will not reach it).
_PASSED = frozenset(
    {ShardState.READY, ShardState.RESUMING, ShardState.RECONNECTING, ShardState.STOPPED}
)


class _PacingLimiter:
    """Passes ``acquire`` on, and tells the cluster when a shard got past it."""

    def __init__(self, limiter: IdentifyLimiter, passed: Callable[[int], None]) -> None:
        self._limiter = limiter
        self._passed = passed

    def acquire(
        self,
        shard_id: int,
        *,
        on_wait: Callable[[IdentifyWait], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        try:
            self._limiter.acquire(shard_id, on_wait=on_wait, cancel=cancel)
        finally:
            self._passed(shard_id)

    def identify_sent(self, shard_id: int) -> None:
        """Pass the news of a written IDENTIFY on (if the limiter keeps track)."""
        note_identify_sent(self._limiter, shard_id)


class Cluster(TypedEvents[Shard]):
    """Spawns and supervises shards; every event arrives here with its shard.

    Use it as a context manager, or call :meth:`run` to block until it is closed::

        with Cluster(token, intents=Intents.GUILDS) as cluster:
            cluster.spawn("auto")
            for event in cluster.events("MESSAGE_CREATE"):
                print(event.shard_id, event.data["content"])

    Every IDENTIFY of every shard (re-identifies after a lost session included)
    goes through one :class:`IdentifyLimiter`, which honours ``max_concurrency``
    buckets, the 5 s window and the session start budget; resumes skip it.
    Each shard runs on its own I/O thread; handlers run on threads of their own.

    Args:
        token_or_gateway: a bot token or a :class:`Gateway`.
        intents: the intents bitfield for every shard.
        identify_limiter: a limiter to share (e.g. one spanning processes:
            ``gateway_redis.SyncRedisIdentifyLimiter``); default: an
            :class:`InProcessIdentifyLimiter` built from ``GET /gateway/bot``
            (``max_concurrency``, ``session_start_limit``). Each :meth:`spawn`
            hands its fetched ``session_start_limit`` to a limiter that has an
            ``update_limit`` method.
        identify_window: the default limiter's window (Discord: 5 s).
        limiter_clock: the default limiter's clock (tests inject one).
        limiter_sleep: the default limiter's sleep on that clock.
        max_buffer: per-consumer event buffer, for the cluster and its shards.
        inline_handlers: call the cluster's handlers and its shards' on the I/O
            thread of the shard whose event it is (see :class:`Shard`): with several
            shards, a handler may then run on several threads at once.
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
        limiter_sleep: Callable[[float], object] | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        inline_handlers: bool = False,
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
        self._shard_options = {**shard_options, "inline_handlers": inline_handlers}
        #: The spawned shards, by id (replaced whole on spawn, never changed in place).
        self.shards: dict[int, Shard] = {}
        #: Errors that stopped shards for good, by shard id (replaced whole, likewise).
        self.errors: dict[int, BaseException] = {}
        self._errors_lock = threading.Lock()
        self._emitter = Emitter(
            _log, max_pending=max_buffer, thread_prefix="gateway-cluster", inline=inline_handlers
        )
        self._lock = threading.Lock()
        self._closing = threading.Event()
        # Ids of shards whose I/O thread ended (under _errors_lock): once it holds
        # every shard, nothing can feed the event streams.
        self._stopped: set[int] = set()

    # -- events ------------------------------------------------------------------

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        self._emitter.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def spawn(self, shards: SpawnSpec = "auto", *, shard_count: int | None = None) -> list[Shard]:
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

        Raises:
            InvalidTokenError: ``GET /gateway/bot`` refused the token.
            ValueError: a shard id is already running, or the spec is invalid
                (ids outside ``shard_count``).
            RuntimeError: the cluster is closed.

        """
        if self._closing.is_set():
            raise RuntimeError("the cluster is closed")
        plan_shards(shards, 1, shard_count=shard_count)  # a bad spec fails before REST
        self._emitter.start()
        # A URL given means no GET /gateway/bot (as for a lone Shard): see plan_spawn.
        url: str | None = self._shard_options.get("url")
        info = (
            None
            if url is not None
            else self.gateway.fetch(user_agent=self._shard_options.get("user_agent"))
        )
        ids, total, max_concurrency = plan_spawn(shards, info, shard_count=shard_count)
        url = url or (None if info is None else info.url)
        with self._lock:
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
            if any(shard_id in self.shards for shard_id in ids):
                taken = sorted(set(ids) & set(self.shards))
                raise ValueError(f"shards {taken} are already running")
            order = StartOrder(ids, max_concurrency)

            def passed(shard_id: int) -> None:
                # On a shard's I/O thread or identify helper: start the next of its bucket.
                with self._lock:
                    following = order.passed(shard_id)
                    if following is not None and not self._closing.is_set():
                        self.shards[following].start()

            def on_state(shard: Shard) -> None:
                if shard.state in _PASSED:
                    passed(shard.id)
                if shard.state is ShardState.CONNECTING and shard.id in self._stopped:
                    with self._errors_lock:  # started again by hand: it feeds the streams
                        self._stopped.discard(shard.id)
                        self._emitter.reopen()

            limiter = _PacingLimiter(self.identify_limiter, passed)
            started = []
            by_id = dict(self.shards)
            for shard_id in ids:
                options = {"max_buffer": self._max_buffer, **self._shard_options, "url": url}
                shard = Shard(
                    self.gateway,
                    shard_id,
                    shard_count=total,
                    intents=self.intents,
                    identify_limiter=limiter,
                    **options,
                )
                shard._emitter.parents.append(self._emitter)
                shard._on_stopped = self._shard_stopped
                shard._on_state = on_state
                by_id[shard_id] = shard
                started.append(shard)
            with self._errors_lock:  # not between a last stop's check and its end_streams
                self.shards = by_id  # one assignment: readers see all the new shards or none
                self._emitter.reopen()  # new shards: something feeds the iterators again
            # Per bucket, one after another: identifies are asked for in id order.
            for shard_id in order.first():
                self.shards[shard_id].start()
        return started

    def run(self, shards: SpawnSpec | None = None) -> None:
        """Block until every shard stopped or :meth:`close` was called; Ctrl-C closes.

        Args:
            shards: if given, :meth:`spawn` these first.

        Returns normally after Ctrl-C (every shard disconnected with 1000, every
        thread joined); fatal errors of single shards are in :attr:`errors`.

        """
        if shards is not None:
            self.spawn(shards)
        try:
            while not self._closing.wait(0.25):
                if self.shards and not any(s.running for s in self.shards.values()):
                    break
        except KeyboardInterrupt:
            _log.info("interrupted: closing the cluster")
        finally:
            self.close()

    def close(self, code: int = 1000) -> None:
        """Disconnect every shard (with ``code``), join their threads, end the event streams.

        Thread-safe and idempotent; from a handler it starts the shutdown without
        waiting for it (the caller of :meth:`run` waits).
        """
        self._closing.set()
        with self._lock:
            shards = list(self.shards.values())
        # Ask all first, then wait: the shards close their connections in parallel.
        for shard in shards:
            shard._request_stop(code)
        if self._emitter.is_handler_thread() or any(s._emitter.is_handler_thread() for s in shards):
            return
        for shard in shards:
            shard.disconnect(code)
        self._emitter.close()

    # -- commands for every shard -----------------------------------------------------

    def send(self, command: Command, *, timeout: float | None = 10.0) -> list[int]:
        """Queue ``command`` on every connected shard; return the ids of those that took it.

        Thread-safe. A shard that is not connected at that moment (waiting for its
        turn, between connections, stopped) is skipped: it is not in the result.

        Raises:
            InvalidCommandError: the command is invalid or too large.

        """
        return [shard_id for shard_id, _ in self._post_all(command, None, timeout)]

    def send_and_wait(self, command: Command, *, timeout: float | None = 10.0) -> list[int]:
        """Send ``command`` on every connected shard and wait until each has written it.

        Thread-safe. The shards wait (for READY/RESUMED and their rate limiters)
        side by side. Returns the ids of the shards that wrote it; one not
        connected when called, or that stopped before writing it, is left out.

        Raises:
            InvalidCommandError: the command is invalid or too large.
            TimeoutError: some shard had not written it within ``timeout`` seconds.

        """
        refuse_to_wait("send_and_wait()")
        posted = self._post_all(command, concurrent.futures.Future, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        written: list[int] = []
        for shard_id, future in posted:
            assert future is not None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.result(left)
            except CommandNotSentError:
                continue  # the shard stopped first: left out, as documented
            except concurrent.futures.TimeoutError:
                raise TimeoutError(
                    f"shard {shard_id}: {type(command).__name__} not sent in {timeout} s"
                ) from None
            written.append(shard_id)
        return written

    def update_presence(
        self, presence: UpdatePresence, *, timeout: float | None = 10.0
    ) -> list[int]:
        """Set the bot's presence on every connected shard in one call (op 3 each).

        Waits until each shard has written it (see :meth:`send_and_wait`) and
        returns their ids. A shard that connects later identifies with the
        ``presence`` it was built with (``Cluster(..., presence=...)``).
        """
        return self.send_and_wait(presence, timeout=timeout)

    def _post_all(
        self,
        command: Command,
        waiting: Callable[[], concurrent.futures.Future[None]] | None,
        timeout: float | None,
    ) -> list[tuple[int, concurrent.futures.Future[None] | None]]:
        with self._lock:
            shards = sorted(self.shards.values(), key=lambda shard: shard.id)
        posted: list[tuple[int, concurrent.futures.Future[None] | None]] = []
        for shard in shards:
            future = None if waiting is None else waiting()
            try:
                shard._post_send(command, future, timeout)
            except InvalidCommandError:
                raise
            except LocalProtocolError:
                continue  # not connected: skipped, as documented
            posted.append((shard.id, future))
        return posted

    def _shard_stopped(self, shard: Shard) -> None:
        """Record a shard's fatal error (runs on its I/O thread as it ends).

        The last shard to stop ends the event iterators (with the lowest shard
        id's error, if any), since nothing can feed them any more.
        """
        error = shard.error
        if error is not None:
            # One shard's fatal error must not take the others down; it is reported.
            with self._errors_lock:  # I/O threads of several shards may stop at once
                self.errors = {**self.errors, shard.id: error}
            _log.error("shard %d stopped: %s", shard.id, error)
            self._emitter.emit(GatewayEvent(ERROR, shard.id, error, None, shard))
        with self._errors_lock:  # the check and the end as one: a spawn() reopens after both
            self._stopped.add(shard.id)
            if not self._closing.is_set() and set(self.shards) <= self._stopped:
                first = min(self.errors, default=None)
                error = None if first is None else self.errors[first]
                self._emitter.end_streams(error, sticky=True)
