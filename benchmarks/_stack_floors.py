"""The reference rows of ``bench_anyio.py``: the same bytes read with as little as possible.

* ``floor``: inflate + ``orjson.loads`` per message, in memory, no I/O;
* ``core_alone``: the bytes fed to ``GatewayConnection`` in 64 KiB reads, no sockets;
* ``bare``: a bare ``websockets`` client with zlib and orjson, over loopback;
* ``bare_protocol``: a hand-written frame reader in an ``asyncio.Protocol``.

Also the measure every row of ``bench_anyio.py`` returns (:data:`Result`: from
READY to the last dispatch, wall and CPU time) and the helpers that take it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import zlib
from collections.abc import Callable

from peers._common import _ZERO, Timed, _now, _timed_span

TOKEN = "bench-token"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SYNC = b"\x00\x00\xff\xff"

#: From READY to the last dispatch: wall seconds, dispatches timed, CPU seconds of
#: this process (every thread; the replay server is another process).
Result = Timed
_span = _timed_span


def _decompressor(
    compression: str, *, zlib_ng: bool = False
) -> Callable[[bytes | bytearray], bytes]:
    """A fresh inflate context's ``decompress`` for one connection's messages."""
    if compression == "zstd-stream":
        import zstandard

        decompressobj = zstandard.ZstdDecompressor().decompressobj
        return decompressobj(read_across_frames=True).decompress
    if zlib_ng:
        from zlib_ng import zlib_ng as ng

        return ng.decompressobj().decompress
    return zlib.decompressobj().decompress


def bare(url: str, total: int, names: list[str], compression: str = "zlib-stream") -> Result:
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    identify = json.dumps({"op": 2, "d": {"token": TOKEN, "intents": 513, "properties": {}}})

    async def session() -> Result:
        async with connect(url, compression=None, max_size=None) as ws:
            decompress = _decompressor(compression)
            # zstd-stream: every message is one whole payload (no suffix to wait for).
            suffix = b"" if compression == "zstd-stream" else _SYNC
            buffer = b""
            n, t_ready, t_last = 0, _ZERO, _ZERO
            hello = await ws.recv()
            assert isinstance(hello, bytes)
            orjson.loads(decompress(hello))
            await ws.send(identify)
            while n < total:
                message = await ws.recv()
                assert isinstance(message, bytes)
                buffer += message
                if not buffer.endswith(suffix):
                    continue
                payload = orjson.loads(decompress(buffer))
                buffer = b""
                if payload["op"] == 0:
                    n += 1
                    if n == 1:
                        t_ready = _now()
            t_last = _now()
        return _span(t_ready, t_last, n, total)

    return asyncio.run(session())


def bare_protocol(
    url: str, total: int, names: list[str], compression: str = "zlib-stream"
) -> Result:
    """A hand-written frame reader in an ``asyncio.Protocol``: the floor for a driver over asyncio.

    No streams, no tasks per read: ``data_received`` parses the server's unmasked
    frames out of a ``bytearray``, inflates and ``orjson.loads`` each message. It
    handles only what the replay server sends (unfragmented binary frames); the
    IDENTIFY goes out as one masked text frame (mask key 0, so the payload is as is).
    """
    import asyncio

    import orjson

    host, port = url.split("//", 1)[1].strip("/").rsplit(":", 1)
    identify = json.dumps({"op": 2, "d": {"token": TOKEN, "intents": 513, "properties": {}}})
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()

    class Reader(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[Result]) -> None:
            self.done, self.buffer, self.upgraded = done, bytearray(), False
            self.decompress, self.loads = _decompressor(compression), orjson.loads
            self.n, self.t_ready = 0, _ZERO
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            transport.write(request)

        def data_received(self, data: bytes) -> None:
            buf = self.buffer
            buf += data
            if not self.upgraded:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                del buf[: end + 4]
                self.upgraded = True
            pos, size = 0, len(buf)
            while size - pos >= 2:
                length, start = buf[pos + 1] & 0x7F, pos + 2
                if length == 126:
                    length, start = int.from_bytes(buf[start : start + 2], "big"), start + 2
                elif length == 127:
                    length, start = int.from_bytes(buf[start : start + 8], "big"), start + 8
                if start + length > size:
                    break
                payload = self.loads(self.decompress(buf[start : start + length]))
                pos = start + length
                if payload["op"] == 10:
                    text = identify.encode()
                    assert self.transport is not None
                    self.transport.write(bytes((0x81, 0x80 | len(text))) + b"\0\0\0\0" + text)
                elif payload["op"] == 0:
                    self.n += 1
                    if self.n == 1:
                        self.t_ready = _now()
                    elif self.n == total:
                        self.done.set_result(_span(self.t_ready, _now(), self.n, total))
            del buf[:pos]

    async def session() -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Reader(done), host, int(port))
        try:
            return await asyncio.wait_for(done, 120)
        finally:
            transport.close()

    return asyncio.run(session())


def floor(
    messages: list[bytes], total: int, compression: str = "zlib-stream", *, zlib_ng: bool = False
) -> Result:
    """The in-memory floor: inflate + ``orjson.loads`` per message, nothing else.

    Stdlib zlib inflates (``zlib_ng``: zlib-ng, as the shard does with the speed extra).
    """
    import orjson

    decompress = _decompressor(compression, zlib_ng=zlib_ng)
    loads = orjson.loads
    loads(decompress(messages[0]))  # HELLO, before the clock as for the others
    n, t_ready = 0, _ZERO
    for message in messages[1:]:
        if loads(decompress(message))["op"] == 0:
            n += 1
            if n == 1:
                t_ready = _now()
    return _span(t_ready, _now(), n, total)


def core_alone(hello: bytes, rest: bytes, total: int, compression: str = "zlib-stream") -> Result:
    """The same bytes fed to ``GatewayConnection`` in 64 KiB reads: no sockets, no loop."""
    from gateway_proto.config import ShardConfig
    from gateway_proto.connection import GatewayConnection
    from gateway_proto.events import Dispatch, IdentifyNeeded

    config = ShardConfig(
        token=TOKEN,
        intents=513,
        url="ws://127.0.0.1/",
        compression=compression,  # type: ignore[arg-type]
    )
    conn = GatewayConnection(config, rng=random.Random(0))
    conn.connect(0.0)
    request = conn.data_to_send()
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + hello,
        0.0,
    )
    if any(isinstance(e, IdentifyNeeded) for e in conn.events()):
        conn.identify(0.0)
    conn.data_to_send()
    n, t_ready = 0, _ZERO
    for i in range(0, len(rest), 65536):
        conn.receive_data(rest[i : i + 65536], 1.0)
        for event in conn.events():
            if type(event) is Dispatch:
                n += 1
                if n == 1:
                    t_ready = _now()
    return _span(t_ready, _now(), n, total)
