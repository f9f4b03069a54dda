"""Event delivery for shards and clusters: handler threads and ``events()`` iterators.

The blocking twin of ``gateway_anyio._events``, with the same rules. A shard's I/O
thread calls :meth:`Emitter.emit`, which never waits for a consumer: a reader that
waited would leave heartbeat ACKs unread and the connection would be declared a
zombie. Every consumer has a bounded buffer instead (``_consumers``):

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
instead (``_inline``). Either way it remembers where each event name goes (its
handlers, their threads, the streams that take it) until one of them changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from gateway_proto.driver_support import ERROR, GatewayEvent, HandlerRegistry, name_matches

from ._consumers import EventStream, Handler, Worker
from ._inline import INLINE_CALLS, in_inline_handler

__all__ = ["DEFAULT_MAX_BUFFER", "Emitter", "EventStream", "Handler"]

_H = TypeVar("_H", bound=Handler)

#: Default per-consumer buffer (events) before the oldest is dropped.
DEFAULT_MAX_BUFFER = 10_000

#: Seconds :meth:`Emitter.close` waits for each handler thread to finish its backlog.
HANDLER_JOIN_TIMEOUT = 10.0


#: A consumer with a buffer of its own, filled a batch's share at a time.
_Buffered = Worker | EventStream[Any]
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
        self._workers: dict[Handler, Worker] = {}
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
        stream = EventStream(self._discard, frozenset(names), max_buffer)
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
                        worker = self._workers[handler] = Worker(
                            handler,
                            self._max_pending,
                            thread_prefix=self.thread_prefix,
                            failed=self._handler_failed,
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
