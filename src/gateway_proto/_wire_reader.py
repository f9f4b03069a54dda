"""Reading frames: buffered socket bytes to decoded payloads and wire events (the hot path).

One job: input. :meth:`WireReader.feed` buffers (after the handshake's reply
head), :meth:`WireReader.next_item` parses one message per call: the inlined
hot path in :meth:`WireReader._parse` (a whole FIN text or binary frame,
inflated, decoded, its envelope checked, op 0 built into a ``Dispatch``), the
careful path for the rest (control frames, fragments, partial frames, framing
errors: :class:`~gateway_proto._frames.FrameReader`), and the answers reading
owes: pongs and the reply to the peer's close. With the C extension built, its
``Scanner`` takes the common frames first and this code sees what it leaves;
this code stays the reference (``_speedups.c`` makes the same decisions).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameReader,
    build_close,
    build_frame,
    parse_close,
)
from ._handshake import Handshake
from ._wire_items import Message, PeerClosed, WireFailed, WireItem
from .codecs import MAX_SEQUENCE, Payload
from .codecs import _envelope as envelope
from .compression import ZLIB_SUFFIX, PayloadInflater, ZlibStreamInflater, ZstdStreamInflater
from .errors import CompressionError, DecodeError, ProtocolError
from .events import Dispatch, Event

if TYPE_CHECKING:
    from ._speedups import Scanner as _Scanner

__all__ = ["WireReader"]

_NO_STATUS: Final = 1005
_FIN_TEXT: Final = 0x81  # first header byte: FIN, no reserved bits, text
_FIN_BINARY: Final = 0x82  # ... binary
_ZLIB_SUFFIX: Final = ZLIB_SUFFIX
_NO_ITEMS: Final[tuple[WireItem, ...]] = ()


# A Dispatch (a frozen slotted dataclass) is built without its __init__, which calls
# object.__setattr__ per field. The C hot path sets the slots through their
# descriptors; from Python, four descriptor calls cost about twice as much as four
# plain stores into a _Building (Dispatch's very slots, so the same layout) followed
# by a class change to Dispatch: same object, same type. The probe below falls back
# to the descriptors on an interpreter that refuses the class change.
_new_object = object.__new__
_set_name = vars(Dispatch)["name"].__set__
_set_data = vars(Dispatch)["data"].__set__
_set_sequence = vars(Dispatch)["sequence"].__set__
_set_raw = vars(Dispatch)["raw"].__set__


class _Building(Event):
    """A :class:`Dispatch` being built: the same slots, without the frozen ``__setattr__``."""

    __slots__ = Dispatch.__slots__

    name: str
    data: Any
    sequence: int | None
    raw: bytes | None


def _new_dispatch(name: str, data: Any, sequence: int | None, raw: bytes | None) -> Dispatch:
    """Return ``Dispatch(name, data, sequence, raw)`` as the hot path builds it."""
    event = _new_object(_Building)
    event.name = name
    event.data = data
    event.sequence = sequence
    event.raw = raw
    event.__class__ = Dispatch  # type: ignore[assignment]
    return event  # type: ignore[return-value]


def _swap_works() -> bool:
    """Whether this interpreter lets a :class:`_Building` become a :class:`Dispatch`."""
    try:
        probe = _new_dispatch("PROBE", {}, 1, b"")
    except TypeError:  # pragma: no cover - CPython allows it (same slots, same base)
        return False
    return type(probe) is Dispatch and probe == Dispatch("PROBE", {}, 1, b"") and probe.raw == b""


#: Build dispatches through :class:`_Building` (else through the slot descriptors).
_SWAP: Final = _swap_works()


def _as_item(payload: Payload, raw: bytes | None = None) -> Message:
    """Return op 0 as a :class:`Dispatch` (``raw``: its bytes, if kept), anything else as it is."""
    op, d, s, t = payload
    if op != 0:
        return payload
    if _SWAP:
        return _new_dispatch(t, d, s, raw)  # type: ignore[arg-type] # op 0: t is a str
    event: Dispatch = _new_object(Dispatch)  # without the class change
    _set_name(event, t)
    _set_data(event, d)
    _set_sequence(event, s)
    _set_raw(event, raw)
    return event


def _envelope_item(obj: Any) -> Message:
    """Check an envelope the careful way and return it as an item (or raise)."""
    return _as_item(envelope(obj))


_zlib_corrupt = ZlibStreamInflater.corrupt


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


class WireReader(Handshake):
    """The wire's input side (a part of :class:`~gateway_proto._wire.Wire`)."""

    # Set by Wire.__init__.
    _inflater: ZlibStreamInflater | ZstdStreamInflater | PayloadInflater | None
    _reader: FrameReader
    _max_size: int
    _keep_raw: bool
    _zlib: ZlibStreamInflater | None
    _inflate_error: type[Exception] | tuple[()]
    _corrupt: Callable[[Exception], CompressionError] | None
    _loads: Callable[[bytes], Any] | None
    _input: _Scanner | _PlainInput
    fast_next: Callable[[], WireItem | None] | None
    _buffer: bytearray
    _need: int
    _close_received: bool
    _parser: Generator[WireItem | None, None, None]

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
            # (its size is known from the header), with the read that completes it:
            # a several-MB READY in 64 KiB chunks is copied once, and so is that read.
            if len(buffer) + len(data) < self._need:
                buffer += data
                return items
            data = b"".join((buffer, data))
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
        zlib_error = () if zlib_stream is None else zlib_stream.error
        # The inflater's own buffer (the same bytearray for its whole life): while
        # it holds part of a payload, messages must go through feed().
        z_pending = bytearray() if zlib_stream is None else zlib_stream.pending
        inflate = None if self._inflater is None else self._inflater.feed
        # zstd-stream: a message short enough for one decompress call (nearly all)
        # is inflated here, as ZstdStreamInflater.feed would; longer ones go to feed.
        zstd = self._inflater if isinstance(self._inflater, ZstdStreamInflater) else None
        zstd_decompress = None if zstd is None else zstd.decompress
        zstd_one_slice = -1 if zstd is None else zstd.one_slice
        inflate_error = self._inflate_error
        corrupt = self._corrupt
        loads = self._loads
        decode = self._codec.decode
        careful = self._next_careful
        failed = self._failed
        as_item = _as_item
        new_object = _new_object
        swap = _SWAP
        zero = 0
        building = _Building
        dispatch = Dispatch
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
            if held.fragmenting:  # only the careful path starts or ends one
                yield careful()
                continue
            while size - pos > 1:
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
                        if length <= zstd_one_slice:  # zstd-stream only (else -1)
                            try:
                                message = zstd_decompress(message)  # type: ignore[misc]
                            except inflate_error as exc:
                                raise corrupt(exc) from None  # type: ignore[misc]
                            if len(message) > max_size:
                                zstd.refuse(len(message))  # type: ignore[union-attr]
                        elif (
                            decompress is not None
                            and message[-4:] == _ZLIB_SUFFIX
                            and not z_pending
                        ):
                            try:
                                message = decompress(message, limit)
                            except zlib_error as exc:
                                raise _zlib_corrupt(exc) from None
                            if len(message) > max_size or not message:
                                zlib_stream.check(message)  # type: ignore[union-attr]
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
                            # The usual dispatch first, in the fewest tests: ``op is zero``
                            # holds for the int 0 alone (CPython's one cached 0: False and
                            # 0.0 are other objects), and a payload failing any test here
                            # gets the full check below: these tests need only be sufficient.
                            if (
                                op is zero
                                and t.__class__ is str
                                and s.__class__ is int
                                and -1 < s < s_limit
                            ):  # and obj is a dict: loads gives nothing else a str indexes
                                if swap:  # _as_item(), inlined
                                    built = new_object(building)
                                    built.name = t
                                    built.data = d
                                    built.sequence = s
                                    built.raw = raw
                                    built.__class__ = dispatch  # type: ignore[assignment]
                                    item = built  # type: ignore[assignment]
                                else:  # the interpreter refused the class change
                                    item = new_object(dispatch)
                                    set_name(item, t)
                                    set_data(item, d)
                                    set_sequence(item, s)
                                    set_raw(item, raw)
                            elif (
                                op.__class__ is not int
                                or obj.__class__ is not dict
                                or not (s is None or (s.__class__ is int and -1 < s < s_limit))
                                or not (t is None or t.__class__ is str)
                                or op == 0  # a dispatch without a sequence, or a name (raises)
                            ):
                                item = as_item(envelope(obj), raw)
                            else:
                                item = (op, d, s, t)
                except ProtocolError as exc:
                    yield failed(exc)  # input is dropped: reload below
                    break
                yield item
                data = held.data  # moved on by fast_next() or feed() meanwhile?
                pos = held.pos
                size = len(data)
            else:
                yield careful()  # less than a header left
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
