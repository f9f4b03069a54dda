"""Reading zstd-stream JSON without the C hot path: a parser loop specialised for it.

One job: the pure-Python hot path of the commonest non-zlib setup, zstd-stream
with JSON. zstd's floor is cheap (about 4.4 µs per message here, against 6.8 µs
for zlib-stream), so the fixed Python cost per message weighs more than on
zlib-stream: :meth:`ZstdReader._parse_zstd` is
:meth:`~gateway_proto._wire_reader.WireReader._parse` with the decisions that
cannot change for such a connection taken once, before the loop (which inflater,
which codec), the usual frame (FIN binary, a 7- or 16-bit length) tested first,
and the message inflated in the zstd context's one call. It makes exactly the
decisions ``_parse`` makes, frame by frame: anything else (control frames,
fragments, partial frames, framing errors, long messages) is handled as there.
With the C hot path built it only sees what the ``Scanner`` leaves.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Final

from ._wire_items import WireItem
from ._wire_reader import (
    _FIN_BINARY,
    _FIN_TEXT,
    WireReader,
    _as_item,
    _json_error,
    _new_object,
    _set_data,
    _set_name,
    _set_raw,
    _set_sequence,
)
from .codecs import MAX_SEQUENCE
from .codecs import _envelope as envelope
from .compression import ZstdStreamInflater
from .errors import ProtocolError
from .events import Dispatch

__all__ = ["ZstdReader"]

_ZERO: Final = 0  # the op of a dispatch (see the identity test in _parse_zstd)


class ZstdReader(WireReader):
    """The wire's input side, with a parser loop for zstd-stream JSON (a part of ``Wire``)."""

    def _new_parser(self) -> Generator[WireItem | None, None, None]:
        """Return a fresh parser for this connection's compression and codec."""
        if isinstance(self._inflater, ZstdStreamInflater) and self._loads is not None:
            return self._parse_zstd()
        return self._parse()

    def _parse_zstd(self) -> Generator[WireItem | None, None, None]:
        """:meth:`_parse` for zstd-stream and JSON: the same items, frame by frame.

        Kept one flat loop on purpose: every call or attribute lookup per message
        shows in the events per second (see the module docstring).
        """
        zstd = self._inflater
        assert isinstance(zstd, ZstdStreamInflater)
        loads = self._loads
        assert loads is not None
        max_size = self._max_size
        decompress = zstd.decompress
        # The longest message inflated in one call; at most max_size (see ZstdStreamInflater).
        one_slice = min(zstd.one_slice, max_size)
        zstd_error = zstd.error
        corrupt = zstd.corrupt
        refuse = zstd.refuse
        inflate = zstd.feed
        careful = self._next_careful
        failed = self._failed
        keep_raw = self._keep_raw
        s_limit = MAX_SEQUENCE + 1
        # Locals: cheaper to read per message than globals and builtins.
        fin_binary = _FIN_BINARY
        fin_text = _FIN_TEXT
        zero = _ZERO
        new_object = _new_object
        dispatch = Dispatch
        set_name = _set_name
        set_data = _set_data
        set_sequence = _set_sequence
        set_raw = _set_raw
        type_of = type
        int_type = int
        str_type = str
        dict_type = dict
        held = self._input
        while True:
            data = held.data
            pos = held.pos
            size = len(data)
            if held.fragmenting:  # only the careful path (below) starts or ends one
                yield careful()
                continue
            while size - pos > 1:
                first = data[pos]
                length = data[pos + 1]
                if length == 126:  # the usual length: 126 bytes to 64 KiB
                    start = pos + 4
                    if start > size:
                        break
                    length = (data[pos + 2] << 8) | data[pos + 3]
                    if length < 126:
                        break  # not minimal: the careful path refuses it
                elif length < 126:
                    start = pos + 2
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
                if first != fin_binary and first != fin_text:  # noqa: PLR1714 - no tuple
                    break  # a control frame, a fragment, reserved bits: the careful path
                held.pos = pos = end
                try:
                    if first != fin_binary:
                        message = data[start:end]
                    elif length <= one_slice:
                        try:
                            message = decompress(data[start:end])
                        except zstd_error as exc:
                            raise corrupt(exc) from None
                        if len(message) > max_size:
                            refuse(len(message))
                    else:
                        message = inflate(data[start:end])
                    # For metrics: an integer add each, the least a count can cost.
                    held.messages += 1
                    held.payload_bytes += len(message)
                    try:
                        obj = loads(message)
                    except (ValueError, TypeError, RecursionError) as exc:
                        raise _json_error(exc) from None
                    # Free the inflated bytes now (unless kept): see _parse.
                    raw = message if keep_raw else None
                    del message
                    try:
                        op = obj["op"]
                        s = obj["s"]
                        t = obj["t"]
                        d = obj["d"]
                    except (KeyError, TypeError, IndexError):
                        item = _as_item(envelope(obj), raw)  # raises the precise DecodeError
                    else:
                        # A dispatch, tested first with the fewest steps: ``op is zero``
                        # holds only for the int 0 (CPython's one cached 0; False and
                        # 0.0 are other objects), and whatever fails a test here takes
                        # the full check below, so the test only has to be sufficient.
                        if (
                            op is zero
                            and type_of(t) is str_type
                            and type_of(s) is int_type
                            and -1 < s < s_limit
                            and type_of(obj) is dict_type
                        ):
                            item = new_object(dispatch)  # _as_item(), inlined
                            set_name(item, t)
                            set_data(item, d)
                            set_sequence(item, s)
                            set_raw(item, raw)
                        elif (
                            type_of(op) is not int_type
                            or type_of(obj) is not dict_type
                            or not (s is None or (type_of(s) is int_type and -1 < s < s_limit))
                            or not (t is None or type_of(t) is str_type)
                        ):
                            item = _as_item(envelope(obj), raw)
                        elif op != 0:
                            item = (op, d, s, t)
                        else:
                            item = _as_item(envelope(obj), raw)  # a dispatch with no name: raises
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
