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

_NEVER = float("inf")


def _on_time(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class TimerWake:
    """The timer's sleep, and how other tasks cut it short: only when it has something new to do.

    :meth:`set` is called after every input to the core (a read, a command, a
    close); it ends the sleep only if ``next_wake()`` is sooner than the deadline
    armed (the connection ended, or a deadline came sooner). A heartbeat ACK or a
    dispatch moves no deadline, so an idle shard's timer wakes once per heartbeat,
    and a busy shard's reads cost the timer nothing. A deadline that moved later
    (HELLO before its timeout, READY before the step timer's end) moves the timer
    on asyncio, so it does not wake for nothing; on trio it wakes once and sleeps
    again.

    Args:
        next_wake: when the timer must wake next: its earliest deadline (``inf``:
            none; ``-inf``: at once, the connection ended).

    """

    __slots__ = ("_handle", "_next_wake", "_scope", "_waiter", "armed")

    def __init__(self, next_wake: Callable[[], float]) -> None:
        self._next_wake = next_wake
        # What the sleep waits on while it sleeps: a future (asyncio) or a scope.
        self._waiter: asyncio.Future[bool] | None = None
        self._scope: anyio.CancelScope | None = None
        # The asyncio timer that ends the sleep on time (None: none armed).
        self._handle: asyncio.TimerHandle | None = None
        #: When the current (or last) sleep ends by itself (``inf``: never).
        self.armed = _NEVER

    def set(self) -> None:
        """End the sleep if the timer must wake sooner; move it if it may wake later."""
        waiter, scope = self._waiter, self._scope
        if waiter is None and scope is None:
            return  # not sleeping: it looks at the deadlines again before it sleeps
        wake_at = self._next_wake()
        if wake_at < self.armed:
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(False)
            elif scope is not None:
                scope.cancel()
        elif wake_at > self.armed and waiter is not None and not waiter.done():
            self.armed = wake_at
            if self._handle is not None:
                self._handle.cancel()
            self._handle = (
                None if wake_at == _NEVER else waiter.get_loop().call_at(wake_at, _on_time, waiter)
            )

    async def sleep_until(self, deadline: float | None) -> bool:
        """Sleep until ``deadline`` (``None``: until woken); ``True`` if the deadline ended it.

        On asyncio :meth:`set` may move the deadline later meanwhile: ``armed`` is
        the one that ended it.
        """
        self.armed = deadline if deadline is not None else _NEVER
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
        self._handle = None if deadline is None else loop.call_at(deadline, _on_time, waiter)
        try:
            return await waiter
        finally:
            self._waiter = None
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
