"""Event delivery for shards and clusters: handler threads and ``events()`` iterators.

The blocking twin of ``gateway_anyio._events``, with the same rules. A shard's I/O
thread calls :meth:`Emitter.emit`, which never waits for a consumer: a reader that
waited would leave heartbeat ACKs unread and the connection would be declared a
zombie. Every consumer has a bounded buffer instead:

* each registered handler gets its own worker thread, fed by a buffer of
  ``max_pending`` events, so it sees events in order, and a slow handler delays
  only itself: never the shard, never the other handlers;
* each ``events()`` iterator has its own buffer of ``max_buffer`` events.

When a buffer is full the **oldest** event is dropped and counted
(``Emitter.dropped``, ``EventStream.dropped``, the shard's
``counters.dropped_events``), and a warning is logged the first time.

Why a thread per handler rather than one dispatcher thread: that is what makes a
slow handler harmless to the others, as in the anyio driver (one task per handler).
Bots register a handful of handlers, so the threads are few; they are started on a
handler's first event and joined by :meth:`Emitter.close`.

An emitter made with ``inline=True`` calls its handlers on the emitting thread
instead (``_inline``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from typing_extensions import TypeVar as DefaultTypeVar

from gateway_proto.driver_support import (
    ERROR,
    HAND_OVER_EVERY,
    DropOldestBuffer,
    GatewayEvent,
    HandlerRegistry,
    name_matches,
)

from ._inline import INLINE_CALLS, in_inline_handler

__all__ = ["DEFAULT_MAX_BUFFER", "Emitter", "EventStream", "Handler"]

#: A handler: a function taking the event (its return value is ignored).
Handler = Callable[[GatewayEvent], object]
_H = TypeVar("_H", bound=Handler)

# The type of a stream's events: what on()/events() typing says it carries (see _typed.py).
_E = DefaultTypeVar("_E", bound=GatewayEvent, default=GatewayEvent)

#: Default per-consumer buffer (events) before the oldest is dropped.
DEFAULT_MAX_BUFFER = 10_000

#: Events a consumer's thread takes out of its buffer at a time (one lock for all):
#: the most a share can hold, which keeps the buffer's bound close to exact.
SHARE = HAND_OVER_EVERY

#: Seconds :meth:`Emitter.close` waits for each handler thread to finish its backlog.
HANDLER_JOIN_TIMEOUT = 10.0


class _Inbox(Generic[_E]):
    """One consumer's bounded buffer: filled by producers, emptied by its reader a share at a time.

    Why shares: a reader that took the lock and made a method call per event spent
    more time on that than on the handler; it takes what is there (up to
    :data:`SHARE`) under one lock and works through it without one. Events in a
    share are out of the buffer, so they are never dropped: a consumer holds at
    most ``max_buffer`` waiting events plus the share it is working through.

    Why ``_spent``: the reader hands each share back when it is done with it, and
    the next producer to deliver frees it. Freeing a decoded payload walks every
    object in it; on the I/O thread that decoded it, they are still in that core's
    cache, while on the handler's thread each one had to be fetched from the other
    core (it cost the handler thread about twice the handler's own work). So a
    consumer keeps its last share alive until the next delivery to it.
    """

    def __init__(self, max_buffer: int) -> None:
        self._buffer: DropOldestBuffer[_E] = DropOldestBuffer(max_buffer)
        # The hot paths take the lock itself: ``with`` on a Lock is C, on a
        # Condition two Python calls.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sleepers = 0  # readers waiting on _cond: nobody to notify when 0
        self._closed = False
        self._spent: deque[list[_E]] = deque()

    def _put_many(self, events: list[_E]) -> int:
        # Events the emitter routed here (names already matched): one lock and at
        # most one wake-up for all, and never one for a reader that is busy anyway.
        self._spent.clear()  # outside the lock: freeing a share takes a while
        with self._lock:
            dropped = self._buffer.extend(events)
            if self._sleepers:
                self._cond.notify()
        return dropped

    def _take(self, timeout: float | None = None, *, wait: bool = True) -> list[_E]:
        """Return the oldest waiting events (up to :data:`SHARE`); wait for some.

        Returns ``[]`` once closed with nothing left, or (``wait=False``, or
        after ``timeout``) if nothing came.
        """
        items = self._buffer.items
        with self._lock:
            while not items:
                if self._closed or not wait:
                    return []
                self._sleepers += 1
                try:
                    woken = self._cond.wait(timeout)
                finally:
                    self._sleepers -= 1
                if not woken:
                    wait = False  # timed out: one more look, then give up
            if len(items) <= SHARE:
                share = list(items)
                items.clear()
            else:
                popleft = items.popleft
                share = [popleft() for _ in range(SHARE)]
        return share


class EventStream(_Inbox[_E]):
    """An iterator over events (``for event in shard.events()``).

    Iteration ends when the shard or cluster stops, or when no shard can feed it
    any more; on a cluster whose shards all stopped and one of them on an error
    (a fatal close such as 4014), the iteration raises that error after the events
    it holds (:meth:`get` returns ``None`` then). Use it as a context manager (or
    call :meth:`close`) to stop receiving before that.

    Attributes:
        dropped: events dropped because this consumer fell behind.

    """

    def __init__(self, emitter: Emitter, names: frozenset[str], max_buffer: int) -> None:
        super().__init__(max_buffer)
        self._emitter = emitter
        self._names = names
        self._error: BaseException | None = None
        self._until_closed = False  # see Emitter.events
        # The share being handed out, and where in it: next() takes no lock.
        self._share: list[_E] = []
        self._rest: Iterator[_E] = iter(self._share)

    @property
    def dropped(self) -> int:
        """Events dropped because this consumer fell behind."""
        return self._buffer.dropped

    def _close(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def __iter__(self) -> Iterator[_E]:
        return self

    def __next__(self) -> _E:
        for event in self._rest:  # the hot path: the rest of the current share
            return event
        if self._next_share(None, wait=True):
            return next(self._rest)
        error, self._error = self._error, None
        if error is not None:
            raise error  # once; the next call ends the iteration
        raise StopIteration

    def _next_share(self, timeout: float | None, *, wait: bool) -> bool:
        # The current share is used up: hand it back (see _Inbox) and take the next.
        if self._share:
            self._spent.append(self._share)
            self._share = []  # not kept alive here while _take waits
        share = self._share = self._take(timeout, wait=wait)
        self._rest = iter(share)
        return bool(share)

    def get(self, timeout: float | None = None) -> _E | None:
        """Return the next event, or ``None`` if none came within ``timeout`` or it ended."""
        for event in self._rest:
            return event
        if self._next_share(timeout, wait=timeout is None or timeout > 0):
            return next(self._rest)
        return None

    def close(self) -> None:
        """Stop receiving events (buffered ones are discarded)."""
        self._emitter._discard(self)
        with self._lock:
            self._closed = True
            self._buffer.items.clear()
            self._cond.notify_all()
        self._share = []
        self._rest = iter(self._share)

    def __enter__(self) -> EventStream[_E]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Worker(_Inbox[GatewayEvent]):
    """Runs one handler in its own thread over its own bounded, ordered buffer."""

    def __init__(self, emitter: Emitter, handler: Handler, max_pending: int) -> None:
        super().__init__(max_pending)
        self.emitter = emitter
        self.handler = handler
        name = getattr(handler, "__qualname__", "handler")
        self.thread = threading.Thread(
            target=self.run, name=f"{emitter.thread_prefix}-handler-{name}", daemon=True
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cond.notify()

    def run(self) -> None:
        take, handler, spent = self._take, self.handler, self._spent
        while True:
            share = take()
            if not share:
                return
            for event in share:
                try:
                    handler(event)
                except Exception as exc:
                    self.emitter._handler_failed(handler, event, exc)
            spent.append(share)
            del share, event  # the spent share's only references are in _spent now


#: A consumer with a buffer of its own, filled a batch's share at a time.
_Buffered = _Worker | EventStream[Any]
#: A name's route: the handlers to call inline, then the buffered consumers.
_Route = tuple[list[Handler], list[_Buffered]]


class Emitter:
    """Handler registry plus delivery: what ``Shard.on`` and ``Cluster.on`` use.

    Thread-safe: handlers may be registered from any thread, at any time.

    Args:
        logger: where handler failures and overflows are logged.
        max_pending: per-handler buffer size.
        on_drop: called with the number of events dropped (for shard counters).
        thread_prefix: prefix of the handler threads' names.
        inline: call handlers on the emitting thread instead of their own threads.

    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        *,
        max_pending: int = DEFAULT_MAX_BUFFER,
        on_drop: Callable[[int], None] | None = None,
        thread_prefix: str = "gateway",
        inline: bool = False,
    ) -> None:
        self._log = logger
        self._lock = threading.RLock()
        self._registry: HandlerRegistry[Handler] = HandlerRegistry()
        # Where each name goes (see _route): worked out once, not once per batch,
        # and forgotten (a new dict) whenever a handler, a stream or the run changes.
        self._routes: dict[str, _Route] = {}
        self._workers: dict[Handler, _Worker] = {}
        #: Whether handlers run on the emitting thread (see the module's docstring).
        self.inline = inline
        self._streams: set[EventStream] = set()
        self._running = False
        self._max_pending = max_pending
        self._on_drop = on_drop
        self._warned = False
        # Set while nothing can feed new streams (see end_streams): (error,).
        self._ended: tuple[BaseException | None] | None = None
        self.thread_prefix = thread_prefix
        #: Events dropped across this emitter's consumers.
        self.dropped = 0
        #: Emitters that also receive everything (a cluster's, for its shards).
        self.parents: list[Emitter] = []

    # -- registration ------------------------------------------------------------

    @overload
    def on(self, name: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, name: str, handler: _H) -> _H: ...

    def on(self, name: str, handler: _H | None = None) -> _H | Callable[[_H], _H]:
        """Register ``handler`` for ``name`` (``"*"``: every event); also a decorator."""
        if handler is None:
            return lambda func: self.on(name, func)
        with self._lock:
            self._registry.on(name, handler)
            self._routes = {}
        return handler

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        with self._lock:
            self._registry.off(name, handler)
            self._routes = {}

    def events(
        self, *names: str, max_buffer: int = DEFAULT_MAX_BUFFER, until_closed: bool = False
    ) -> EventStream:
        """Return a new iterator of events (only ``names`` if given).

        ``until_closed``: only :meth:`close` ends it, not a sticky :meth:`end_streams`.
        """
        stream = EventStream(self, frozenset(names), max_buffer)
        stream._until_closed = until_closed
        with self._lock:
            ended = None if until_closed else self._ended
            if ended is None:
                self._streams.add(stream)
                self._routes = {}
        if ended is not None:
            stream._close(*ended)
        return stream

    def is_handler_thread(self) -> bool:
        """Whether the calling thread runs one of this emitter's handlers (or any inline one)."""
        if in_inline_handler():
            return True
        current = threading.current_thread()
        with self._lock:
            return any(worker.thread is current for worker in self._workers.values())

    def _discard(self, stream: EventStream[Any]) -> None:
        with self._lock:
            self._streams.discard(stream)
            self._routes = {}

    # -- delivery ----------------------------------------------------------------

    def start(self) -> None:
        """Run handlers from now on (events emitted before are not handled)."""
        with self._lock:
            self._running = True
            self._routes = {}

    def emit(self, event: GatewayEvent) -> None:
        """Deliver ``event`` to every matching handler and stream; never waits."""
        self.emit_batch([event])

    def emit_batch(self, events: list[GatewayEvent]) -> None:
        """Deliver ``events``, in order, to every matching handler and stream; never waits.

        Each buffered consumer gets its share of the batch with one lock and one
        wake-up, however many events it holds: what a shard's I/O thread uses for
        all the dispatches one read produced. Inline handlers are called as the
        batch is walked, event by event.
        """
        with self._lock:
            known = self._routes
            parents = list(self.parents) if self.parents else None
        shares: dict[_Buffered, list[GatewayEvent]] = {}
        if self.inline:
            with INLINE_CALLS:
                self._walk(events, known, shares)
        else:
            self._walk(events, known, shares)
        dropped = 0
        for consumer, share in shares.items():
            dropped += consumer._put_many(share)
        if dropped:
            self._dropped(dropped)
        if parents is not None:
            for parent in parents:
                parent.emit_batch(events)

    def _walk(
        self,
        events: list[GatewayEvent],
        known: dict[str, _Route],
        shares: dict[_Buffered, list[GatewayEvent]],
    ) -> None:
        # Call the inline handlers and fill the buffered consumers' shares. What
        # each name in the batch does, worked out once per batch: its inline
        # handlers, then an append to each of its consumers' shares (which never raises).
        calls: dict[str, list[Callable[[GatewayEvent], object]]] = {}
        failed = self._handler_failed
        for event in events:
            route = calls.get(event.name)
            if route is None:
                handlers, buffered = known.get(event.name) or self._route(event.name)
                route = calls[event.name] = (
                    handlers + [shares.setdefault(consumer, []).append for consumer in buffered]
                    if buffered
                    else handlers
                )
            for call in route:
                try:
                    call(event)
                except Exception as exc:
                    failed(call, event, exc)

    def _route(self, name: str) -> _Route:
        # Where ``name`` goes: the handlers (inline ones, or the workers that run
        # them, started on first use) and the streams that take it. Remembered
        # until something changes (every change replaces _routes).
        with self._lock:
            handlers: list[Handler] = []
            buffered: list[_Buffered] = []
            if self._running:
                for handler in self._registry.handlers_for(name):
                    if self.inline:
                        handlers.append(handler)
                        continue
                    worker = self._workers.get(handler)
                    if worker is None:
                        worker = self._workers[handler] = _Worker(
                            self, handler, self._max_pending
                        )
                        worker.thread.start()
                    buffered.append(worker)
            buffered += [stream for stream in self._streams if name_matches(stream._names, name)]
            route = self._routes[name] = (handlers, buffered)
            return route

    def wants(self, name: str) -> bool:
        """Whether any handler or stream (here or in a parent) would get ``name``."""
        with self._lock:
            if self._registry.has(name) or any(
                name_matches(stream._names, name) for stream in self._streams
            ):
                return True
            parents = list(self.parents)
        return any(parent.wants(name) for parent in parents)

    def end_streams(self, error: BaseException | None = None, *, sticky: bool = False) -> None:
        """End every ``events()`` iterator (after what they hold); never waits.

        With ``error``, each iterator raises it after its events. With ``sticky``,
        iterators made later end at once too, until :meth:`reopen` (a cluster
        whose shards all stopped: nothing can feed them).
        """
        with self._lock:
            if sticky:
                self._ended = (error,)
                streams = [stream for stream in self._streams if not stream._until_closed]
                self._streams.difference_update(streams)
            else:
                streams = list(self._streams)
                self._streams.clear()
            self._routes = {}
        for stream in streams:
            stream._close(error)

    def reopen(self) -> None:
        """Let new iterators wait for events again (something can feed them)."""
        with self._lock:
            self._ended = None

    def close(self, timeout: float = HANDLER_JOIN_TIMEOUT) -> None:
        """Finish: handler threads drain their buffers and are joined; streams end.

        A handler still busy after ``timeout`` seconds is left running (its thread
        is a daemon) and logged; calling ``close`` from a handler does not wait for
        that handler's own thread.
        """
        with self._lock:
            self._running = False
            workers = list(self._workers.values())
            self._workers.clear()
            self._routes = {}
        self.end_streams()
        for worker in workers:
            worker.close()
        current = threading.current_thread()
        for worker in workers:
            if worker.thread is current:
                continue
            worker.thread.join(timeout)
            if worker.thread.is_alive():
                self._log.warning(
                    "handler %s still running after %.0f s; not waiting for it",
                    getattr(worker.handler, "__qualname__", worker.handler),
                    timeout,
                )

    def _dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count
            first = not self._warned
            self._warned = True
        if self._on_drop is not None:
            self._on_drop(count)
        if first:
            self._log.warning(
                "a consumer fell behind: dropping its oldest events (%d so far)", self.dropped
            )

    def _handler_failed(self, handler: Any, event: GatewayEvent, exc: Exception) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        self._log.error("handler %s failed on %s", name, event.name, exc_info=exc)
        if event.name != ERROR:  # an error handler that fails must not loop
            self.emit(GatewayEvent(ERROR, event.shard_id, exc, None, event.shard))
