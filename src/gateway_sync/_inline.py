"""Inline handlers: called on the thread that delivers the event, a shard's I/O thread.

``Shard(..., inline_handlers=True)`` makes its emitter call handlers this way: no
buffer, no handler thread, no handoff, which is the cheapest delivery there is,
for handlers that are quick. While one runs, its shard reads nothing and sends no
heartbeat. So nothing called from one may wait for a shard's I/O thread (its own
would never answer, another's might be waiting for this one): the shard's methods
ask :func:`in_inline_handler` and send without waiting, or refuse to wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gateway_proto.driver_support import GatewayEvent
from gateway_proto.errors import LocalProtocolError

__all__ = ["InlineHandler", "in_inline_handler", "refuse_to_wait"]

# How many inline handler calls the current thread is inside.
_calls = threading.local()


def in_inline_handler() -> bool:
    """Whether the calling thread is running an inline handler."""
    return getattr(_calls, "depth", 0) > 0


def refuse_to_wait(what: str) -> None:
    """Raise ``LocalProtocolError`` if called from an inline handler: ``what`` would wait.

    Raises:
        LocalProtocolError: the calling thread is running an inline handler.

    """
    if in_inline_handler():
        raise LocalProtocolError(
            f"{what} waits for a shard's I/O thread, and an inline handler runs on one "
            "(use send(), or handlers on their own threads)"
        )


class InlineHandler:
    """Calls ``handler`` on the delivering thread; ``failed(handler, event, exc)`` on errors."""

    __slots__ = ("failed", "handler")

    def __init__(
        self,
        handler: Callable[[GatewayEvent], object],
        failed: Callable[[Callable[[GatewayEvent], object], GatewayEvent, Exception], None],
    ) -> None:
        self.handler = handler
        self.failed = failed

    def _put_many(self, events: list[GatewayEvent]) -> int:
        # The consumer protocol of _events (routed events in, dropped count out).
        handler = self.handler
        _calls.depth = getattr(_calls, "depth", 0) + 1
        try:
            for event in events:
                try:
                    handler(event)
                except Exception as exc:
                    self.failed(handler, event, exc)
        finally:
            _calls.depth -= 1
        return 0  # never buffered, never dropped
