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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from typing_extensions import TypeVar as DefaultTypeVar

from gateway_proto.driver_support import (
    ERROR,
    DropOldestBuffer,
    GatewayEvent,
    HandlerRegistry,
    name_matches,
)

__all__ = ["DEFAULT_MAX_BUFFER", "Emitter", "EventStream", "Handler"]

#: A handler: a function taking the event (its return value is ignored).
Handler = Callable[[GatewayEvent], object]
_H = TypeVar("_H", bound=Handler)

# The type of a stream's events: what on()/events() typing says it carries (see _typed.py).
_E = DefaultTypeVar("_E", bound=GatewayEvent, default=GatewayEvent)

#: Default per-consumer buffer (events) before the oldest is dropped.
DEFAULT_MAX_BUFFER = 10_000

#: Seconds :meth:`Emitter.close` waits for each handler thread to finish its backlog.
HANDLER_JOIN_TIMEOUT = 10.0


class EventStream(Generic[_E]):
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
        self._emitter = emitter
        self._names = names
        self._buffer: DropOldestBuffer[_E] = DropOldestBuffer(max_buffer)
        # The hot paths take the lock itself: ``with`` on a Lock is C, on a
        # Condition two Python calls, and they run once per event.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closed = False
        self._error: BaseException | None = None
        self._until_closed = False  # see Emitter.events

    @property
    def dropped(self) -> int:
        """Events dropped because this consumer fell behind."""
        return self._buffer.dropped

    def _put_many(self, events: list[_E]) -> int:
        # Events the emitter routed here (names already matched): one wake-up for all.
        with self._lock:
            dropped = self._buffer.extend(events)
            self._cond.notify()
        return dropped

    def _close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def __iter__(self) -> Iterator[_E]:
        return self

    def __next__(self) -> _E:
        with self._lock:
            while True:
                try:
                    return self._buffer.popleft()
                except IndexError:  # empty: rare next to the events of a batch
                    pass
                if self._closed:
                    error, self._error = self._error, None
                    if error is not None:
                        raise error  # once; the next call ends the iteration
                    raise StopIteration
                self._cond.wait()

    def get(self, timeout: float | None = None) -> _E | None:
        """Return the next event, or ``None`` if none came within ``timeout`` or it ended."""
        with self._cond:
            if not self._buffer and not self._closed:
                self._cond.wait(timeout)
            return self._buffer.popleft() if self._buffer else None

    def close(self) -> None:
        """Stop receiving events (buffered ones are discarded)."""
        self._emitter._discard(self)
        with self._cond:
            self._closed = True
            while self._buffer:
                self._buffer.popleft()
            self._cond.notify_all()

    def __enter__(self) -> EventStream[_E]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Worker:
    """Runs one handler in its own thread over its own bounded, ordered buffer."""

    def __init__(self, emitter: Emitter, handler: Handler, max_pending: int) -> None:
        self.emitter = emitter
        self.handler = handler
        self.buffer: DropOldestBuffer[GatewayEvent] = DropOldestBuffer(max_pending)
        self.lock = threading.Lock()  # taken directly on the hot paths (see EventStream)
        self.cond = threading.Condition(self.lock)
        self.closed = False
        name = getattr(handler, "__qualname__", "handler")
        self.thread = threading.Thread(
            target=self.run, name=f"{emitter.thread_prefix}-handler-{name}", daemon=True
        )

    def _put_many(self, events: list[GatewayEvent]) -> int:
        # One lock and one wake-up for the whole batch: a handler thread woken per
        # event would take the GIL from the I/O thread once per event.
        with self.lock:
            dropped = self.buffer.extend(events)
            self.cond.notify()
        return dropped

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    def run(self) -> None:
        lock, cond, pop, handler = self.lock, self.cond, self.buffer.popleft, self.handler
        while True:
            with lock:
                while True:
                    try:
                        event = pop()
                        break
                    except IndexError:  # empty: wait once per batch, not per event
                        pass
                    if self.closed:
                        return
                    cond.wait()
            try:
                handler(event)
            except Exception as exc:
                self.emitter._handler_failed(handler, event, exc)


_Consumer = _Worker | EventStream[Any]


class Emitter:
    """Handler registry plus delivery: what ``Shard.on`` and ``Cluster.on`` use.

    Thread-safe: handlers may be registered from any thread, at any time.

    Args:
        logger: where handler failures and overflows are logged.
        max_pending: per-handler buffer size.
        on_drop: called with the number of events dropped (for shard counters).
        thread_prefix: prefix of the handler threads' names.

    """

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        *,
        max_pending: int = DEFAULT_MAX_BUFFER,
        on_drop: Callable[[int], None] | None = None,
        thread_prefix: str = "gateway",
    ) -> None:
        self._log = logger
        self._lock = threading.RLock()
        self._registry: HandlerRegistry[Handler] = HandlerRegistry()
        self._workers: dict[Handler, _Worker] = {}
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
        return handler

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        with self._lock:
            self._registry.off(name, handler)

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
        if ended is not None:
            stream._close(*ended)
        return stream

    def is_handler_thread(self) -> bool:
        """Whether the calling thread runs one of this emitter's handlers."""
        current = threading.current_thread()
        with self._lock:
            return any(worker.thread is current for worker in self._workers.values())

    def _discard(self, stream: EventStream[Any]) -> None:
        with self._lock:
            self._streams.discard(stream)

    # -- delivery ----------------------------------------------------------------

    def start(self) -> None:
        """Run handlers from now on (events emitted before are not handled)."""
        with self._lock:
            self._running = True

    def emit(self, event: GatewayEvent) -> None:
        """Deliver ``event`` to every matching handler and stream; never waits."""
        self.emit_batch([event])

    def emit_batch(self, events: list[GatewayEvent]) -> None:
        """Deliver ``events``, in order, to every matching handler and stream; never waits.

        Each consumer gets its share of the batch with one lock and one wake-up,
        however many events it holds: what a shard's I/O thread uses for all the
        dispatches one read produced.
        """
        shares: dict[_Consumer, list[GatewayEvent]] = {}
        with self._lock:
            # Where each name goes, worked out once per name per batch.
            routes: dict[str, list[Callable[[GatewayEvent], None]]] = {}
            for event in events:
                route = routes.get(event.name)
                if route is None:
                    route = routes[event.name] = [
                        shares.setdefault(consumer, []).append
                        for consumer in self._consumers(event.name)
                    ]
                for append in route:
                    append(event)
            parents = list(self.parents)
        dropped = 0
        for consumer, share in shares.items():
            dropped += consumer._put_many(share)
        if dropped:
            self._dropped(dropped)
        for parent in parents:
            parent.emit_batch(events)

    def _consumers(self, name: str) -> list[_Consumer]:
        # Under self._lock: the handlers' workers (started on first use) and the
        # streams that take events named ``name``.
        consumers: list[_Consumer] = []
        if self._running:
            for handler in self._registry.handlers_for(name):
                worker = self._workers.get(handler)
                if worker is None:
                    worker = self._workers[handler] = _Worker(self, handler, self._max_pending)
                    worker.thread.start()
                consumers.append(worker)
        consumers += [stream for stream in self._streams if name_matches(stream._names, name)]
        return consumers

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
