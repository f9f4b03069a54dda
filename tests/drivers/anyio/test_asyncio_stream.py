"""The anyio driver's asyncio-native byte stream, over real loopback sockets.

The server side of each test is anyio's own TCP (and TLS) stream; the client is
what ``open_stream`` returns on asyncio. What the runner relies on: a cancelled
receive loses no bytes, EOF and a reset end reads the anyio way, a peer that does not
read holds up only the ``send`` that overfills the transport, and a stuck TLS
handshake ends at the connect timeout.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

from gateway_anyio._asyncio_stream import _READ_BACKLOG, AsyncioByteStream
from gateway_anyio._transport import TRANSPORT_ERRORS, open_stream

GUARD = 10.0


@pytest.fixture
def anyio_backend() -> str:
    """The native stream is asyncio's (trio keeps anyio's streams)."""
    return "asyncio"


@asynccontextmanager
async def connected(
    *, tls: bool = False
) -> AsyncIterator[tuple[AsyncioByteStream, anyio.abc.ByteStream]]:
    """A client stream from ``open_stream`` and the server's end of it."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client_ctx: ssl.SSLContext | None = None
    server_ctx: ssl.SSLContext | None = None
    if tls:
        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
    accepted: list[anyio.abc.ByteStream] = []
    got = anyio.Event()

    async def accept() -> None:
        server: anyio.abc.ByteStream = await accept_one(listener)
        if server_ctx is not None:
            server = await TLSStream.wrap(
                server, server_side=True, ssl_context=server_ctx, standard_compatible=False
            )
        accepted.append(server)
        got.set()

    scheme = "wss" if tls else "ws"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(accept)
        with anyio.fail_after(GUARD):
            client = await open_stream(
                f"{scheme}://127.0.0.1:{port}/", ssl_context=client_ctx, connect_timeout=GUARD
            )
            await got.wait()
        assert isinstance(client, AsyncioByteStream)
        try:
            yield client, accepted[0]
        finally:
            await anyio.aclose_forcefully(client)
            await anyio.aclose_forcefully(accepted[0])


async def accept_one(
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
) -> anyio.abc.SocketStream:
    """The next connection of a one-address TCP listener."""
    inner = listener.listeners[0]  # type: ignore[attr-defined]
    assert isinstance(inner, anyio.abc.SocketListener)
    return await inner.accept()


async def read_to_the_end(stream: anyio.abc.ByteStream) -> Exception:
    """Read until the stream ends; return how it ended."""
    while True:
        try:
            await stream.receive()
        except Exception as exc:  # the caller looks at what it is
            return exc


def small_send_buffer(stream: anyio.abc.ByteStream) -> None:
    """Linux autotunes a socket's send buffer to megabytes: make writes stall early."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


async def receive_exactly(stream: anyio.abc.ByteStream, n: int) -> bytes:
    data = bytearray()
    with anyio.fail_after(GUARD):
        while len(data) < n:
            data += await stream.receive()
    return bytes(data)


@pytest.mark.anyio
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_a_receive_cancelled_as_bytes_arrive_loses_none(tls: bool) -> None:
    async with connected(tls=tls) as (client, server):
        scope = anyio.CancelScope()
        real = client.data_received

        def arrive(data: bytes) -> None:
            # The waiting receive is cancelled, and the bytes arrive before it runs
            # again (in the same pass of the loop): it ends cancelled, bytes unread.
            scope.cancel()
            real(data)

        client.data_received = arrive  # type: ignore[method-assign]
        outcome: list[bytes] = []
        with scope:
            await server.send(b"first bytes")
            outcome.append(await client.receive())
        assert scope.cancelled_caught
        assert outcome == []
        client.data_received = real  # type: ignore[method-assign]
        await server.send(b", then more")
        assert await receive_exactly(client, 22) == b"first bytes, then more"


@pytest.mark.anyio
async def test_eof_ends_reads_and_the_client_can_still_write() -> None:
    async with connected() as (client, server):
        await server.send(b"bye")
        await server.send_eof()
        assert await receive_exactly(client, 3) == b"bye"
        with pytest.raises(anyio.EndOfStream):
            await client.receive()
        with pytest.raises(anyio.EndOfStream):
            await client.receive()  # and again: EOF stays
        # Half-open: the last words still reach the peer (a close frame).
        await client.send(b"last words")
        assert await receive_exactly(server, 10) == b"last words"


@pytest.mark.anyio
async def test_tls_eof_ends_reads_as_a_transport_error() -> None:
    async with connected(tls=True) as (client, server):
        await server.send(b"bye")
        await server.aclose()
        assert await receive_exactly(client, 3) == b"bye"
        with pytest.raises(TRANSPORT_ERRORS):
            await client.receive()


@pytest.mark.anyio
async def test_a_peer_reset_is_a_transport_error() -> None:
    async with connected() as (client, server):
        raw = server.extra(anyio.abc.SocketAttribute.raw_socket)
        # Linger 0: close() sends RST, not FIN.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await server.aclose()
        with anyio.fail_after(GUARD), pytest.raises(TRANSPORT_ERRORS):
            await client.receive()
        with pytest.raises(TRANSPORT_ERRORS):
            await client.send(b"anyone?")


@pytest.mark.anyio
async def test_a_large_write_to_a_peer_that_does_not_read_blocks_only_that_send() -> None:
    async with connected() as (client, server):
        small_send_buffer(client)
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB: far more than the buffers hold
        sent = anyio.Event()

        async def write() -> None:
            await client.send(big)
            sent.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            with anyio.fail_after(GUARD):
                while not client._write_paused:
                    await anyio.sleep(0.01)
            assert not sent.is_set()
            # The send waits for the peer; reading does not (a heartbeat ACK still arrives).
            await server.send(b"ACK")
            assert await receive_exactly(client, 3) == b"ACK"
            assert not sent.is_set()
            # The peer reads at last: everything arrives, in order, and the send returns.
            assert await receive_exactly(server, len(big)) == big
            with anyio.fail_after(GUARD):
                await sent.wait()


@pytest.mark.anyio
async def test_a_cancelled_send_keeps_its_bytes_queued() -> None:
    async with connected() as (client, server):
        small_send_buffer(client)
        big = b"x" * (4 * 1024 * 1024)
        # The runner's write stall limit cancels a send that waits too long.
        with anyio.move_on_after(0.05) as stall:
            await client.send(big)
        assert stall.cancelled_caught
        await client.send(b"END")
        assert await receive_exactly(server, len(big) + 3) == big + b"END"


@pytest.mark.anyio
async def test_reading_pauses_while_the_reader_is_behind() -> None:
    async with connected() as (client, server):
        data = bytes(range(256)) * (3 * _READ_BACKLOG // 256)

        async with anyio.create_task_group() as tg:
            tg.start_soon(server.send, data)
            with anyio.fail_after(GUARD):
                while not client._reading_paused:
                    await anyio.sleep(0.01)
            assert client._buffered > _READ_BACKLOG
            assert await receive_exactly(client, len(data)) == data
        assert not client._reading_paused


@pytest.mark.anyio
async def test_receive_returns_at_most_max_bytes_and_keeps_the_rest() -> None:
    async with connected() as (client, server):
        await server.send(b"0123456789")
        head = await receive_exactly(client, 1)
        rest = await receive_exactly(client, 10 - len(head))
        assert head + rest == b"0123456789"
        await server.send(b"abcdef")
        with anyio.fail_after(GUARD):
            while client._buffered < 6:
                await anyio.sleep(0.01)
        assert await client.receive(4) == b"abcd"
        assert await client.receive(4) == b"ef"


@pytest.mark.anyio
async def test_a_second_reader_is_refused_while_one_waits() -> None:
    async with connected() as (client, server), anyio.create_task_group() as tg:
        got: list[bytes] = []

        async def read() -> None:
            got.append(await receive_exactly(client, 2))

        tg.start_soon(read)
        with anyio.fail_after(GUARD):
            while client._read_waiter is None:
                await anyio.sleep(0.01)
        with pytest.raises(anyio.BusyResourceError):
            await client.receive()
        await server.send(b"ok")
    assert got == [b"ok"]


@pytest.mark.anyio
async def test_a_closed_stream_refuses_reads_and_writes() -> None:
    async with connected() as (client, _server):
        await client.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await client.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await client.send(b"x")


@pytest.mark.anyio
async def test_a_tls_handshake_that_never_ends_times_out_and_closes_the_socket() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        with pytest.raises(TimeoutError):
            await open_stream(
                f"wss://127.0.0.1:{port}/",
                ssl_context=ssl.create_default_context(),
                connect_timeout=0.2,
            )
        # The TCP connection was accepted by the kernel and then given up: the
        # server sees the client's hello, then the end of the stream.
        server = await accept_one(listener)
        async with server:
            with anyio.fail_after(GUARD):
                assert isinstance(await read_to_the_end(server), TRANSPORT_ERRORS)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_open_stream_is_native_on_asyncio_only(anyio_backend: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        stream = await open_stream(
            f"ws://127.0.0.1:{port}/", ssl_context=None, connect_timeout=GUARD
        )
        async with stream:
            assert isinstance(stream, AsyncioByteStream) == (anyio_backend == "asyncio")
            assert stream.extra(anyio.abc.SocketAttribute.remote_address)[1] == port


@pytest.mark.anyio
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_send_nowait_takes_a_few_bytes_only_when_nothing_must_wait(tls: bool) -> None:
    # The runner writes an idle shard's heartbeat with it, and everything else with
    # send: it must refuse whatever could leave the transport over its high-water mark.
    async with connected(tls=tls) as (client, server):
        assert client.send_nowait(b"beat")
        assert await receive_exactly(server, 4) == b"beat"
        assert not client.send_nowait(b"x" * (64 * 1024))  # too big: send's job
        small_send_buffer(client)
        big = b"y" * (4 * 1024 * 1024)
        with anyio.move_on_after(0.05):
            await client.send(big)  # the peer does not read: the buffer stays full
        refused = not client.send_nowait(b"late")
        if not tls:
            # Over TCP the transport's buffer holds the rest: it would queue behind.
            # (asyncio's TLS layer hands its bytes on to the TCP transport below and
            # reports an empty buffer, not paused: then send would not wait either.)
            assert refused
        assert await receive_exactly(server, len(big)) == big
        with anyio.fail_after(GUARD):
            while refused and (client._write_paused or not client.send_nowait(b"late")):
                await anyio.sleep(0.01)  # the transport drains what it holds
        assert await receive_exactly(server, 4) == b"late"
        await client.aclose()
        assert not client.send_nowait(b"after")
