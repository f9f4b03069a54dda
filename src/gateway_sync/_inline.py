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

from gateway_proto.errors import LocalProtocolError

__all__ = ["INLINE_CALLS", "in_inline_handler", "refuse_to_wait"]

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


class _InlineCalls:
    """``with INLINE_CALLS:`` around inline handler calls (once per batch, not per call)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _calls.depth = getattr(_calls, "depth", 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        _calls.depth -= 1


#: Marks the calling thread as running inline handlers while it is entered.
INLINE_CALLS = _InlineCalls()
