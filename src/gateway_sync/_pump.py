"""One connection's I/O loop: a socket, the core's ``GatewayConnection``, their clocks.

Theory of operation: :func:`pump` blocks in one ``select`` over the gateway socket
and the mailbox's :class:`~gateway_sync._transport.Waker`, with a timeout equal to
the earliest deadline: the core's ``next_deadline()`` or the :class:`StepDeadline`
of a step only the driver can time. It feeds what it reads to the core (``b""`` at
EOF), writes what ``data_to_send()`` returns, and calls ``handle_timeout`` when a
deadline passes. It knows nothing of shards: what the core's events mean, and what
the mailbox's messages ask, the caller decides in the hooks it passes.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from collections.abc import Callable

from gateway_proto.connection import GatewayConnection
from gateway_proto.driver_support import (
    HANDSHAKE_TIMED_OUT,
    WRITE_STALL_TIMEOUT,
    WRITE_STALLED,
    ShardLogger,
    StepDeadline,
)

from ._transport import Waker, recv_some, send_some

__all__ = ["MAX_WAIT", "pump"]

#: Reads (of up to 256 KiB each) per wake-up before the loop looks at its mailbox again.
_MAX_READS_PER_WAKE = 64
#: The longest single ``select`` (seconds). A deadline further away (a peer's huge
#: interval, say) would overflow the selector's millisecond timeout; waking once an
#: hour to look again costs nothing.
MAX_WAIT = 3600.0


def pump(
    conn: GatewayConnection,
    sock: socket.socket,
    waker: Waker,
    step: StepDeadline,
    log: ShardLogger,
    *,
    handshake_timeout: float,
    handle_mailbox: Callable[[], None],
    handle_events: Callable[[], None],
    closed: Callable[[], bool],
) -> None:
    """Drive one connection until the core reports it closed.

    Args:
        conn: the core's connection, not connected yet (this calls ``connect``).
        sock: the connected, non-blocking transport.
        waker: wakes the ``select`` when the mailbox has messages.
        step: the driver's own deadline; set here for the WebSocket handshake.
        log: the shard's logger.
        handshake_timeout: seconds for the WebSocket upgrade.
        handle_mailbox: take the mailbox's messages (called once per wake-up).
        handle_events: drain ``conn``'s events (after every input to it).
        closed: whether those events included the end of the connection.

    """
    tls = sock if isinstance(sock, ssl.SSLSocket) else None
    outgoing = bytearray()
    stalled_since: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        watching = selectors.EVENT_READ
        selector.register(waker.fileno(), selectors.EVENT_READ)
        now = time.monotonic()
        step.set(now + handshake_timeout, HANDSHAKE_TIMED_OUT)
        conn.connect(now)
        while True:
            handle_mailbox()
            handle_events()
            outgoing += conn.data_to_send()
            if closed():
                # Last words (a close frame): best effort, the peer may be gone.
                send_some(sock, memoryview(outgoing))
                return
            now = time.monotonic()
            if outgoing:
                sent = send_some(sock, memoryview(outgoing))
                if sent is None:
                    conn.receive_data(b"", now)  # the transport broke while writing
                    outgoing.clear()
                    continue
                del outgoing[:sent]
                stalled_since = (stalled_since or now) if outgoing else None
                if stalled_since is not None and now - stalled_since > WRITE_STALL_TIMEOUT:
                    log.warning(WRITE_STALLED)
                    conn.receive_data(b"", now)
                    outgoing.clear()
                    continue
            core_deadline = conn.next_deadline()
            deadline = step.earliest(core_deadline)
            timeout = None if deadline is None else max(0.0, deadline - now)
            if timeout is not None and timeout > MAX_WAIT:
                timeout, deadline = MAX_WAIT, None  # not due when this wait ends
            if tls is not None and tls.pending():
                # Decrypted bytes already buffered in the TLS layer are invisible
                # to select: read them before blocking.
                timeout = 0.0
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if outgoing else 0)
            if events != watching:  # a system call each: only when it changes
                selector.modify(sock, events)
                watching = events
            ready = selector.select(timeout)
            now = time.monotonic()
            # Woken by the core's own deadline: it is due even if the clock reads
            # a hair earlier than the deadline after rounding.
            core_due = not ready and deadline is not None and deadline == core_deadline
            readable = tls is not None and tls.pending() > 0
            for key, mask in ready:
                if key.fd == waker.fileno():
                    waker.drain()
                elif mask & selectors.EVENT_READ:
                    readable = True
            # Judged before reading: the events _read drains must not change it.
            stuck = step.expired(now)
            if readable:
                _read(conn, sock, now, handle_events)
            if stuck is not None:
                # A step only the driver can time is stuck: drop the transport,
                # which the core handles like any lost connection (resumable).
                log.warning(stuck)
                conn.receive_data(b"", now)
            core_deadline = conn.next_deadline()
            if core_deadline is not None and (core_due or now >= core_deadline):
                conn.handle_timeout(max(core_deadline, now))


def _read(
    conn: GatewayConnection,
    sock: socket.socket,
    now: float,
    handle_events: Callable[[], None],
) -> None:
    # Read everything that has arrived (up to a bound, so the mailbox is not
    # starved), TLS's already-decrypted bytes included, before any deadline is
    # handled: a heartbeat ACK queued behind a large READY must count. Each
    # chunk's events are drained before anything else asks the core: the core
    # then decodes one message at a time as they are handed out, instead of
    # all at once (the next receive_data, next_deadline or data_to_send would
    # process the rest first; the arrival time is the same either way).
    for _ in range(_MAX_READS_PER_WAKE):
        data = recv_some(sock)
        if data is None:
            return
        conn.receive_data(data, now)
        handle_events()
        if not data:
            return
