"""Bounded event buffers that drop their oldest item rather than block the reader."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

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
