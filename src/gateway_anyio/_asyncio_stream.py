"""The shard's byte stream when anyio runs on asyncio: one asyncio ``Protocol``.

anyio's own stream over an asyncio transport re-arms the socket in the selector
twice per ``receive`` (resume and pause reading), waits through an ``asyncio.Event``,
and yields once more per ``send``; for ``wss://`` a ``TLSStream`` runs the TLS
object in Python on top of it. Here the transport reads whenever the loop sees data
(asyncio's own TLS, in the transport, for ``wss://``), the protocol keeps what
arrived, and one waiting reader is woken by a plain future. The runner sees the
same ``anyio.abc.ByteStream`` as on trio, with anyio's meaning of each call:

* ``receive`` returns what arrived, up to ``max_bytes``; a receive cancelled while
  it waits loses nothing (bytes are kept by the protocol, never in the future);
  at the peer's EOF it raises ``anyio.EndOfStream``, after a transport error
  ``anyio.BrokenResourceError`` (from the error), after ``aclose``
  ``anyio.ClosedResourceError``.
* ``send`` hands the bytes to the transport and waits only while the transport is
  over its high-water mark (so a cancelled ``send`` has still queued its bytes, as
  a cancelled anyio send may have written some).
* reading pauses while more than ``_READ_BACKLOG`` bytes wait for the reader.

Beyond the ``ByteStream`` API, :meth:`AsyncioByteStream.send_nowait` queues a few
bytes at once when the transport's buffer is empty (the runner's way to write an
idle shard's heartbeat without waking its writer task).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

__all__ = ["AsyncioByteStream", "asyncio_checkpoint", "connect_asyncio"]

#: Bytes kept for the reader before the transport stops reading: the runner takes
#: up to 256 KiB a read, so a few reads' worth, not an unbounded backlog.
_READ_BACKLOG = 1024 * 1024
#: Seconds a closed transport may spend flushing bytes still in its buffer (a
#: close frame behind a slow peer) before it is aborted.
_FLUSH_ON_CLOSE = 1.0
#: Bytes send_nowait takes at most: well under asyncio's default high-water mark
#: (64 KiB), so a write it makes into an empty buffer never pauses the transport.
_WRITE_NOW_MAX = 16 * 1024
#: anyio.connect_tcp's delay between attempts at a host's addresses (RFC 8305).
_HAPPY_EYEBALLS_DELAY = 0.25


class AsyncioByteStream(asyncio.Protocol, anyio.abc.ByteStream):
    """An ``anyio.abc.ByteStream`` that is its own asyncio ``Protocol``.

    One reader and one writer at a time (the runner has one of each): a second
    one that would wait raises ``anyio.BusyResourceError``, as anyio's streams do.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        # What arrived and no receive took yet, in order.
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        # The receive that waits for data, and the send that waits for the
        # transport to drain (each woken with None; the data stays in _chunks).
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._closed = False
        # asyncio's TLS transport cannot stay half-open after the peer's EOF.
        self._keep_open_on_eof = True

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _READ_BACKLOG and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        # Half-open (TCP): the runner may still write its last words.
        return self._keep_open_on_eof

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- anyio.abc.ByteStream --------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return what arrived (at most ``max_bytes``), waiting for some if none did."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        while not self._chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._lost and self._error is not None:
                raise anyio.BrokenResourceError from self._error
            if self._eof or self._lost:
                raise anyio.EndOfStream
            if self._read_waiter is not None:
                raise anyio.BusyResourceError("reading from")
            waiter = self._read_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._read_waiter = None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if len(data) > max_bytes:
            data, rest = data[:max_bytes], data[max_bytes:]
            chunks.append(rest)
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= _READ_BACKLOG and not self._lost:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        """Queue ``item`` on the transport; wait while it is over its high-water mark."""
        self._check_writable()
        if self._drain_waiter is not None:
            raise anyio.BusyResourceError("writing to")
        transport = self._transport
        assert transport is not None
        transport.write(item)
        while self._write_paused:
            waiter = self._drain_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._drain_waiter = None
            self._check_writable()

    def send_nowait(self, item: bytes) -> bool:
        """Queue ``item`` on the transport if that needs no waiting; return whether it did.

        Only a small ``item`` into an empty write buffer, with no ``send`` waiting
        and the stream open: the transport then cannot go over its high-water mark,
        so nothing is left to wait for (a transport that does not drain shows as a
        non-empty buffer next time, and the caller uses :meth:`send`, which waits).
        ``False``: nothing was queued; :meth:`send` waits or raises as usual.
        """
        transport = self._transport
        if (
            transport is None
            or self._write_paused
            or self._drain_waiter is not None
            or self._closed
            or self._lost
            or len(item) > _WRITE_NOW_MAX
            or transport.is_closing()
            or transport.get_write_buffer_size()
        ):
            return False
        transport.write(item)
        return True

    def _check_writable(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._lost:
            raise anyio.BrokenResourceError from self._error
        assert self._transport is not None
        if self._transport.is_closing():
            raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        """Half-close: no more bytes from this side (plain TCP only, as anyio's TLS)."""
        self._check_writable()
        assert self._transport is not None
        if not self._transport.can_write_eof():
            raise NotImplementedError("this transport cannot half-close (TLS)")
        self._transport.write_eof()

    async def aclose(self) -> None:
        """Close the transport: at once, or after a bounded flush of what is queued."""
        if not self._closed:
            self._closed = True
            self._wake_reader()
            self._wake_writer()
            transport = self._transport
            if transport is not None and not self._lost:
                if transport.get_write_buffer_size():
                    # Last words behind a slow peer: a bounded chance to go out.
                    transport.close()
                    self._loop.call_later(_FLUSH_ON_CLOSE, transport.abort)
                else:
                    transport.abort()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> dict[Any, Any]:
        """The socket and its addresses, as anyio's socket streams give them."""
        transport = self._transport
        if transport is None:
            return {}
        sock = transport.get_extra_info("socket")
        return {
            anyio.abc.SocketAttribute.raw_socket: lambda: sock,
            anyio.abc.SocketAttribute.family: lambda: sock.family,
            anyio.abc.SocketAttribute.local_address: sock.getsockname,
            anyio.abc.SocketAttribute.remote_address: sock.getpeername,
        }


async def connect_asyncio(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float,
) -> AsyncioByteStream:
    """TCP to ``host:port`` within ``connect_timeout``, then TLS (if a context) within it again."""
    loop = asyncio.get_running_loop()
    stream = AsyncioByteStream(loop)
    # Other loops (uvloop) may not take asyncio's Happy Eyeballs argument.
    options: dict[str, Any] = {}
    if isinstance(loop, asyncio.BaseEventLoop):
        options["happy_eyeballs_delay"] = _HAPPY_EYEBALLS_DELAY
    with anyio.fail_after(connect_timeout):
        transport, _ = await loop.create_connection(lambda: stream, host, port, **options)
    if ssl_context is None:
        return stream
    try:
        with anyio.fail_after(connect_timeout):
            tls = await loop.start_tls(transport, stream, ssl_context, server_hostname=host)
    except BaseException:
        transport.abort()
        raise
    if tls is None:  # only when the loop is closing under us
        transport.abort()
        raise anyio.BrokenResourceError("the event loop closed during the TLS handshake")
    stream._transport = tls
    stream._keep_open_on_eof = False
    return stream


def asyncio_checkpoint() -> Coroutine[Any, Any, None]:
    """``anyio.lowlevel.checkpoint()`` on asyncio (``asyncio.sleep(0)``) without its backend lookup.

    The reader yields once per batch of dispatches: the lookup was a quarter of it.
    """
    return asyncio.sleep(0)
