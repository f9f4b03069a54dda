"""Sockets for the blocking driver: a wake-up pair and a non-blocking TCP(+TLS) stream.

Theory of operation: each shard's I/O thread blocks in one ``selectors`` call that
watches two file descriptors, the gateway socket and the read end of a
:class:`Waker`. Other threads never touch the gateway socket; they put a message in
the shard's mailbox and write one byte to the waker, which ends the ``select``.
The gateway socket is non-blocking from the moment it exists, even while it
connects and shakes hands over TLS, so ``close()`` from another thread is obeyed
within one wake-up, never after a connect timeout.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
import time
from collections.abc import Callable

from gateway_proto.driver_support import split_gateway_url

__all__ = [
    "TransportClosedError",
    "TransportTimeoutError",
    "Waker",
    "close_stream",
    "open_stream",
    "recv_some",
    "send_some",
]

_RECV_SIZE = 256 * 1024
# connect_ex on a non-blocking socket reports "started" with one of these.
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


class TransportTimeoutError(TimeoutError):
    """Connecting (TCP or TLS) did not finish before its deadline."""


class TransportClosedError(ConnectionError):
    """The connect was abandoned because the owner asked to stop."""


class Waker:
    """A socketpair whose read end wakes a ``select`` from any thread."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        """Return the read end's descriptor, for a selector."""
        return self._r.fileno()

    def wake(self) -> None:
        """Make the next (or current) ``select`` on the read end return; thread-safe."""
        # A full pipe already guarantees a wake-up, and a closed one means nobody
        # is listening any more: neither is worth an exception in the caller.
        with contextlib.suppress(BlockingIOError, OSError):
            self._w.send(b"\0")

    def drain(self) -> None:
        """Consume every pending wake-up byte."""
        with contextlib.suppress(BlockingIOError, OSError):
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        """Close both ends."""
        self._r.close()
        self._w.close()


def _wait(
    sock: socket.socket,
    events: int,
    waker: Waker,
    should_stop: Callable[[], bool],
    deadline: float,
) -> None:
    """Block until ``sock`` is ready for ``events``, the owner stops, or the deadline passes."""
    with selectors.DefaultSelector() as sel:
        sel.register(sock, events)
        sel.register(waker.fileno(), selectors.EVENT_READ)
        while True:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise TransportTimeoutError("timed out while connecting")
            ready = sel.select(timeout)
            if should_stop():
                raise TransportClosedError("connect abandoned: the shard is stopping")
            if any(key.fd != waker.fileno() for key, _ in ready):
                return
            # Woken for something else (a mailbox message): it waits for the
            # connection; keep connecting.
            waker.drain()


def open_stream(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    waker: Waker,
    should_stop: Callable[[], bool],
    timeout: float,
) -> socket.socket:
    """Open a non-blocking TCP connection to ``url``'s host, with TLS for ``wss://``.

    Args:
        url: the gateway URL (``ws://`` or ``wss://``).
        ssl_context: the TLS context for ``wss://`` (``None``: a verifying default).
        waker: the owner's wake-up; when it fires and ``should_stop()`` is true,
            the attempt is abandoned.
        should_stop: whether the owner wants to stop.
        timeout: seconds for TCP connect, and again for the TLS handshake.

    Raises:
        TransportTimeoutError: the deadline passed.
        TransportClosedError: the owner asked to stop.
        OSError: the connection failed (refused, unreachable, TLS verification, ...),
            or the URL names no address (``GatewayUrlError``).

    """
    deadline = time.monotonic() + timeout
    host, port, tls = split_gateway_url(url)
    # Name resolution has no non-blocking form in the standard library; on
    # loopback and with a warm resolver cache it is immediate.
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last_error: OSError = OSError(f"no address for {host!r}")
    sock: socket.socket | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            err = sock.connect_ex(address)
            if err not in (0, *_IN_PROGRESS):
                raise OSError(err, f"connect to {host}:{port} failed")
            if err:
                _wait(sock, selectors.EVENT_WRITE, waker, should_stop, deadline)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, f"connect to {host}:{port} failed")
            break
        except (TransportTimeoutError, TransportClosedError):
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            sock = None
            last_error = exc
    if sock is None:
        raise last_error
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return sock
    deadline = time.monotonic() + timeout
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        while True:
            try:
                tls_sock.do_handshake()
                break
            except ssl.SSLWantReadError:
                _wait(tls_sock, selectors.EVENT_READ, waker, should_stop, deadline)
            except ssl.SSLWantWriteError:
                _wait(tls_sock, selectors.EVENT_WRITE, waker, should_stop, deadline)
    except BaseException:
        tls_sock.close()
        raise
    return tls_sock


def recv_some(sock: socket.socket) -> bytes | None:
    """Read what is available: bytes, ``b""`` at EOF, ``None`` if nothing is ready.

    A connection reset counts as EOF: for the protocol both mean the transport
    ended without a close frame.
    """
    try:
        return sock.recv(_RECV_SIZE)
    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except ssl.SSLZeroReturnError:
        return b""
    except OSError:
        return b""


def send_some(sock: socket.socket, data: memoryview) -> int | None:
    """Write as much of ``data`` as the socket takes; ``None`` if the transport is gone."""
    try:
        return sock.send(data)
    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return 0
    except OSError:
        return None


def close_stream(sock: socket.socket) -> None:
    """Close a stream without raising: the peer may already be gone."""
    with contextlib.suppress(OSError):
        sock.close()
