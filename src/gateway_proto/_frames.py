"""A lean WebSocket frame reader (server to client) and writer (client to server).

Theory of operation: :meth:`FrameReader.feed` takes socket bytes and returns the
*whole* messages and control frames they complete, as ``(opcode, payload)``
tuples. The hot path is one loop over a ``bytes`` object: a FIN text/binary frame
with no reserved bits, no mask and no fragmentation in progress costs a header
check and one slice. Everything else (control frames, fragments, every error)
goes through :meth:`FrameReader._frame`, which follows wsproto's rules and order
of checks exactly, because wsproto is this reader's oracle: the differential
test feeds both the same bytes in any chunking and expects the same messages,
closes and errors.

Input is kept only while a frame is incomplete, and only once: bytes are
buffered until the buffered frame is whole (its length is known from the
header), so a several-MB READY arriving in 64 KiB chunks is copied once, not
once per chunk.

Errors: the reader never raises. It stops at the first broken frame and sets
:attr:`FrameReader.error` (a :class:`~gateway_proto.errors.ProtocolError` with
the close code wsproto would use: 1002, 1007 for bad UTF-8, and 1009 for a
message over ``max_size``, which is our own cap). The frames before it are
still returned. After a close frame, nothing more is parsed (as in wsproto).

A fragmented message is gathered into one ``bytearray``, so it costs about its
own size however many frames carry it. The size cap counts every fragment as at
least :data:`MIN_FRAGMENT_CHARGE` bytes: empty or tiny fragments, which cost a
parse each but no buffer space, cannot go on without end (at most
``max_size // 64`` fragments per message: about a million at the default cap,
and 1 KiB fragments of a 20 MB message count at their own size).

Text payloads are returned as UTF-8 *bytes*; an unfragmented text frame is not
validated here (the JSON codec does it, with the same close code, 1007), a
fragmented one is, fragment by fragment, as wsproto does.
"""

from __future__ import annotations

import codecs
import os
from typing import Final

from wsproto.frame_protocol import CloseReason

from .errors import MessageTooLargeError, ProtocolError

__all__ = [
    "MIN_FRAGMENT_CHARGE",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "build_close",
    "build_frame",
    "parse_close",
]

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

_VALID_OPCODES: Final = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))
# First header byte of the hot path: FIN set, no RSV bits, text or binary.
_FIN_TEXT: Final = 0x81
_FIN_BINARY: Final = 0x82
_KNOWN_CLOSE_CODES: Final = frozenset(int(code) for code in CloseReason)
_LOCAL_ONLY_CLOSE_CODES: Final = frozenset((1005, 1006, 1015))
_NO_STATUS: Final = 1005
_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")
#: The fewest bytes a fragment of a fragmented message counts for against the cap.
MIN_FRAGMENT_CHARGE: Final = 64


def _fail(message: str, code: int = 1002) -> ProtocolError:
    return ProtocolError(f"WebSocket framing: {message}", close_code=code)


def parse_close(payload: bytes) -> tuple[int, str]:
    """Parse a close frame's payload into ``(code, reason)``; 1005 when it has no code.

    Raises:
        ProtocolError: a payload wsproto would refuse (1002, or 1007 for bad UTF-8).

    """
    if not payload:
        return (_NO_STATUS, "")
    if len(payload) == 1:
        raise _fail("CLOSE with 1 byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code < 1000 or code > 4999:
        raise _fail("CLOSE with invalid code")
    if code in _LOCAL_ONLY_CLOSE_CODES:
        raise _fail("remote CLOSE with local-only reason")
    if code <= 2999 and code not in _KNOWN_CLOSE_CODES:
        raise _fail("CLOSE with unknown reserved code")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise _fail("CLOSE reason is not UTF-8", 1007) from None
    return (code, reason)


class FrameReader:
    """Turns server-to-client bytes into ``(opcode, payload)`` messages and control frames.

    ``opcode`` is :data:`OP_TEXT` or :data:`OP_BINARY` for a whole message (its
    fragments joined), :data:`OP_PING`/:data:`OP_PONG` with their payload, or
    :data:`OP_CLOSE` with the raw close payload (see :func:`parse_close`).

    Args:
        max_size: the largest message (one frame, or the fragments together);
            a longer one is refused with close code 1009 as soon as its header says so.

    """

    __slots__ = (
        "_buffer",
        "_fragment_opcode",
        "_fragment_size",
        "_fragments",
        "_need",
        "_utf8",
        "closed",
        "error",
        "max_size",
    )

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        #: The first framing error met (the reader parses nothing after it), or ``None``.
        self.error: ProtocolError | None = None
        self._buffer = bytearray()
        # How many buffered bytes the next frame needs before it can be parsed.
        self._need = 0
        #: Whether a close frame was parsed (the reader parses nothing after it).
        self.closed = False
        self._fragment_opcode: int | None = None
        # The fragments so far, joined, and what they count for against the cap.
        self._fragments = bytearray()
        self._fragment_size = 0
        self._utf8: codecs.IncrementalDecoder | None = None

    @property
    def fragmenting(self) -> bool:
        """Whether a fragmented message has started and not yet finished."""
        return self._fragment_opcode is not None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Parse ``data`` (appended to what was buffered); return what it completes."""
        out: list[tuple[int, bytes]] = []
        if self.error is not None or self.closed:
            return out
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return out
            data = bytes(buffer)
            buffer.clear()
        append = out.append
        max_size = self.max_size
        fragmenting = self._fragment_opcode is not None
        size = len(data)
        pos = 0
        need = 0
        while pos < size:
            if size - pos < 2:
                need = 2
                break
            first = data[pos]
            if _FIN_TEXT <= first <= _FIN_BINARY and not fragmenting:
                # The hot path: a whole, well-formed, unfragmented data frame.
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
                        length = -1  # not minimal: the careful path refuses it
                elif length == 127:
                    start = pos + 10
                    if start > size:
                        need = 10
                        break
                    length = int.from_bytes(data[pos + 2 : start], "big")
                    if length < 65536 or length >> 63:
                        length = -1
                else:
                    length = -1  # masked
                if 0 <= length <= max_size:
                    end = start + length
                    if end > size:
                        need = end - pos
                        break
                    append((first & 0x0F, data[start:end]))
                    pos = end
                    continue
            consumed = self.frame(data, pos, out)
            if consumed < 0:
                need = -consumed
                break
            pos = consumed
            if self.error is not None or self.closed:
                return out
            fragmenting = self._fragment_opcode is not None
        self._need = need
        if pos < size:
            buffer += memoryview(data)[pos:]
        return out

    def frame(self, data: bytes, pos: int, out: list[tuple[int, bytes]]) -> int:
        """Parse one frame at ``pos`` (two bytes must be there) carefully; append what it completes.

        Returns the position after the frame; a negative result ``-n`` means
        "incomplete: the frame needs ``n`` bytes from ``pos``". The wire layer calls
        this for every frame its own hot path does not take.

        Follows wsproto's order of checks so both report the same error for the
        same bytes. On an error, sets :attr:`error` and returns ``pos``.
        """
        size = len(data)
        first = data[pos]
        second = data[pos + 1]
        fin = first & 0x80
        opcode = first & 0x0F
        control = opcode & 0x08
        try:
            if opcode not in _VALID_OPCODES:
                raise _fail(f"invalid opcode {opcode:#x}")
            if control and not fin:
                raise _fail("fragmented control frame")
            length = second & 0x7F
            if control and length > 125:
                raise _fail("control frame with payload length > 125")
            start = pos + 2
            if length == 126:
                start = pos + 4
                if start > size:
                    return self._wait(pos, start)
                length = int.from_bytes(data[pos + 2 : start], "big")
                if length <= 125:
                    raise _fail("payload length used 2 bytes when 1 would have sufficed")
            elif length == 127:
                start = pos + 10
                if start > size:
                    return self._wait(pos, start)
                length = int.from_bytes(data[pos + 2 : start], "big")
                if length <= 65535:
                    raise _fail("payload length used 8 bytes when 2 would have sufficed")
                if length >> 63:
                    raise _fail("8-byte payload length with non-zero MSB")
            if first & 0x70:
                raise _fail("reserved bit set")
            if second & 0x80:
                raise _fail("client received a masked frame")
            if not control:
                self._check_sequence(opcode)
                self._check_size(length, bool(fin) and opcode != OP_CONTINUATION)
            end = start + length
            if end > size:
                return self._wait(pos, end)
            payload = data[start:end]
            if control:
                if opcode == OP_CLOSE:
                    parse_close(payload)  # validate now: a bad close is a framing error
                    self.closed = True
                out.append((opcode, payload))
            else:
                self._data_frame(opcode, payload, bool(fin), out)
        except ProtocolError as exc:
            self.error = exc
            return pos
        return end

    @staticmethod
    def _wait(pos: int, need: int) -> int:
        return pos - need

    def _check_sequence(self, opcode: int) -> None:
        if self._fragment_opcode is None:
            if opcode == OP_CONTINUATION:
                raise _fail("unexpected CONTINUATION")
        elif opcode != OP_CONTINUATION:
            raise _fail(f"expected CONTINUATION, got {opcode:#x}")

    def _check_size(self, length: int, whole: bool) -> None:
        """Refuse a data frame that takes its message over the cap (``whole``: unfragmented)."""
        if whole:
            if length > self.max_size:
                raise MessageTooLargeError(
                    f"a WebSocket message exceeds the cap of {self.max_size} bytes "
                    "(max_message_size)"
                )
        elif self._fragment_size + max(length, MIN_FRAGMENT_CHARGE) > self.max_size:
            raise MessageTooLargeError(
                f"a fragmented WebSocket message exceeds the cap of {self.max_size} bytes "
                f"(max_message_size; each fragment counts as at least {MIN_FRAGMENT_CHARGE} bytes)"
            )

    def _data_frame(
        self, opcode: int, payload: bytes, fin: bool, out: list[tuple[int, bytes]]
    ) -> None:
        if opcode != OP_CONTINUATION:
            self._fragment_opcode = opcode
            self._utf8 = _UTF8_DECODER() if opcode == OP_TEXT else None
        if self._utf8 is not None:
            try:
                self._utf8.decode(payload, fin)
            except UnicodeDecodeError:
                raise _fail("text message is not UTF-8", 1007) from None
        if fin and opcode != OP_CONTINUATION:
            out.append((opcode, payload))  # a whole message in one frame
        else:
            self._fragments += payload
            self._fragment_size += max(len(payload), MIN_FRAGMENT_CHARGE)
            if fin:
                assert self._fragment_opcode is not None
                out.append((self._fragment_opcode, bytes(self._fragments)))
                # A new buffer: clearing the old one would keep its capacity.
                self._fragments = bytearray()
                self._fragment_size = 0
        if fin:
            self._fragment_opcode = None
            self._utf8 = None


def build_frame(opcode: int, payload: bytes) -> bytes:
    """Return one FIN client frame, masked with a fresh random key (RFC 6455 5.3)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    # The mask only defeats cache poisoning by hostile scripts; any key is fine,
    # and os.urandom keeps the core free of shared random state.
    key = os.urandom(4)
    if not size:
        return header + key
    mask = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")
    return header + key + masked.to_bytes(size, "little")


def build_close(code: int | None, reason: str = "") -> bytes:
    """Return a masked close frame (no payload when ``code`` is ``None``).

    The reason is cut to fit the 125-byte control payload, on a character boundary.
    """
    if code is None:
        return build_frame(OP_CLOSE, b"")
    encoded = reason.encode()[:123].decode("utf-8", "ignore").encode()
    return build_frame(OP_CLOSE, code.to_bytes(2, "big") + encoded)
