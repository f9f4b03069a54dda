"""The wire layer: socket bytes in, decoded gateway payloads out (and frames back).

Theory of operation: :class:`Wire` is the layer below ``GatewayConnection``. It
writes the HTTP upgrade request, reads the reply with wsproto (only the reply's
head is ever given to wsproto, so bytes read past the 101 go straight to the frame
reader), then parses frames with the lean :class:`~gateway_proto._frames.FrameReader`,
inflates binary messages (:mod:`gateway_proto.compression`) and decodes payloads
(:mod:`gateway_proto.codecs`): op 0 into :class:`~gateway_proto.events.Dispatch`
events, any other op into plain ``(op, d, s, t)`` tuples.

Parsing is on demand: :meth:`Wire.feed` only buffers the bytes (the handshake's
small reply head aside), and :meth:`Wire.next_item` parses exactly one message
(or wire event) each time it is called. The caller decodes a message, hands it
on and lets it go before the next one is decoded, as a bare
``decompress`` + ``loads`` loop does: a 64 KiB chunk holds about 330 messages,
and decoding them all before any is used keeps ~1.5 MB of fresh objects alive,
which costs more than all of this layer's own work.

It answers pings and the peer's close by itself, and every byte it wants sent is
appended to the connection's output buffer, in order. Peer faults never raise:
they come back as :class:`HandshakeRejected` or :class:`WireFailed` items, after
a close frame has been written with a code that keeps the session resumable
(1002, 1007 or 1009: never 1000/1001).

Per message, the hot path (a FIN binary frame, zlib-stream, JSON) costs one slice,
one ``decompress``, one ``loads``, one envelope check and one ``Dispatch``. When the
optional C extension :mod:`gateway_proto._speedups` is built, its ``Scanner`` holds
the input buffer and takes those common frames itself (:attr:`Wire.fast_next`),
whole zstd-stream and payload-compressed messages too, calling the same
``decompress``, ``loads`` and checks; the Python parser here then sees only what
it leaves, and stays the reference for both.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
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
from ._urls import host_of
from .codecs import MAX_SEQUENCE, JsonCodec, Payload, make_codec
from .codecs import _envelope as envelope
from .compression import (
    ZLIB_SUFFIX,
    PayloadInflater,
    ZlibStreamInflater,
    ZstdStreamInflater,
    make_inflater,
)
from .config import ShardConfig
from .errors import CompressionError, DecodeError, HandshakeError, ProtocolError
from .events import Dispatch

try:
    from ._speedups import Scanner as _Scanner
except ImportError:  # not compiled (see setup.py): the Python code below does it all
    _Scanner = None  # type: ignore[assignment,misc]

#: The C hot path's class, or ``None`` (not compiled, or switched off by a test).
Scanner: type[_Scanner] | None = _Scanner

__all__ = [
    "HandshakeAccepted",
    "HandshakeRejected",
    "Message",
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


#: A decoded gateway payload: op 0 as a :class:`Dispatch`, any other op as
#: ``(op, d, s, t)``.
Message = Dispatch | Payload
WireItem = Message | HandshakeAccepted | HandshakeRejected | PeerClosed | WireFailed

_NO_STATUS: Final = 1005
_FIN_TEXT: Final = 0x81  # first header byte: FIN, no reserved bits, text
_FIN_BINARY: Final = 0x82  # ... binary
_ZLIB_SUFFIX: Final = ZLIB_SUFFIX
#: An HTTP reply head longer than this is refused (h11's own default is 16 KiB).
_MAX_HANDSHAKE_SIZE: Final = 64 * 1024
_NO_ITEMS: Final[tuple[WireItem, ...]] = ()


# Dispatch (a frozen slotted dataclass) is built through its slot descriptors:
# about 150 ns instead of about 270 ns through the generated __init__ (which calls
# object.__setattr__ per field). Same object, same equality. The C hot path
# (_speedups.c) builds it the same way.
_new_object = object.__new__
_set_name = vars(Dispatch)["name"].__set__
_set_data = vars(Dispatch)["data"].__set__
_set_sequence = vars(Dispatch)["sequence"].__set__
_set_raw = vars(Dispatch)["raw"].__set__


def _as_item(payload: Payload, raw: bytes | None = None) -> Message:
    """Return op 0 as a :class:`Dispatch` (``raw``: its bytes, if kept), anything else as it is."""
    op, d, s, t = payload
    if op != 0:
        return payload
    event: Dispatch = _new_object(Dispatch)
    _set_name(event, t)
    _set_data(event, d)
    _set_sequence(event, s)
    _set_raw(event, raw)
    return event


def _envelope_item(obj: Any) -> Message:
    """Check an envelope the careful way and return it as an item (or raise)."""
    return _as_item(envelope(obj))


_zlib_error = ZlibStreamInflater.corrupt


def _json_error(exc: Exception) -> DecodeError:
    return DecodeError(f"invalid JSON payload ({exc.__class__.__name__})")


class _PlainInput:
    """The input buffer without the C hot path (the same attributes as its ``Scanner``)."""

    __slots__ = ("data", "fragmenting", "messages", "payload_bytes", "pos")

    def __init__(self) -> None:
        self.data = b""
        self.pos = 0
        self.fragmenting = False  # a fragmented message is in progress (careful path only)
        # Whole messages decoded, and their size after decompression (metrics).
        self.messages = 0
        self.payload_bytes = 0


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
        self._user_agent = config.user_agent
        self._out = out
        self._codec = make_codec(config.encoding, max_size=config.max_message_size)
        self._inflater = make_inflater(config.compression, config.max_message_size)
        self._reader = FrameReader(config.max_message_size)
        self._max_size = config.max_message_size
        self._keep_raw = config.keep_raw  # Dispatch.raw: the message's bytes, or None
        self._zlib = self._inflater if isinstance(self._inflater, ZlibStreamInflater) else None
        # What the inflater's decompress raises on corrupt input, and the error it
        # becomes (the C hot path's failures are mapped with them).
        self._inflate_error: type[Exception] | tuple[()] = ()
        self._corrupt: Callable[[Exception], CompressionError] | None = None
        if self._inflater is not None:
            self._inflate_error = self._inflater.error
            self._corrupt = self._inflater.corrupt
        # JSON is decoded inline on the hot path; ETF goes through its codec.
        self._loads = self._codec.loads if isinstance(self._codec, JsonCodec) else None
        # Input waiting to be parsed: ``_input.data[_input.pos:]`` holds whole frames
        # (and maybe the start of one more); ``_buffer`` an incomplete frame's
        # bytes, which wait there until ``_need`` bytes have arrived.
        self._input: _Scanner | _PlainInput = _PlainInput()
        #: The C hot path's ``next()`` (``None`` without it): see :meth:`next_item`.
        self.fast_next: Callable[[], WireItem | None] | None = None
        self._buffer = bytearray()
        self._need = 0
        self._opcode = OP_BINARY if self._codec.binary else OP_TEXT
        self._handshake: WSConnection | None = WSConnection(ConnectionType.CLIENT)
        self._head = bytearray()  # handshake bytes not yet given to wsproto
        self._open = False
        self._dead = False
        self._close_sent = False
        self._close_received = False
        self._set_up_input()
        self._parser = self._parse()

    def _set_up_input(self) -> None:
        """Make the input buffer: the C hot path's when it is built, else a plain one.

        Called again (before any input) by tools that swap the codec.
        """
        if Scanner is None:
            self._input = _PlainInput()
            self.fast_next = None
            return
        loads = self._loads
        inflater = self._inflater
        scanner = Scanner(
            decode=loads or self._decode_item,
            envelope=_envelope_item,
            on_error=self._fast_path_failed,
            max_size=self._max_size,
            inflate=inflater is not None,
            decoded=loads is None,
            zlib_stream=self._zlib,
            dispatch=Dispatch,
            keep_raw=self._keep_raw,
            zstd_stream=inflater if isinstance(inflater, ZstdStreamInflater) else None,
            payload=inflater if isinstance(inflater, PayloadInflater) else None,
        )
        self._input = scanner
        self.fast_next = scanner.next

    def _fast_path_failed(self, exc: BaseException) -> WireFailed:
        """Turn what the C hot path raised into the item the Python path gives, or raise it."""
        if isinstance(exc, ProtocolError):
            return self._failed(exc)
        if isinstance(exc, self._inflate_error) and self._corrupt is not None:
            return self._failed(self._corrupt(exc))
        if isinstance(exc, (ValueError, TypeError, RecursionError)) and self._loads is not None:
            return self._failed(_json_error(exc))
        raise exc  # as on the Python path: not the peer's fault, the connection's bug

    def _decode_item(self, message: bytes) -> Message:
        return _as_item(self._codec.decode(message), message if self._keep_raw else None)

    @property
    def parser(self) -> Iterator[WireItem | None]:
        """The Python parser behind :meth:`next_item`, for what :attr:`fast_next` leaves.

        ``next_item()`` is ``fast_next()``, then ``next(parser)`` if that gave
        ``None`` (or ``next(parser)`` alone without the C hot path). It never
        ends: it yields ``None`` whenever no whole item is buffered, and carries
        on from there after the next :meth:`feed`. Read it again after
        :meth:`discard`, which replaces it.
        """
        return self._parser

    @property
    def messages(self) -> int:
        """Whole messages decoded so far (each a gateway payload handed to the codec)."""
        return self._input.messages

    @property
    def payload_bytes(self) -> int:
        """The size of those messages after decompression (as handed to the codec), in bytes."""
        return self._input.payload_bytes

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

        No extension is offered: Discord does not use permessage-deflate. The
        ``User-Agent`` is ``config.user_agent`` (some servers refuse an upgrade
        without one).
        """
        assert self._handshake is not None, "initiate() is called once"
        parts = urlsplit(self._url)
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        agent = (b"User-Agent", self._user_agent.encode("ascii"))
        self._out += self._handshake.send(
            # Never a ``user:password@`` in the Host header.
            Request(
                host=host_of(parts.netloc),
                target=target,
                extensions=[],
                subprotocols=[],
                extra_headers=[agent],
            )
        )

    def feed(self, data: bytes) -> Sequence[WireItem]:
        """Buffer socket bytes for :meth:`next_item`; return the handshake's items, if any.

        Until the upgrade completes, the reply's head is parsed at once (it is small
        and rare) and :class:`HandshakeAccepted` or :class:`HandshakeRejected` comes
        back here; everything after it, and everything fed later, is only buffered:
        frames are parsed one at a time by :meth:`next_item`. Input after a close
        or a failure is ignored. Never raises for anything the peer sends.
        """
        if self._dead:
            return _NO_ITEMS
        items: Sequence[WireItem] = _NO_ITEMS
        if not self._open:
            got: list[WireItem] = []
            data = self._receive_handshake(data, got)
            items = got
            if not self._open or not data:
                return items
        buffer = self._buffer
        if buffer:
            # An incomplete frame waits in the buffer; it is joined once, when whole
            # (its size is known from the header), so a several-MB READY arriving
            # in 64 KiB chunks is copied once, not once per chunk.
            buffer += data
            if len(buffer) < self._need:
                return items
            data = bytes(buffer)
            buffer.clear()
        else:
            held = self._input
            if held.pos < len(held.data):
                # Unparsed bytes still wait (fed twice without draining): keep them first.
                data = held.data[held.pos :] + data
        self._input.data = data
        self._input.pos = 0
        return items

    def next_item(self) -> WireItem | None:
        """Parse buffered bytes up to the next payload or wire event; ``None`` when none is whole.

        Never raises for anything the peer sends: a broken frame, compression,
        payload or size is a :class:`WireFailed` (after which all input is
        ignored), the peer's close a :class:`PeerClosed` (the same). May append
        pongs and close frames to the output buffer. The connection's hot path
        does the same inline: :attr:`fast_next`, then ``next(parser)``.
        """
        fast = self.fast_next
        if fast is not None:
            item = fast()
            if item is not None:
                return item
        return next(self._parser)

    def _parse(self) -> Generator[WireItem | None, None, None]:
        """Yield the next item per resumption (``None``: no whole item is buffered).

        A generator so that everything the hot path needs stays in local
        variables between messages. The hot path (a whole FIN text/binary frame,
        zlib-stream with the suffix and nothing pending, JSON) is inlined here;
        anything unusual goes to :meth:`_next_careful`, which follows wsproto.
        With the C hot path built, it only sees the frames that ``fast_next()``
        left; the input position is re-read after every yield, as
        ``fast_next()`` or :meth:`feed` may have moved it meanwhile.
        """
        max_size = self._max_size
        limit = max_size + 1
        zlib_stream = self._zlib
        decompress = None if zlib_stream is None else zlib_stream.decompress
        # The inflater's own buffer (the same bytearray for its whole life): while
        # it holds part of a payload, messages must go through feed().
        z_pending = bytearray() if zlib_stream is None else zlib_stream.pending
        inflate = None if self._inflater is None else self._inflater.feed
        # zstd-stream: a message short enough for one decompress call (nearly all)
        # is inflated here, as ZstdStreamInflater.feed would; longer ones go to feed.
        zstd = self._inflater if isinstance(self._inflater, ZstdStreamInflater) else None
        zstd_decompress = None if zstd is None else zstd.decompress
        zstd_one_slice = 0 if zstd is None else zstd.one_slice
        inflate_error = self._inflate_error
        corrupt = self._corrupt
        loads = self._loads
        decode = self._codec.decode
        careful = self._next_careful
        failed = self._failed
        as_item = _as_item
        new_object = _new_object
        set_name = _set_name
        set_data = _set_data
        set_sequence = _set_sequence
        set_raw = _set_raw
        keep_raw = self._keep_raw
        s_limit = MAX_SEQUENCE + 1
        held = self._input
        while True:
            data = held.data
            pos = held.pos
            size = len(data)
            while size - pos > 1 and not held.fragmenting:
                first = data[pos]
                if first != _FIN_BINARY and first != _FIN_TEXT:  # noqa: PLR1714 - no tuple
                    break
                length = data[pos + 1]
                if length < 126:
                    start = pos + 2
                elif length == 126:
                    start = pos + 4
                    if start > size:
                        break
                    length = (data[pos + 2] << 8) | data[pos + 3]
                    if length < 126:
                        break  # not minimal: the careful path refuses it
                elif length == 127:
                    start = pos + 10
                    if start > size:
                        break
                    length = int.from_bytes(data[pos + 2 : start], "big")
                    if length < 65536 or length >> 63:
                        break
                else:
                    break  # masked: the careful path refuses it
                end = start + length
                if end > size or length > max_size:
                    break  # incomplete (buffered by the careful path), or too large
                held.pos = pos = end
                message = data[start:end]
                try:
                    if first == _FIN_BINARY and inflate is not None:
                        if (
                            decompress is not None
                            and message[-4:] == _ZLIB_SUFFIX
                            and not z_pending
                        ):
                            try:
                                message = decompress(message, limit)
                            except zlib.error as exc:
                                raise _zlib_error(exc) from None
                            if len(message) > max_size or not message:
                                zlib_stream.check(message)  # type: ignore[union-attr]
                        elif zstd_decompress is not None and length <= zstd_one_slice:
                            try:
                                message = zstd_decompress(message)
                            except inflate_error as exc:
                                raise corrupt(exc) from None  # type: ignore[misc]
                            if len(message) > max_size:
                                zstd.refuse(len(message))  # type: ignore[union-attr]
                        else:
                            inflated = inflate(message)
                            if inflated is None:
                                continue  # the payload goes on in the next message
                            message = inflated
                    # For metrics: an integer add each, the least a count can cost.
                    held.messages += 1
                    held.payload_bytes += len(message)
                    if loads is None:
                        item = as_item(decode(message), message if keep_raw else None)
                    else:
                        try:
                            obj = loads(message)
                        except (ValueError, TypeError, RecursionError) as exc:
                            raise _json_error(exc) from None
                        # Free the inflated bytes now (unless kept), not after the next
                        # message is inflated: malloc then reuses the same, cache-hot block.
                        raw = message if keep_raw else None
                        del message
                        # Discord always sends all four keys: subscripts are cheaper
                        # than get(); anything else gets the careful envelope check.
                        try:
                            op = obj["op"]
                            s = obj["s"]
                            t = obj["t"]
                            d = obj["d"]
                        except (KeyError, TypeError, IndexError):
                            item = as_item(envelope(obj), raw)  # raises the precise DecodeError
                        else:
                            if (
                                op.__class__ is not int
                                or obj.__class__ is not dict
                                or not (s is None or (s.__class__ is int and -1 < s < s_limit))
                                or not (t is None or t.__class__ is str)
                            ):
                                item = as_item(envelope(obj), raw)
                            elif op != 0:
                                item = (op, d, s, t)
                            elif t is not None:
                                item = new_object(Dispatch)  # _as_item(), inlined
                                set_name(item, t)
                                set_data(item, d)
                                set_sequence(item, s)
                                set_raw(item, raw)
                            else:
                                # raises: a dispatch needs a name
                                item = as_item(envelope(obj), raw)
                except ProtocolError as exc:
                    yield failed(exc)  # input is dropped: reload below
                    break
                yield item
                data = held.data  # moved on by fast_next() or feed() meanwhile?
                pos = held.pos
                size = len(data)
            else:
                yield careful()  # less than a header left, or a fragmented message
                continue
            if held.pos == pos:
                yield careful()  # an unusual frame at ``pos`` (else: it failed)

    def receive(self, data: bytes) -> list[WireItem]:
        """Feed socket bytes and return everything they complete, in order (eagerly).

        :meth:`feed` followed by :meth:`next_item` until it returns ``None``; the
        connection pulls one item at a time instead, so this is for tests and tools.
        """
        items = list(self.feed(data))
        pull = self.next_item
        while (item := pull()) is not None:
            items.append(item)
        return items

    def _next_careful(self) -> WireItem | None:
        """Take the careful path: control frames, fragments, partial frames, framing errors."""
        if self._dead:
            return None
        reader = self._reader
        held = self._input
        data = held.data
        size = len(data)
        pos = held.pos
        need = 0
        try:
            while True:
                if size - pos < 2:
                    need = 2
                    break
                frames: list[tuple[int, bytes]] = []
                consumed = reader.frame(data, pos, frames)
                if consumed < 0:
                    need = -consumed
                    break
                held.pos = pos = consumed
                held.fragmenting = reader.fragmenting
                if reader.error is not None:
                    raise reader.error
                for opcode, message in frames:  # at most one: a frame completes one thing
                    if opcode < OP_CLOSE:  # a whole text or binary message
                        payload = self._message(opcode, message)
                        if payload is not None:
                            return payload
                    else:
                        item = self._control(opcode, message)
                        if item is not None:
                            return item
                # A ping, a pong, a fragment or part of a zlib payload: read on.
        except ProtocolError as exc:
            return self._failed(exc)
        # The frame at ``pos`` is incomplete: keep only its bytes, until it is whole.
        self._need = need
        if pos < size:
            self._buffer += memoryview(data)[pos:]
        self._drop_input()
        return None

    def _drop_input(self) -> None:
        self._input.data = b""
        self._input.pos = 0

    def discard(self) -> None:
        """Forget buffered input and ignore all further input (the connection is closed)."""
        self._dead = True
        self._drop_input()
        self._buffer.clear()
        # The parser may hold the dropped bytes in its locals: start a new one.
        self._parser = self._parse()

    def _message(self, opcode: int, message: bytes) -> Message | None:
        """Inflate (binary messages only) and decode one whole message (the careful path)."""
        if opcode == OP_BINARY and self._inflater is not None:
            inflated = self._inflater.feed(message)
            if inflated is None:
                return None
            message = inflated
        held = self._input
        held.messages += 1
        held.payload_bytes += len(message)
        return _as_item(self._codec.decode(message), message if self._keep_raw else None)

    def _control(self, opcode: int, payload: bytes) -> PeerClosed | None:
        """Handle a ping, pong or close; a close returns :class:`PeerClosed` and ends input."""
        if opcode == OP_PING:
            if not self._close_sent:
                self._out += build_frame(OP_PONG, payload)
            return None
        if opcode == OP_CLOSE:
            code, reason = parse_close(payload)  # the reader validated it already
            self._close_received = True
            self.discard()
            peer_code = None if code == _NO_STATUS else code
            if not self._close_sent:
                # Echo the peer's code and reason (RFC 6455 5.5.1, as wsproto's
                # response() does); an empty close answers an empty one.
                self._close_sent = True
                self._out += build_close(peer_code, reason)
            return PeerClosed(peer_code, reason)
        return None  # a pong: nothing to do (the gateway heartbeats in payloads)

    def _failed(self, error: ProtocolError) -> WireFailed:
        self.discard()
        self.send_close(error.close_code)
        return WireFailed(error)

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
