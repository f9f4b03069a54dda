"""The mailbox: how other threads reach a shard's I/O thread.

Only the I/O thread touches the socket and the core's ``GatewayConnection``, so
``send``, ``disconnect``, ``reconnect`` and the identify helper never call them:
they post a message here, and the post writes a byte to the
:class:`~gateway_sync._transport.Waker` that the I/O thread's ``select`` watches,
so the message is read within one wake-up rather than at the next deadline. What
they read of the shard (state, session, latency) comes the other way, from the
snapshot the I/O thread publishes (``_snapshot``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
from collections.abc import Iterator

from gateway_proto.commands import Command
from gateway_proto.connection import GatewayConnection

from ._transport import Waker

__all__ = ["CloseRequest", "IdentifyPermit", "Mailbox", "Message", "SendRequest"]


@dataclasses.dataclass(slots=True)
class SendRequest:
    """Write ``command``; ``done`` says whether the connection accepted it.

    ``written`` (a waiting send's): resolved once the connection wrote the command,
    or failed with ``CommandNotSentError`` if it never will.
    """

    command: Command
    done: concurrent.futures.Future[None]
    written: concurrent.futures.Future[None] | None = None


@dataclasses.dataclass(slots=True)
class CloseRequest:
    """Close the connection with ``code``; ``restart``: connect again at once."""

    code: int
    restart: bool


@dataclasses.dataclass(slots=True)
class IdentifyPermit:
    """The identify limiter let ``connection`` send IDENTIFY."""

    # Which connection asked: a permit that arrives after it ended is moot.
    connection: GatewayConnection


Message = SendRequest | CloseRequest | IdentifyPermit


class Mailbox:
    """A thread-safe queue of :data:`Message` s that wakes the I/O thread on every post."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        #: The wake-up of the current run (a new one per ``start()``; ``None`` before).
        self.waker: Waker | None = None

    def post(self, message: Message) -> None:
        """Queue ``message`` and wake the I/O thread; from any thread."""
        self._queue.put(message)
        waker = self.waker
        if waker is not None:
            waker.wake()

    def drain(self) -> Iterator[Message]:
        """Yield the queued messages, oldest first, until none is left."""
        # Only the I/O thread takes messages, so one that empty() saw stays there;
        # asking first spares every wake-up without mail a raised queue.Empty.
        messages = self._queue
        while not messages.empty():
            yield messages.get_nowait()
