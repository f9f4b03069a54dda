"""``Cluster``: many shards of one bot in one process, sharing an identify limiter."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from gateway_proto.driver_support import ERROR, GatewayEvent, SpawnSpec, plan_shards
from gateway_proto.identify import IDENTIFY_WINDOW

from ._events import DEFAULT_MAX_BUFFER, Emitter, EventStream, Handler
from ._gateway import Gateway
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter
from ._shard import Shard

__all__ = ["Cluster"]

_H = TypeVar("_H", bound=Handler)
_log = logging.getLogger("gateway_sync.cluster")


class Cluster:
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
        limiter_sleep: Callable[[float], object] | None = None,
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
        self._emitter = Emitter(_log, max_pending=max_buffer, thread_prefix="gateway-cluster")
        self._lock = threading.Lock()
        self._closing = threading.Event()

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

    def spawn(self, shards: SpawnSpec = "auto") -> list[Shard]:
        """Start shards: a count, explicit ids, or ``"auto"`` (``GET /gateway/bot``).

        Returns the new shards at once; they connect in the background, in id
        order through the identify limiter. Wait for ``"connect"`` events to know
        when they are live.

        Raises:
            InvalidTokenError: ``GET /gateway/bot`` refused the token.
            ValueError: a shard id is already running, or the spec is invalid.
            RuntimeError: the cluster is closed.

        """
        if self._closing.is_set():
            raise RuntimeError("the cluster is closed")
        self._emitter.start()
        info = self.gateway.fetch()
        ids, total = plan_shards(shards, info.shards)
        with self._lock:
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
                shard._on_stopped = self._shard_stopped
                self.shards[shard_id] = shard
                started.append(shard)
            # Started in id order, so buckets are asked for in order, as Discord wants.
            for shard in started:
                shard.start()
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

    def _shard_stopped(self, shard: Shard) -> None:
        """Record a shard's fatal error (runs on its I/O thread as it ends)."""
        error = shard.error
        if error is not None:
            # One shard's fatal error must not take the others down; it is reported.
            self.errors[shard.id] = error
            _log.error("shard %d stopped: %s", shard.id, error)
            self._emitter.emit(GatewayEvent(ERROR, shard.id, error, None, shard))
