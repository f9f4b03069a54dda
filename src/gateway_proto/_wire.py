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
``decompress``, ``loads`` and checks; the Python parser (in
:mod:`gateway_proto._wire_reader`) then sees only what it leaves, and stays the
reference for both.

The layer is four parts, one job each, stacked by plain inheritance into the
one :class:`Wire` object (so the hot path costs what it did as one class):
:mod:`gateway_proto._wire_writer` writes frames (payloads, our close),
:mod:`gateway_proto._handshake` does the upgrade,
:mod:`gateway_proto._wire_reader` reads frames (the Python parser, the careful
path, pongs and close replies), and this module builds the object and its
input buffer (the C ``Scanner`` or the plain one). :mod:`gateway_proto._wire_items`
holds the types the layer hands up; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from wsproto import ConnectionType, WSConnection

from ._frames import OP_BINARY, OP_TEXT, FrameReader
from ._wire_items import (
    HandshakeAccepted,
    HandshakeRejected,
    Message,
    PeerClosed,
    WireFailed,
    WireItem,
)
from ._wire_reader import WireReader, _envelope_item, _PlainInput
from .codecs import JsonCodec, Payload, make_codec
from .compression import PayloadInflater, ZlibStreamInflater, ZstdStreamInflater, make_inflater
from .config import ShardConfig
from .errors import CompressionError
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
    "PayloadMeter",
    "PeerClosed",
    "Wire",
    "WireFailed",
    "WireItem",
]


class PayloadMeter(Protocol):
    """Counts the bytes of the messages decoded (the wire's input buffer, C or Python)."""

    @property
    def payload_bytes(self) -> int:
        """Bytes of the messages decoded so far, after decompression."""


class Wire(WireReader):
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
        #: The C hot path's ``run()`` (``None`` without it): see ``take_dispatches``.
        self.fast_run: Callable[..., tuple[int, int, Any]] | None = None
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
            self.fast_next = self.fast_run = None
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
        self.fast_run = scanner.run

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
    def meter(self) -> PayloadMeter:
        """What counts :attr:`payload_bytes` (an attribute of that name): for per-event reads."""
        return self._input

    @property
    def close_sent(self) -> bool:
        """Whether a close frame has been written to the output buffer."""
        return self._close_sent

    @property
    def close_received(self) -> bool:
        """Whether the peer's close frame has arrived."""
        return self._close_received
