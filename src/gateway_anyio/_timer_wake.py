"""How a shard's timer sleeps until its next deadline, and how other tasks wake it sooner.

The timer sleeps once per heartbeat on an idle shard, so the sleep itself is most
of what an idle shard costs besides its bytes. On asyncio it is one future and one
``call_at`` (what ``asyncio.sleep`` is underneath), woken early by setting the
future; elsewhere (trio) an anyio sleep inside a cancel scope, woken early by
cancelling the scope. Either way a task-group cancellation still ends the sleep as
usual: on asyncio anyio cancels the task, which cancels the future it waits on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

from ._transport import current_async_library

__all__ = ["TimerWake"]


def _on_time(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class TimerWake:
    """The timer's sleep, and how other tasks cut it short: only when it has something new to do.

    :meth:`set` is called after every input to the core (a read, a command, a
    close); it ends the sleep only if ``needed(armed)`` says so (the connection
    ended, or its earliest deadline is now sooner than the one armed). A heartbeat
    ACK or a dispatch moves no deadline, so an idle shard's timer wakes once per
    heartbeat, and a busy shard's reads cost the timer nothing.

    Args:
        needed: given the deadline the sleep ends at by itself, whether to end it now.

    """

    __slots__ = ("_needed", "_scope", "_waiter", "armed")

    def __init__(self, needed: Callable[[float], bool]) -> None:
        self._needed = needed
        # What the sleep waits on while it sleeps: a future (asyncio) or a scope.
        self._waiter: asyncio.Future[bool] | None = None
        self._scope: anyio.CancelScope | None = None
        #: When the current (or last) sleep ends by itself (``inf``: never).
        self.armed = float("inf")

    def set(self) -> None:
        """End the sleep if ``needed`` says the timer has something new to do."""
        waiter, scope = self._waiter, self._scope
        if waiter is None and scope is None:
            return  # not sleeping: it looks at the deadlines again before it sleeps
        if not self._needed(self.armed):
            return
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(False)
        elif scope is not None:
            scope.cancel()

    async def sleep_until(self, deadline: float | None) -> bool:
        """Sleep until ``deadline`` (``None``: until woken); ``True`` if the deadline ended it."""
        self.armed = deadline if deadline is not None else float("inf")
        if current_async_library() == "asyncio":
            return await self._sleep_asyncio(deadline)
        try:
            # A plain sleep in a scope: on time it is one wake-up, where a cancel
            # scope's own deadline is a cancellation delivered and caught.
            with anyio.CancelScope() as self._scope:
                if deadline is None:
                    await anyio.sleep_forever()
                else:
                    await anyio.sleep_until(deadline)
            return not self._scope.cancelled_caught
        finally:
            self._scope = None

    async def _sleep_asyncio(self, deadline: float | None) -> bool:
        # anyio.current_time() is the loop's time on asyncio: call_at takes it as is.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        handle = None if deadline is None else loop.call_at(deadline, _on_time, waiter)
        try:
            return await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()
