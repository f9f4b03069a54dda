"""The wire layer: socket bytes in, decoded gateway payloads out (and frames back).

Theory of operation: :class:`Wire` is the layer below ``GatewayConnection``. It
writes the HTTP upgrade request, reads the reply with wsproto (only the reply's
head is ever given to wsproto, so bytes read past the 101 go straight to the frame
reader), then parses frames with the lean :class:`~gateway_proto._frames.FrameReader`,
inflates binary messages (:mod:`gateway_proto.compression`) and decodes payloads
(:mod:`gateway_proto.codecs`) into plain ``(op, d, s, t)`` tuples.

It answers pings and the peer's close by itself, and every byte it wants sent is
appended to the connection's output buffer, in order. Peer faults never raise:
they come back as :class:`HandshakeRejected` or :class:`WireFailed` items, after
a close frame has been written with a code that keeps the session resumable
(1002, 1007 or 1009: never 1000/1001).

Per message, the hot path (a FIN binary frame, zlib-stream, JSON) costs one slice,
one ``decompress``, one ``loads``, one envelope check and one tuple: no object
allocation that the caller does not keep.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    build_close,
    build_frame,
    parse_close,
)
from .codecs import JsonCodec, Payload, make_codec
from .codecs import _envelope as envelope
from .compression import ZLIB_SUFFIX, ZlibStreamInflater, make_inflater
from .config import ShardConfig
from .errors import CompressionError, DecodeError, HandshakeError, ProtocolError

__all__ = [
    "HandshakeAccepted",
    "HandshakeRejected",
    "Payload",
    "PeerClosed",
    "Wire",
    "WireFailed",
    "WireItem",
]


@dataclass(frozen=True, slots=True)
class HandshakeAccepted:
    """The server answered the upgrade with 101: the WebSocket is open."""


@dataclass(frozen=True, slots=True)
class HandshakeRejected:
    """The upgrade failed: a non-101 answer (``status_code``) or a broken HTTP reply (0)."""

    status_code: int
    error: HandshakeError


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer's close frame arrived (``code`` is ``None`` when it carried none).

    The wire has already written the close reply if ours was not sent yet.
    """

    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class WireFailed:
    """The peer broke framing, compression, encoding or a size cap.

    The wire has already written a close frame with ``error.close_code`` and
    ignores all further input.
    """

    error: ProtocolError


WireItem = Payload | HandshakeAccepted | HandshakeRejected | PeerClosed | WireFailed

_NO_STATUS: Final = 1005
_FIN_TEXT: Final = 0x81  # first header byte: FIN, no reserved bits, text
_FIN_BINARY: Final = 0x82  # ... binary
_ZLIB_SUFFIX: Final = ZLIB_SUFFIX
#: An HTTP reply head longer than this is refused (h11's own default is 16 KiB).
_MAX_HANDSHAKE_SIZE: Final = 64 * 1024


class _HandshakeBroken(Exception):
    """The upgrade reply cannot be parsed (internal)."""


class Wire:
    """One WebSocket's bytes: handshake, frames, decompression and the payload codec.

    Args:
        config: the shard's configuration (encoding, compression, size cap).
        url: the full ``ws(s)://`` URL, query string included.
        out: the connection's output buffer; every byte to send is appended to it.

    Raises:
        ImportError: ETF without ``erlpack``, or zstd-stream without ``zstandard``
            (the message names the extra to install).

    """

    def __init__(self, config: ShardConfig, url: str, out: bytearray) -> None:
        self._url = url
        self._out = out
        self._codec = make_codec(config.encoding, max_size=config.max_message_size)
        self._inflater = make_inflater(config.compression, config.max_message_size)
        self._reader = FrameReader(config.max_message_size)
        self._max_size = config.max_message_size
        self._zlib = self._inflater if isinstance(self._inflater, ZlibStreamInflater) else None
        # JSON is decoded inline on the hot path; ETF goes through its codec.
        self._loads = self._codec.loads if isinstance(self._codec, JsonCodec) else None
        self._buffer = bytearray()  # an incomplete frame's bytes
        self._need = 0  # how many buffered bytes that frame needs
        self._opcode = OP_BINARY if self._codec.binary else OP_TEXT
        self._handshake: WSConnection | None = WSConnection(ConnectionType.CLIENT)
        self._head = bytearray()  # handshake bytes not yet given to wsproto
        self._open = False
        self._dead = False
        self._close_sent = False
        self._close_received = False

    @property
    def close_sent(self) -> bool:
        """Whether a close frame has been written to the output buffer."""
        return self._close_sent

    @property
    def close_received(self) -> bool:
        """Whether the peer's close frame has arrived."""
        return self._close_received

    def initiate(self) -> None:
        """Append the HTTP upgrade request (``GET`` with the URL's path and query) to ``out``.

        No extension is offered: Discord does not use permessage-deflate.
        """
        assert self._handshake is not None, "initiate() is called once"
        parts = urlsplit(self._url)
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        self._out += self._handshake.send(
            Request(host=parts.netloc, target=target, extensions=[], subprotocols=[])
        )

    def receive(self, data: bytes) -> list[WireItem]:
        """Feed socket bytes; return the payloads and wire events they complete, in order.

        Never raises for anything the peer sends: a broken handshake is a
        :class:`HandshakeRejected`, a broken frame, compression, payload or size a
        :class:`WireFailed` (after which all input is ignored), the peer's close a
        :class:`PeerClosed` (after which all input is ignored too). May append
        pongs and close frames to the output buffer.
        """
        if self._dead:
            return []
        items: list[WireItem] = []
        if not self._open:
            data = self._receive_handshake(data, items)
            if not self._open or not data:
                return items
        # Frames are parsed straight from ``data``; only an incomplete frame's
        # bytes are kept, and they are joined once the frame is whole.
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return items
            data = bytes(buffer)
            buffer.clear()
        append = items.append
        reader = self._reader
        fragmenting = reader.fragmenting
        max_size = self._max_size
        limit = max_size + 1
        zlib_stream = self._zlib
        decompress = None if zlib_stream is None else zlib_stream.decompress
        inflate = None if self._inflater is None else self._inflater.feed
        loads = self._loads
        size = len(data)
        pos = 0
        need = 0
        try:
            while pos < size:
                if size - pos < 2:
                    need = 2
                    break
                first = data[pos]
                if _FIN_TEXT <= first <= _FIN_BINARY and not fragmenting:
                    # The hot path: a whole, unfragmented text or binary frame, parsed
                    # inline; anything unusual falls through to the careful reader.
                    length = data[pos + 1]
                    if length < 126:
                        start = pos + 2
                    elif length == 126:
                        start = pos + 4
                        if start > size:
                            need = 4
                            break
                        length = int.from_bytes(data[pos + 2 : start], "big")
                        if length < 126:
                            length = -1  # not minimal: the careful reader refuses it
                    elif length == 127:
                        start = pos + 10
                        if start > size:
                            need = 10
                            break
                        length = int.from_bytes(data[pos + 2 : start], "big")
                        if length < 65536 or length >> 63:
                            length = -1
                    else:
                        length = -1  # masked: the careful reader refuses it
                    if 0 <= length <= max_size:
                        end = start + length
                        if end > size:
                            need = end - pos
                            break
                        message = data[start:end]
                        pos = end
                        if first == _FIN_BINARY and inflate is not None:
                            if (
                                decompress is not None
                                and message[-4:] == _ZLIB_SUFFIX
                                and not zlib_stream.pending  # type: ignore[union-attr]
                            ):
                                try:
                                    message = decompress(message, limit)
                                except zlib.error as exc:
                                    raise CompressionError(
                                        f"corrupt zlib-stream data: {exc}"
                                    ) from None
                                if len(message) > max_size or not message:
                                    zlib_stream.check(message)  # type: ignore[union-attr]
                            else:
                                inflated = inflate(message)
                                if inflated is None:
                                    continue  # the payload goes on in the next message
                                message = inflated
                        if loads is None:
                            append(self._codec.decode(message))
                            continue
                        try:
                            obj = loads(message)
                        except (ValueError, TypeError, RecursionError) as exc:
                            raise DecodeError(
                                f"invalid JSON payload ({exc.__class__.__name__})"
                            ) from None
                        if obj.__class__ is dict:
                            op = obj.get("op")
                            s = obj.get("s")
                            t = obj.get("t")
                            if (
                                op.__class__ is int
                                and (s is None or s.__class__ is int)
                                and (t is None or t.__class__ is str)
                            ):
                                append((op, obj.get("d"), s, t))
                                continue
                        append(envelope(obj))  # raises the precise DecodeError
                        continue
                # The careful path: control frames, fragments, every framing error.
                frames: list[tuple[int, bytes]] = []
                consumed = reader.frame(data, pos, frames)
                if consumed < 0:
                    need = -consumed
                    break
                pos = consumed
                for opcode, message in frames:
                    if opcode < OP_CLOSE:  # a whole text or binary message
                        payload = self._message(opcode, message)
                        if payload is not None:
                            append(payload)
                    elif self._control(opcode, message, append):
                        return items
                if reader.error is not None:
                    raise reader.error
                fragmenting = reader.fragmenting
        except ProtocolError as exc:
            self._failed(exc, append)
            return items
        self._need = need
        if pos < size:
            buffer += memoryview(data)[pos:]
        return items

    def _message(self, opcode: int, message: bytes) -> Payload | None:
        """Inflate (binary messages only) and decode one whole message (the careful path)."""
        if opcode == OP_BINARY and self._inflater is not None:
            inflated = self._inflater.feed(message)
            if inflated is None:
                return None
            message = inflated
        return self._codec.decode(message)

    def _control(self, opcode: int, payload: bytes, append: Callable[[WireItem], None]) -> bool:
        """Handle a ping, pong or close; return ``True`` when input must stop (a close)."""
        if opcode == OP_PING:
            if not self._close_sent:
                self._out += build_frame(OP_PONG, payload)
            return False
        if opcode == OP_CLOSE:
            code, reason = parse_close(payload)  # the reader validated it already
            self._close_received = True
            self._dead = True
            peer_code = None if code == _NO_STATUS else code
            if not self._close_sent:
                # Echo the peer's code and reason (RFC 6455 5.5.1, as wsproto's
                # response() does); an empty close answers an empty one.
                self._close_sent = True
                self._out += build_close(peer_code, reason)
            append(PeerClosed(peer_code, reason))
            return True
        return False  # a pong: nothing to do (the gateway heartbeats in payloads)

    def _failed(self, error: ProtocolError, append: Callable[[WireItem], None]) -> None:
        self._dead = True
        self.send_close(error.close_code)
        append(WireFailed(error))

    def _receive_handshake(self, data: bytes, items: list[WireItem]) -> bytes:
        """Feed the HTTP reply to wsproto, never past its end; return the bytes after it.

        wsproto only ever sees the response head: everything after the blank line
        that ends a 101 reply is WebSocket data, which goes to the frame reader, so
        no over-read byte is lost or parsed twice.
        """
        ws = self._handshake
        assert ws is not None, "receive() before initiate()"
        head = self._head
        head += data
        try:
            while True:
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    if len(head) > _MAX_HANDSHAKE_SIZE:
                        raise _HandshakeBroken(f"no end of the HTTP reply in {len(head)} bytes")
                    return b""
                ws.receive_data(bytes(head[: end + 4]))
                del head[: end + 4]
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        self._open = True
                        self._handshake = None
                        items.append(HandshakeAccepted())
                        rest = bytes(head)
                        head.clear()
                        return rest
                    if isinstance(event, RejectConnection):
                        self._dead = True
                        status = event.status_code
                        items.append(
                            HandshakeRejected(
                                status,
                                HandshakeError(
                                    f"the WebSocket upgrade was refused with HTTP {status}",
                                    status_code=status,
                                ),
                            )
                        )
                        return b""
        except (RemoteProtocolError, h11.ProtocolError, _HandshakeBroken) as exc:
            self._dead = True
            items.append(
                HandshakeRejected(0, HandshakeError(f"a broken WebSocket upgrade reply: {exc}"))
            )
            return b""

    def encode(self, op: int, d: Any) -> bytes:
        """Encode one outbound payload ``{"op": op, "d": d}`` with the configured codec.

        Raises:
            InvalidCommandError: over 4096 bytes, or not encodable; the message
                gives the size and the limit, never the payload (it may hold the token).

        """
        return self._codec.encode(op, d)

    def write_message(self, encoded: bytes) -> None:
        """Append ``encoded`` as one masked frame (text: JSON, binary: ETF; never compressed)."""
        self._out += build_frame(self._opcode, encoded)

    def send_close(self, code: int, reason: str = "") -> None:
        """Append a close frame with ``code`` and ``reason``, once (later calls do nothing).

        Before the handshake completes there is no WebSocket to close: nothing is
        written, but the close counts as sent.
        """
        if self._close_sent:
            return
        self._close_sent = True
        if self._open:
            self._out += build_close(code, reason)
