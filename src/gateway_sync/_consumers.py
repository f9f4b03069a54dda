"""The consumers of a ``gateway_sync`` emitter: bounded buffers, each emptied by one reader.

* :class:`EventStream`: an ``events()`` iterator, read by the caller's thread;
* :class:`Worker`: one handler's thread.

Both fill as :class:`Inbox`: the emitter (``_events``) hands each one its share of
a batch with one lock and at most one wake-up, and its reader takes up to
:data:`SHARE` events at a time under one lock. Neither knows the emitter: a
stream is given the emitter's ``discard``, a worker its ``failed``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic

from typing_extensions import TypeVar as DefaultTypeVar

from gateway_proto.driver_support import HAND_OVER_EVERY, DropOldestBuffer, GatewayEvent

__all__ = ["SHARE", "EventStream", "Failed", "Handler", "Inbox", "Worker"]

#: A handler: a function taking the event (its return value is ignored).
Handler = Callable[[GatewayEvent], object]
#: What a worker calls when its handler raises: ``failed(handler, event, exc)``.
Failed = Callable[[Handler, GatewayEvent, Exception], None]

# The type of a stream's events: what on()/events() typing says it carries (see _typed.py).
_E = DefaultTypeVar("_E", bound=GatewayEvent, default=GatewayEvent)

#: Events a consumer's thread takes out of its buffer at a time (one lock for all):
#: the most a share can hold, which keeps the buffer's bound close to exact.
SHARE = HAND_OVER_EVERY


class Inbox(Generic[_E]):
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


class EventStream(Inbox[_E]):
    """An iterator over events (``for event in shard.events()``).

    Iteration ends when the shard or cluster stops, or when no shard can feed it
    any more; on a cluster whose shards all stopped and one of them on an error
    (a fatal close such as 4014), the iteration raises that error after the events
    it holds (:meth:`get` returns ``None`` then). Use it as a context manager (or
    call :meth:`close`) to stop receiving before that.

    Attributes:
        dropped: events dropped because this consumer fell behind.

    """

    def __init__(
        self,
        discard: Callable[[EventStream[Any]], None],
        names: frozenset[str],
        max_buffer: int,
    ) -> None:
        super().__init__(max_buffer)
        self._discard = discard  # the emitter's: it stops routing events here
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
        # The current share is used up: hand it back (see Inbox) and take the next.
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
        self._discard(self)
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


class Worker(Inbox[GatewayEvent]):
    """Runs one handler in its own thread over its own bounded, ordered buffer.

    ``failed(handler, event, exc)`` is called (on this thread) when the handler raises.
    """

    def __init__(
        self, handler: Handler, max_pending: int, *, thread_prefix: str, failed: Failed
    ) -> None:
        super().__init__(max_pending)
        self.handler = handler
        self.failed = failed
        name = getattr(handler, "__qualname__", "handler")
        self.thread = threading.Thread(
            target=self.run, name=f"{thread_prefix}-handler-{name}", daemon=True
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cond.notify()

    def run(self) -> None:
        take, handler, spent, failed = self._take, self.handler, self._spent, self.failed
        while True:
            share = take()
            if not share:
                return
            for event in share:
                try:
                    handler(event)
                except Exception as exc:
                    failed(handler, event, exc)
            spent.append(share)
            del share, event  # the spent share's only references are in _spent now
