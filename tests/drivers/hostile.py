"""A loopback gateway of the test suite's own, scripted per connection to misbehave.

Why not ``gateway_testing.FakeGateway``: the fake shares the library's assumptions
(it is built from the same understanding of the protocol, and partly from the same
code). This server is written by hand from RFC 6455 and the gateway's envelope, and
every connection runs a *script*: an async function of a :class:`Peer` that may
hang before the 101, trickle bytes, send values no real server sends, stop reading,
or drop TCP in the middle of a frame. :meth:`Peer.serve` is the well-behaved part a
script falls back to (HELLO, heartbeat ACKs, READY or RESUMED, the close echo).

Only what the drivers need is spoken: ``ws://`` without compression, JSON or ETF
(``?encoding=``). Client frames are unmasked and parsed here; ETF sent to the client
is encoded here too, so a script can send a NaN as ``NEW_FLOAT_EXT``. Decoding the
client's ETF borrows the core's decoder: what the client *says* is not under test.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import math
import socket
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc

from gateway_proto import _etf

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_TEXT", "HostileServer", "Peer", "Script", "etf"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

#: A per-connection script: the peer, and the connection's index (0 for the first).
Script = Callable[["Peer", int], Awaitable[None]]


class _Raw:
    """An ETF term given as its encoded bytes (after the version byte)."""

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded


def etf_nan() -> _Raw:
    """A NaN as ``NEW_FLOAT_EXT`` (what no JSON encoder would write)."""
    return _Raw(b"F" + struct.pack(">d", math.nan))


def _etf_term(value: Any) -> bytes:
    if isinstance(value, _Raw):
        return value.encoded
    if value is None:
        return b"w\x03nil"  # SMALL_ATOM_UTF8_EXT
    if value is True or value is False:
        name = b"true" if value else b"false"
        return b"w" + bytes([len(name)]) + name
    if isinstance(value, int):
        if 0 <= value < 256:
            return b"a" + bytes([value])
        if -(2**31) <= value < 2**31:
            return b"b" + struct.pack(">i", value)
        magnitude = abs(value)
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8 or 1, "little")
        return b"n" + bytes([len(digits), value < 0]) + digits  # SMALL_BIG_EXT
    if isinstance(value, float):
        return b"F" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return b"m" + struct.pack(">I", len(raw)) + raw  # BINARY_EXT
    if isinstance(value, (list, tuple)):
        if not value:
            return b"j"
        return b"l" + struct.pack(">I", len(value)) + b"".join(map(_etf_term, value)) + b"j"
    if isinstance(value, dict):
        body = b"".join(_etf_term(k) + _etf_term(v) for k, v in value.items())
        return b"t" + struct.pack(">I", len(value)) + body
    raise TypeError(f"no ETF for {type(value).__name__}")


def etf(value: Any) -> bytes:
    """Encode ``value`` as External Term Format (keys and strings as binaries)."""
    return b"\x83" + _etf_term(value)


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """Encode one unmasked (server) frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        return head + bytes([size]) + payload
    if size < 1 << 16:
        return head + b"\x7e" + struct.pack(">H", size) + payload
    return head + b"\x7f" + struct.pack(">Q", size) + payload


@dataclass
class Peer:
    """One accepted connection and what the script knows about it.

    Attributes:
        stream: the TCP stream.
        server: the server that accepted it.
        index: which connection this is (0 for the first).
        encoding: ``"json"`` or ``"etf"`` (from the upgrade's query string).
        received: every client payload decoded so far, in order.

    """

    stream: anyio.abc.SocketStream
    server: HostileServer
    index: int
    encoding: str = "json"
    received: list[dict[str, Any]] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)

    # -- bytes -------------------------------------------------------------------

    async def _fill(self) -> bool:
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        self._buffer += data
        return True

    async def _take(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def send_raw(self, data: bytes, *, dribble: float | None = None) -> None:
        """Write ``data``; with ``dribble``, one byte at a time, that many seconds apart."""
        if dribble is None:
            await self.stream.send(data)
            return
        for i in range(len(data)):
            await self.stream.send(data[i : i + 1])
            await anyio.sleep(dribble)

    # -- the upgrade --------------------------------------------------------------

    async def read_request(self) -> dict[str, str] | None:
        """Read the HTTP upgrade request; return its headers (lowercase names)."""
        while b"\r\n\r\n" not in self._buffer:
            if not await self._fill():
                return None
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer[:] = rest
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        query = parse_qs(urlsplit(target).query)
        self.encoding = query.get("encoding", ["json"])[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    def accept_bytes(self, headers: dict[str, str]) -> bytes:
        """Return the 101 response to ``headers``."""
        key = headers["sec-websocket-key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()

    async def upgrade(self, *, dribble: float | None = None) -> bool:
        """Read the request and answer 101; ``False`` if the client went away."""
        headers = await self.read_request()
        if headers is None:
            return False
        await self.send_raw(self.accept_bytes(headers), dribble=dribble)
        return True

    # -- messages -------------------------------------------------------------------

    def encode(self, payload: dict[str, Any]) -> bytes:
        """Encode a payload in the connection's encoding (JSON may carry NaN)."""
        if self.encoding == "etf":
            return etf(payload)
        return json.dumps(payload).encode()

    async def send_payload(self, payload: dict[str, Any], *, dribble: float | None = None) -> None:
        """Send one gateway payload as one frame."""
        opcode = OP_BINARY if self.encoding == "etf" else OP_TEXT
        await self.send_raw(frame(opcode, self.encode(payload)), dribble=dribble)

    async def send_text(self, text: str) -> None:
        """Send raw text as one frame (a JSON document the encoder would not write)."""
        await self.send_raw(frame(OP_TEXT, text.encode()))

    async def dispatch(self, name: str, data: Any, *, seq: Any = None) -> None:
        """Send an op 0 with the server's next sequence number (or ``seq`` as given)."""
        if seq is None:
            seq = self.server.next_seq()
        await self.send_payload({"op": 0, "t": name, "s": seq, "d": data})

    async def send_close(self, code: int | None, reason: bytes = b"") -> None:
        """Send a close frame (``None``: no code at all)."""
        body = b"" if code is None else struct.pack(">H", code) + reason
        await self.send_raw(frame(OP_CLOSE, body))

    async def receive_frame(self) -> tuple[int, bytes] | None:
        """Read one client frame (unmasked): ``(opcode, payload)``, ``None`` at EOF."""
        head = await self._take(2)
        if head is None:
            return None
        size = head[1] & 0x7F
        if size == 126:
            ext = await self._take(2)
            size = struct.unpack(">H", ext)[0] if ext else 0
        elif size == 127:
            ext = await self._take(8)
            size = struct.unpack(">Q", ext)[0] if ext else 0
        mask = await self._take(4) if head[1] & 0x80 else b"\0\0\0\0"
        body = await self._take(size)
        if mask is None or body is None:
            return None
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        return head[0] & 0x0F, data

    async def receive_payload(self) -> dict[str, Any] | None:
        """Read the client's next payload; ``None`` at EOF or on its close frame."""
        while True:
            got = await self.receive_frame()
            if got is None:
                return None
            opcode, data = got
            if opcode == OP_CLOSE:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await self.send_raw(frame(OP_CLOSE, data[:2]))
                return None
            if opcode in (OP_TEXT, OP_BINARY):
                if self.encoding == "etf":
                    payload: dict[str, Any] = _etf.decode(data, 1 << 24)
                else:
                    payload = json.loads(data)
                self.received.append(payload)
                return payload

    # -- the well-behaved part -------------------------------------------------------

    async def hello(self, interval_ms: Any = None) -> None:
        """Send HELLO (default: the server's interval)."""
        interval = self.server.interval_ms if interval_ms is None else interval_ms
        await self.send_payload({"op": 10, "d": {"heartbeat_interval": interval}})

    async def serve(self, *, hello: bool = True, ready: bool = True) -> None:
        """Behave: HELLO, ACK heartbeats, READY or RESUMED, echo the close; until EOF.

        After READY or RESUMED it sends ``server.after_ready`` dispatches, then
        calls ``server.on_live`` (a script's hook for the live session).
        """
        if hello:
            await self.hello()
        while True:
            payload = await self.receive_payload()
            if payload is None:
                return
            op = payload.get("op")
            if op == 1:
                await self.send_payload({"op": 11, "d": None})
            elif op in (2, 6) and ready:
                if op == 2:
                    await self.dispatch("READY", self.server.ready_data())
                else:
                    # Go on from where the client says it is, as Discord does.
                    self.server.resume_from(payload.get("d") or {})
                    await self.dispatch("RESUMED", None)
                for name, data in self.server.after_ready:
                    await self.dispatch(name, data)
                if self.server.on_live is not None:
                    await self.server.on_live(self)
            elif op == 8:
                await self.server.on_request_members(self, payload.get("d") or {})

    async def members_chunk(self, request: dict[str, Any]) -> None:
        """Answer a member request (op 8's ``d``) with its one and only chunk."""
        await self.dispatch(
            "GUILD_MEMBERS_CHUNK",
            {
                "guild_id": request.get("guild_id"),
                "members": [{"user": {"id": "7"}}],
                "chunk_index": 0,
                "chunk_count": 1,
                "nonce": request.get("nonce"),
            },
        )

    async def rate_limited(self, request: dict[str, Any], retry_after: Any) -> None:
        """Answer a member request with RATE_LIMITED (JSON writes a NaN as ``NaN``)."""
        meta = {"guild_id": request.get("guild_id"), "nonce": request.get("nonce")}
        await self.dispatch("RATE_LIMITED", {"opcode": 8, "retry_after": retry_after, "meta": meta})

    async def wait_unread(self, size: int) -> None:
        """Wait until ``size`` bytes sit unread in this socket (a script that stopped reading)."""
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        while True:
            unread = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
            if unread >= size:
                return
            await anyio.sleep(0.01)

    async def hang(self) -> None:
        """Do nothing (read nothing) until the server releases its connections."""
        await self.server.released.wait()


async def _behave(peer: Peer, index: int) -> None:
    if await peer.upgrade():
        await peer.serve()


class HostileServer:
    """A loopback ``ws://`` gateway whose connections run a script each.

    Use it as an async context manager in the test's event loop. ``script`` runs
    once per accepted connection (with its index); leaving the context releases
    every hanging connection and closes them all.

    Args:
        script: what each connection does (default: behave).
        interval_ms: the HELLO interval :meth:`Peer.serve` announces.
        rcvbuf: ``SO_RCVBUF`` of the listening socket (inherited by each accepted
            one), to make a server that stops reading fill up fast.

    Attributes:
        url: the gateway URL to give the shard.
        api_base: a REST base nobody answers (the shard is given ``url``).
        after_ready: dispatches ``serve`` sends after READY/RESUMED.
        on_live: awaited by ``serve`` after READY/RESUMED (and ``after_ready``).
        on_request_members: how ``serve`` answers op 8 (default: one chunk).
        released: set to end every :meth:`Peer.hang`.
        connections: every connection accepted so far.

    """

    def __init__(
        self, script: Script = _behave, *, interval_ms: float = 1000, rcvbuf: int | None = None
    ) -> None:
        self.script = script
        self.interval_ms = interval_ms
        self.rcvbuf = rcvbuf
        self.after_ready: list[tuple[str, Any]] = []
        self.on_live: Callable[[Peer], Awaitable[None]] | None = None
        self.on_request_members: Callable[[Peer, dict[str, Any]], Awaitable[None]] = (
            Peer.members_chunk
        )
        self.released = anyio.Event()
        self.connections: list[Peer] = []
        self.url = ""
        self.api_base = "http://127.0.0.1:9/api/v10"
        self._seq = 0

    def next_seq(self) -> int:
        """The next sequence number (one counter for every connection: never repeats)."""
        self._seq += 1
        return self._seq

    def resume_from(self, resume: dict[str, Any]) -> None:
        """Number the next dispatches after the RESUME's ``seq`` (if it is a number)."""
        seq = resume.get("seq")
        if isinstance(seq, int) and seq >= 0:
            self._seq = seq

    def skip_past(self, seq: Any) -> None:
        """Number the next dispatches above ``seq`` (a value a script sent by hand)."""
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            self._seq = max(self._seq, int(seq))

    def ready_data(self) -> dict[str, Any]:
        """READY's ``d`` (the resume URL is this server)."""
        return {
            "v": 10,
            "user": {"id": "1", "username": "hostile", "bot": True},
            "guilds": [],
            "session_id": "hostile-session",
            "resume_gateway_url": self.url,
            "shard": [0, 1],
        }

    @asynccontextmanager
    async def running(self) -> AsyncIterator[HostileServer]:
        """Listen on loopback, serve until the context ends, then close everything."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf is not None:
            # Set before listen(): accepted sockets inherit it, and so does the window.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        self.url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        listener = await anyio.abc.SocketListener.from_socket(sock)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._handle)
            try:
                yield self
            finally:
                self.released.set()
                tg.cancel_scope.cancel()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        peer = Peer(stream, self, len(self.connections))
        self.connections.append(peer)
        async with stream:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self.script(peer, peer.index)
