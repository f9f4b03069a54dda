"""Event delivery for shards and clusters: handlers and ``events()`` streams.

Theory of operation: the shard's reader calls :meth:`Emitter.emit_batch` (up to 64
dispatches at a time, see ``driver_support.EventDrain``) synchronously and never
waits for a consumer, because a reader that waits stops reading heartbeat ACKs and
the connection would be declared a zombie; between batches it yields, so consumers
run while the rest of a read is still undecoded. Every consumer has a bounded
buffer instead:

* each registered handler gets its own worker task fed by a buffer of
  ``max_pending`` events, so it sees events in order, and a slow handler delays
  only itself, never the shard or the other handlers;
* each ``events()`` iterator has its own buffer of ``max_buffer`` events.

When a buffer is full the **oldest** event is dropped and counted
(``Emitter.dropped``, ``EventStream.dropped``, the shard's
``counters.dropped_events``), and a warning is logged the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from types import CoroutineType, TracebackType
from typing import Any, Generic, TypeVar, overload

import anyio
from anyio.abc import TaskGroup
from typing_extensions import TypeVar as DefaultTypeVar

from gateway_proto.driver_support import (
    ERROR,
    BufferedAnext,
    DropOldestBuffer,
    GatewayEvent,
    HandlerRegistry,
    name_matches,
)

__all__ = ["DEFAULT_MAX_BUFFER", "Emitter", "EventStream", "Handler"]

#: A handler: a coroutine function or a plain function taking the event.
Handler = Callable[[GatewayEvent], Awaitable[None] | None]
_H = TypeVar("_H", bound=Handler)

# The type of a stream's events: what on()/events() typing says it carries (see _typed.py).
_E = DefaultTypeVar("_E", bound=GatewayEvent, default=GatewayEvent)

#: Default per-consumer buffer (events) before the oldest is dropped.
DEFAULT_MAX_BUFFER = 10_000

# Bumped whenever any emitter's consumers or parents change: every emitter's cached
# ``wants`` answers are then stale (a shard's answers depend on its cluster's).
# Changes are rare (registrations, new streams); questions come with every heartbeat.
# Each change takes a value never used before (emitters on loops in other threads
# may change at once: a lost ``+= 1`` could leave a stale answer looking current).
_generations = itertools.count(1)
_generation = 0


def _changed() -> None:
    global _generation  # noqa: PLW0603 (one counter for every emitter, see above)
    _generation = next(_generations)


class _Signal:
    """A re-armable wake-up for the tasks waiting at the time (an ``anyio.Event`` is one-shot).

    On asyncio each waiter waits on a future of its own (what ``asyncio.Event``
    does, without the ``anyio.Event`` wrapper and its backend lookup made anew
    for every wake-up: half the cost of a consumer's wake-up per batch); on
    trio an ``anyio.Event`` shared by the waiters of the time.
    """

    __slots__ = ("_event", "_futures")

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._futures: list[asyncio.Future[None]] = []

    def set(self) -> None:
        futures = self._futures
        if futures:
            for future in futures:
                if not future.done():
                    future.set_result(None)
            futures.clear()  # one wake-up, however many events arrive before it runs
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    async def wait(self) -> None:
        loop = asyncio.events._get_running_loop()
        if loop is None:  # trio
            # Shared by every task waiting at once (two consumers of one stream):
            # a new Event each time would leave the earlier waiters unwoken.
            event = self._event
            if event is None:
                event = self._event = anyio.Event()
            await event.wait()
            return
        future: asyncio.Future[None] = loop.create_future()
        self._futures.append(future)
        try:
            await future
        finally:
            if future.cancelled():  # a cancelled waiter: set() did not take it out
                with contextlib.suppress(ValueError):
                    self._futures.remove(future)


class EventStream(BufferedAnext[_E], Generic[_E]):
    """An async iterator over events (``async for event in shard.events()``).

    Iteration ends when the shard or cluster stops, or when no shard can feed it
    any more; on a cluster whose shards all stopped and one of them on an error
    (a fatal close such as 4014), the iteration raises that error after the events
    it holds. Use it as an async context manager (or call :meth:`aclose`) to stop
    receiving before that.

    An event leaves the stream when the awaitable from ``stream.__anext__()``
    first runs, not when it is made (with the C extension as without): one
    dropped before it ran, such as a task cancelled before its first step, takes
    nothing. Several tasks may wait on one stream; each event goes to one of them.

    Attributes:
        dropped: events dropped because this consumer fell behind.

    """

    # __aiter__ and __anext__ are BufferedAnext's: an event already buffered comes
    # back at once (with the C extension, without running a coroutine: most of what
    # ``async for`` costs per event), else _wait_next runs.

    def __init__(self, emitter: Emitter, names: frozenset[str], max_buffer: int) -> None:
        self._emitter = emitter
        self._names = names
        self._buffer: DropOldestBuffer[_E] = DropOldestBuffer(max_buffer)
        self._items = self._buffer.items
        self._signal = _Signal()
        self._closed = False
        self._error: BaseException | None = None
        self._until_closed = False  # see Emitter.events

    @property
    def dropped(self) -> int:
        """Events dropped because this consumer fell behind."""
        return self._buffer.dropped

    def _put_many(self, events: list[_E]) -> int:
        dropped = self._buffer.extend(events)
        self._signal.set()
        return dropped

    def _close(self, error: BaseException | None = None) -> None:
        self._closed = True
        self._error = error
        self._signal.set()

    async def _wait_next(self) -> _E:
        items = self._items
        while not items:
            if self._closed:
                error, self._error = self._error, None
                if error is not None:
                    raise error  # once; the next call ends the iteration
                raise StopAsyncIteration
            await self._signal.wait()
        return items.popleft()

    async def aclose(self) -> None:
        """Stop receiving events (buffered ones are discarded)."""
        self._closed = True
        self._items.clear()
        self._emitter._streams.discard(self)
        _changed()
        self._signal.set()

    async def __aenter__(self) -> EventStream[_E]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Worker:
    """Runs one handler over its own bounded, ordered buffer."""

    def __init__(self, emitter: Emitter, handler: Handler, max_pending: int) -> None:
        self.emitter = emitter
        self.handler = handler
        self.buffer: DropOldestBuffer[GatewayEvent] = DropOldestBuffer(max_pending)
        self.signal = _Signal()
        self.closed = False

    def _put_many(self, events: list[GatewayEvent]) -> int:
        dropped = self.buffer.extend(events)
        self.signal.set()
        return dropped

    async def run(self) -> None:
        items, handler = self.buffer.items, self.handler
        while True:
            while not items:
                if self.closed:
                    return
                await self.signal.wait()
            event = items.popleft()
            try:
                result = handler(event)
                # A plain function returns None: no awaitable check per event for it;
                # a coroutine function's coroutine is known by its class (a fraction
                # of isawaitable's cost), anything else is asked the long way.
                if result is not None and (
                    result.__class__ is CoroutineType or inspect.isawaitable(result)
                ):
                    await result
            except Exception as exc:
                self.emitter._handler_failed(handler, event, exc)


class Emitter:
    """Handler registry plus delivery: what ``Shard.on`` and ``Cluster.on`` use.

    Args:
        logger: where handler failures and overflows are logged.
        max_pending: per-handler buffer size.
        on_drop: called with the number of events dropped (for shard counters).

    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        *,
        max_pending: int = DEFAULT_MAX_BUFFER,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._log = logger
        self._registry: HandlerRegistry[Handler] = HandlerRegistry()
        self._workers: dict[Handler, _Worker] = {}
        self._streams: set[EventStream] = set()
        self._task_group: TaskGroup | None = None
        self._max_pending = max_pending
        self._on_drop = on_drop
        self._warned = False
        # Set while nothing can feed new streams (see end_streams): (error,).
        self._ended: tuple[BaseException | None] | None = None
        #: Events dropped across this emitter's consumers.
        self.dropped = 0
        #: Emitters that also receive everything (a cluster's, for its shards); changed
        #: only through add_parent and remove_parent, which void cached ``wants`` answers.
        self.parents: tuple[Emitter, ...] = ()
        # wants() answers, valid while _generation is _wants_generation.
        self._wants: dict[str, bool] = {}
        self._wants_generation = -1
        # Each name's consumers (see _consumers), valid while _generation is
        # _routes_generation: worked out once, not once per batch (about ten
        # names in every batch of 64).
        self._routes: dict[str, list[_Worker | EventStream[Any]]] = {}
        self._routes_generation = -1

    # -- registration ------------------------------------------------------------

    @overload
    def on(self, name: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, name: str, handler: _H) -> _H: ...

    def on(self, name: str, handler: _H | None = None) -> _H | Callable[[_H], _H]:
        """Register ``handler`` for ``name`` (``"*"``: every event); also a decorator."""
        if handler is None:
            return lambda func: self.on(name, func)
        self._registry.on(name, handler)
        _changed()
        return handler

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._registry.off(name, handler)
        _changed()

    def add_parent(self, parent: Emitter) -> None:
        """Hand ``parent`` everything this emitter emits, from now on."""
        self.parents = (*self.parents, parent)
        _changed()

    def remove_parent(self, parent: Emitter) -> None:
        """Stop handing ``parent`` what this emitter emits."""
        parents = list(self.parents)
        parents.remove(parent)
        self.parents = tuple(parents)
        _changed()

    def wants(self, name: str) -> bool:
        """Whether any handler or stream (here or in a parent) would get ``name``.

        Answered from a cache (a shard asks with every heartbeat and ACK, and every
        read), which any change of handlers, streams or parents anywhere voids.
        """
        if self._wants_generation != _generation:
            self._wants.clear()
            self._wants_generation = _generation
        answer = self._wants.get(name)
        if answer is None:
            answer = self._wants[name] = self._find_wanted(name)
        return answer

    def _find_wanted(self, name: str) -> bool:
        if self._registry.has(name):
            return True
        if any(name_matches(s._names, name) for s in self._streams):
            return True
        return any(parent.wants(name) for parent in self.parents)

    def events(
        self, *names: str, max_buffer: int = DEFAULT_MAX_BUFFER, until_closed: bool = False
    ) -> EventStream:
        """Return a new stream of events (only ``names`` if given).

        ``until_closed``: only :meth:`close` ends it, not :meth:`end_streams`.
        """
        stream = EventStream(self, frozenset(names), max_buffer)
        stream._until_closed = until_closed
        if self._ended is not None and not until_closed:
            stream._close(*self._ended)
        else:
            self._streams.add(stream)
            _changed()
        return stream

    def end_streams(self, error: BaseException | None = None) -> None:
        """End every stream, and every new one until :meth:`reopen` (nothing can feed them).

        With ``error``, each stream raises it once its buffered events are out.
        Handlers keep running.
        """
        self._ended = (error,)
        ending = [stream for stream in self._streams if not stream._until_closed]
        for stream in ending:
            stream._close(error)
        self._streams.difference_update(ending)
        _changed()

    def reopen(self) -> None:
        """Let new streams wait for events again (something can feed them)."""
        self._ended = None

    # -- delivery ----------------------------------------------------------------

    def attach(self, task_group: TaskGroup) -> None:
        """Run handler workers in ``task_group`` from now on."""
        self._task_group = task_group
        for worker in self._workers.values():
            worker.closed = False

    def emit(self, event: GatewayEvent) -> None:
        """Deliver ``event`` to every matching handler and stream; never waits."""
        self.emit_batch([event])

    def emit_batch(self, events: list[GatewayEvent]) -> None:
        """Deliver ``events``, in order, to every matching handler and stream; never waits.

        Each consumer gets its share of the batch at once, with one wake-up: what
        a shard's reader uses for the dispatches it decodes between two yields.
        """
        if self._routes_generation != _generation:
            # Read before any route is worked out: a change meanwhile voids them.
            self._routes_generation = _generation
            self._routes.clear()
        known = self._routes
        shares: dict[_Worker | EventStream[Any], list[GatewayEvent]] = {}
        # Where each name goes in this batch: its consumers' shares.
        routes: dict[str, list[Callable[[GatewayEvent], None]]] = {}
        for event in events:
            route = routes.get(event.name)
            if route is None:
                consumers = known.get(event.name)
                if consumers is None:
                    consumers = self._consumers(event.name)
                    if self._task_group is not None:  # else handlers were left out
                        known[event.name] = consumers
                route = routes[event.name] = [shares.setdefault(c, []).append for c in consumers]
            for append in route:
                append(event)
        dropped = 0
        for consumer, share in shares.items():
            dropped += consumer._put_many(share)
        if dropped:
            self._dropped(dropped)
        for parent in self.parents:
            parent.emit_batch(events)

    def _consumers(self, name: str) -> list[_Worker | EventStream[Any]]:
        # The handlers' workers (started on first use) and the streams taking ``name``.
        consumers: list[_Worker | EventStream[Any]] = []
        for handler in self._registry.handlers_for(name):
            worker = self._workers.get(handler)
            if worker is None:
                if self._task_group is None:
                    continue  # nothing runs handlers before the shard starts
                worker = self._workers[handler] = _Worker(self, handler, self._max_pending)
                self._task_group.start_soon(worker.run)
            consumers.append(worker)
        consumers += [s for s in self._streams if not s._names or name_matches(s._names, name)]
        return consumers

    def close(self) -> None:
        """Finish: workers stop once their buffers are drained, streams end."""
        for worker in self._workers.values():
            worker.closed = True
            worker.signal.set()
        self._workers.clear()
        self._task_group = None
        for stream in self._streams:
            stream._close()
        self._streams.clear()
        _changed()

    def _dropped(self, count: int) -> None:
        self.dropped += count
        if self._on_drop is not None:
            self._on_drop(count)
        if not self._warned:
            self._warned = True
            self._log.warning(
                "a consumer fell behind: dropping its oldest events (%d so far)", self.dropped
            )

    def _handler_failed(self, handler: Any, event: GatewayEvent, exc: Exception) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        self._log.error("handler %s failed on %s", name, event.name, exc_info=exc)
        if event.name != ERROR:  # an error handler that fails must not loop
            self.emit(GatewayEvent(ERROR, event.shard_id, exc, None, event.shard))
