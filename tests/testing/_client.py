"""An independent gateway client for testing the fake (not ``gateway_proto``).

Two transports behind one API: the ``websockets`` package (asyncio only; proves the
fake's WebSocket side against a different implementation) and a small
``anyio`` + ``wsproto`` client (runs on trio too). Decoding is our own here as well:
zlib-stream through one ``zlib.decompressobj`` per connection (inflate when the buffer
ends with ``00 00 ff ff``), zstd-stream through one ``zstandard`` decompressobj,
payload compression by the zlib header, ETF through ``erlpack`` with normalisation.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import zlib
from typing import Any

import anyio
import erlpack
import zstandard
from anyio.abc import ByteStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)

TOKEN = "test-token"
USER_AGENT = (b"User-Agent", b"gateway-testing-client (tests)")
SUFFIX = b"\x00\x00\xff\xff"


class Closed(Exception):
    """The server closed (``code`` is ``None`` for a drop without a close frame)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


def normalise(value: Any) -> Any:
    """ETF binaries and atoms to ``str``, recursively."""
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, erlpack.Atom):
        return str(value)
    return value


class Decoder:
    """Turns received WebSocket messages into payloads (``None`` while a payload is partial)."""

    def __init__(self, encoding: str, compress: str | None) -> None:
        self.encoding = encoding
        self.compress = compress
        self.buffer = bytearray()
        self.zlib = zlib.decompressobj()
        # Across frames: a fake with zstd_end_frames ends one after every message.
        self.zstd = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        self.messages: list[str | bytes] = []

    def feed(self, message: str | bytes) -> dict[str, Any] | None:
        self.messages.append(message)
        if self.compress == "zlib-stream":
            assert isinstance(message, bytes)
            self.buffer += message
            if not self.buffer.endswith(SUFFIX):
                return None
            raw: str | bytes = self.zlib.decompress(bytes(self.buffer))
            self.buffer.clear()
        elif self.compress == "zstd-stream":
            assert isinstance(message, bytes)
            raw = self.zstd.decompress(message)
        elif isinstance(message, bytes) and self.encoding == "json":
            raw = zlib.decompress(message)  # payload compression: a standalone zlib blob
        else:
            raw = message
        if self.encoding == "etf":
            assert isinstance(raw, bytes)
            result: dict[str, Any] = normalise(erlpack.unpack(raw))
            return result
        loaded: dict[str, Any] = json.loads(raw)
        return loaded


class Client:
    """A gateway client: ``send``/``recv`` payloads, ``close``; transport in subclasses."""

    def __init__(self, encoding: str, compress: str | None) -> None:
        self.encoding = encoding
        self.decoder = Decoder(encoding, compress)
        self.received: list[dict[str, Any]] = []

    async def _send_message(self, message: str | bytes) -> None:
        raise NotImplementedError

    async def _recv_message(self) -> str | bytes:
        raise NotImplementedError

    async def close(self, code: int = 1000) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def send(self, payload: dict[str, Any]) -> None:
        if self.encoding == "etf":
            await self._send_message(erlpack.pack(payload))
        else:
            await self._send_message(json.dumps(payload))

    async def send_raw(self, message: str | bytes) -> None:
        await self._send_message(message)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while True:
                try:
                    message = await self._recv_message()
                except Closed:
                    await self.aclose()  # the connection is over: free the socket now
                    raise
                payload = self.decoder.feed(message)
                if payload is not None:
                    self.received.append(payload)
                    return payload

    async def recv_until(self, t: str | None = None, op: int | None = None) -> list[dict[str, Any]]:
        """Receive until a payload with dispatch name ``t`` (or opcode ``op``); return all."""
        out = []
        while True:
            payload = await self.recv()
            out.append(payload)
            if (t is not None and payload.get("t") == t) or (
                op is not None and payload["op"] == op
            ):
                return out

    async def closed_code(self, timeout: float = 5.0) -> int | None:
        """Receive until the server closes; return its close code (``None``: dropped)."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    await self.recv(timeout)
                except Closed as exc:
                    return exc.code

    async def hello(self) -> dict[str, Any]:
        payload = await self.recv()
        assert payload["op"] == 10, payload
        return payload

    async def identify(
        self,
        *,
        shard: list[int] | None = None,
        intents: int = 513,
        token: str = TOKEN,
        **extra: Any,
    ) -> None:
        d: dict[str, Any] = {
            "token": token,
            "intents": intents,
            "properties": {"os": "linux", "browser": "test", "device": "test"},
            **extra,
        }
        if shard is not None:
            d["shard"] = shard
        await self.send({"op": 2, "d": d})


class WebsocketsClient(Client):
    """A client on the ``websockets`` package (asyncio)."""

    def __init__(self, ws: Any, encoding: str, compress: str | None) -> None:
        super().__init__(encoding, compress)
        self.ws = ws

    async def _send_message(self, message: str | bytes) -> None:
        await self.ws.send(message)

    async def _recv_message(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            message: str | bytes = await self.ws.recv()
        except ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd is not None else None) from exc
        return message

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code)

    async def aclose(self) -> None:
        await self.ws.close()


class WsprotoClient(Client):
    """A client on ``anyio`` + ``wsproto``'s client side (any backend)."""

    def __init__(
        self, stream: ByteStream, ws: WSConnection, encoding: str, compress: str | None
    ) -> None:
        super().__init__(encoding, compress)
        self.stream = stream
        self.ws = ws
        self.pending: list[str | bytes] = []
        self.parts: list[Any] = []
        self.frames = 0

    async def _send_message(self, message: str | bytes) -> None:
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        await self.stream.send(self.ws.send(event))

    async def _recv_message(self) -> str | bytes:
        while not self.pending:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
                raise Closed(None) from exc
            self.ws.receive_data(data)
            await self.absorb(list(self.ws.events()))
        return self.pending.pop(0)

    async def absorb(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, Message):
                self.frames += 1
                self.parts.append(event.data)
                if event.message_finished:
                    text = isinstance(event, TextMessage)
                    self.pending.append("".join(self.parts) if text else b"".join(self.parts))
                    self.parts = []
            elif isinstance(event, CloseConnection):
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await self.stream.send(self.ws.send(event.response()))
                raise Closed(event.code)

    async def close(self, code: int = 1000) -> None:
        await self.stream.send(self.ws.send(CloseConnection(code=code)))
        await self.aclose()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()


async def connect_wsproto(
    url_host: str,
    port: int,
    target: str,
    *,
    encoding: str = "json",
    compress: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    bare: bool = False,
) -> WsprotoClient:
    """Open a WebSocket to ``target`` with anyio + wsproto (``bare``: no User-Agent)."""
    if ssl_context is not None:
        stream: ByteStream = await anyio.connect_tcp(
            url_host, port, ssl_context=ssl_context, tls_standard_compatible=False
        )
    else:
        stream = await anyio.connect_tcp(url_host, port)
    ws = WSConnection(ConnectionType.CLIENT)
    # The fake refuses an upgrade without a User-Agent (require_user_agent), as a real
    # server does; websockets sends one of its own, so this client does too.
    headers = [] if bare else [USER_AGENT]
    request = Request(host=f"{url_host}:{port}", target=target, extra_headers=headers)
    await stream.send(ws.send(request))
    while True:
        ws.receive_data(await stream.receive())
        events = list(ws.events())
        for index, event in enumerate(events):
            if isinstance(event, AcceptConnection):
                client = WsprotoClient(stream, ws, encoding, compress)
                await client.absorb(events[index + 1 :])
                return client
