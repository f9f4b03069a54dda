"""Bounded event buffers that drop their oldest item rather than block the reader.

Also the base of an async iterator over such a buffer (:class:`BufferedAnext`):
with the C extension built, taking an item that is already buffered runs no Python
code and creates no coroutine, which is most of what ``async for`` costs per item.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from typing_extensions import Self

__all__ = ["BufferedAnext", "DropOldestBuffer", "PyBufferedAnext"]

T = TypeVar("T")


class DropOldestBuffer(Generic[T]):
    """A bounded FIFO that drops its oldest item when full, and counts the drops.

    Why drop instead of blocking: the shard's reader must never wait for a
    consumer, or heartbeat ACKs would go unread and the connection would be
    declared a zombie. A consumer that falls behind loses the oldest events and
    sees the count in ``dropped``.
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        #: The items, oldest first. Consumers may test and ``popleft()`` it directly
        #: (the hot path: no method call of ours per event); add only through
        #: :meth:`append` and :meth:`extend`, which count what the deque's own
        #: ``maxlen`` drops.
        self.items: deque[T] = deque(maxlen=maxlen)
        self.maxlen = maxlen
        self.dropped = 0

    def append(self, item: T) -> bool:
        """Add an item; return ``True`` if the oldest one was dropped to make room."""
        items = self.items
        dropped = len(items) == self.maxlen
        items.append(item)  # drops the oldest itself when full
        if dropped:
            self.dropped += 1
        return dropped

    def extend(self, items: list[T]) -> int:
        """Add ``items`` in order; return how many of the oldest were dropped to make room.

        The same as appending them one by one, in one call: a driver hands a
        consumer everything one read produced at once.
        """
        buffered = self.items
        over = len(buffered) + len(items) - self.maxlen
        buffered.extend(items)  # drops the oldest itself when full
        if over <= 0:
            return 0
        self.dropped += over
        return over

    def popleft(self) -> T:
        """Remove and return the oldest item (``IndexError`` if empty)."""
        return self.items.popleft()

    def __len__(self) -> int:
        return len(self.items)


class PyBufferedAnext(Generic[T]):
    """Base of an async iterator over a deque: what ``_speedups.BufferedAnext`` does in C.

    Subclasses set ``_items`` (the deque, oldest first) and define ``_wait_next``,
    a coroutine that runs when nothing is buffered: it waits for items and returns
    the oldest, or ends the iteration (``StopAsyncIteration``), or raises. An item
    already buffered is returned at once, without ``_wait_next``.

    This is the reference, used when the extension is not built; the C type gives
    the same results, in the same order, but its ``__anext__`` returns a tiny
    coroutine-like awaitable (reused from item to item) that hands a buffered item
    back without running a frame. Like this coroutine, it takes the item when it
    first runs, not when it is made, and runs ``_wait_next`` (forwarding send,
    throw and close to it) if the item went to another consumer meanwhile.
    """

    _items: deque[T]

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        items = self._items
        if items:
            return items.popleft()
        return await self._wait_next()

    async def _wait_next(self) -> T:
        raise NotImplementedError


try:
    from gateway_proto._speedups import BufferedAnext
except ImportError:  # not compiled (see setup.py): the Python reference then
    BufferedAnext = PyBufferedAnext  # type: ignore[misc,assignment]
