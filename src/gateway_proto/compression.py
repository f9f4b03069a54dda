"""Transport and payload decompression, every inflater bounded by a size cap.

Theory of operation: an inflater is fed the payload of each whole WebSocket
*binary* message, in order, and answers with the decompressed gateway payload, or
``None`` while a payload is still incomplete (zlib-stream only: one payload may
span several messages). One inflater belongs to one connection: its context is
never shared or reused (PROTOCOL.md 6.5).

Every inflater enforces ``max_size`` twice: on the decompressed payload
(zlib runs with ``max_length``, zstd on input slices sized so that the output
can pass the cap by at most one 128 KiB block: a bomb never allocates much past
the cap) and on compressed input buffered while waiting for a
payload's end. Exceeding it raises :class:`~gateway_proto.errors.MessageTooLargeError`;
corrupt input raises :class:`~gateway_proto.errors.CompressionError`.

- :class:`ZlibStreamInflater`: ``compress=zlib-stream``; one ``decompressobj``
  for the connection; a payload ends when the buffer ends with ``00 00 ff ff``.
- :class:`ZstdStreamInflater`: ``compress=zstd-stream`` (the ``zstd`` extra,
  ``zstandard``); one payload per message; the zstd frame normally never ends,
  but a server that ends a frame after each message works too (PROTOCOL.md 9.3).
- :class:`PayloadInflater`: IDENTIFY ``compress: true``; each binary message is a
  standalone zlib stream.

The C hot path (``_speedups.c``) inflates whole messages itself with the same
pieces each inflater exposes (``decompress``, ``pending``, ``check``, ``refuse``,
``decompressobj``) and hands failures back to them (``corrupt``), so the rules
and messages live here once; ``feed`` is the pure-Python path and the reference.

zlib itself: the zlib inflaters use ``zlib-ng`` (the ``zlib_ng`` package, in the
``speed`` extra) when it is importable, else the standard library's ``zlib``. The
two give the same bytes and honour ``max_length`` alike, and zlib-ng is faster
(the figures: benchmarks/README.md, the rows with "zlib-ng" in their names).
``use_zlib_ng`` forces the choice, as ``use_orjson`` does for JSON.
"""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import Any, Final, NoReturn

from .errors import CompressionError, MessageTooLargeError

try:  # zlib-ng is the fast inflater (the ``speed`` extra); stdlib zlib always works
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:  # pragma: no cover - the test environment installs it
    _zlib_ng = None  # type: ignore[assignment]

__all__ = [
    "ZLIB_SUFFIX",
    "PayloadInflater",
    "ZlibStreamInflater",
    "ZstdStreamInflater",
    "make_inflater",
    "zlib_module",
]

#: The Z_SYNC_FLUSH marker that ends every zlib-stream payload.
ZLIB_SUFFIX: Final = b"\x00\x00\xff\xff"


def zlib_module(use_zlib_ng: bool | None = None) -> ModuleType:
    """Return the zlib implementation to inflate with: ``zlib_ng`` or stdlib ``zlib``.

    ``use_zlib_ng``: ``None`` picks zlib-ng if it is installed; ``True`` requires it.

    Raises:
        ImportError: ``use_zlib_ng=True`` without ``zlib-ng`` installed (names the extra).

    """
    if use_zlib_ng is None:
        use_zlib_ng = _zlib_ng is not None
    if not use_zlib_ng:
        return zlib
    if _zlib_ng is None:
        raise ImportError(
            "use_zlib_ng=True needs the 'zlib-ng' package: pip install 'spectacles-gateway[speed]'"
        )
    return _zlib_ng


def _too_large(kind: str, size: int, cap: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"{kind} exceeds the cap of {cap} bytes (max_message_size); got at least {size}"
    )


class ZlibStreamInflater:
    """``zlib-stream``: one inflate context per connection; payloads end with ``00 00 ff ff``.

    The wire layer's hot path uses :attr:`pending` and :attr:`decompress` directly
    (a whole message with the suffix and nothing pending is inflated in place) and
    calls :meth:`feed` for everything else, so both must keep the same rules.

    Args:
        max_size: the largest decompressed payload, and the most compressed bytes
            buffered while waiting for a payload's suffix.
        use_zlib_ng: inflate with zlib-ng (``None``: if it is installed; see
            :func:`zlib_module`).

    """

    __slots__ = ("_inflate", "decompress", "error", "max_size", "pending", "uses_zlib_ng")

    def __init__(self, max_size: int, *, use_zlib_ng: bool | None = None) -> None:
        self.max_size = max_size
        module = zlib_module(use_zlib_ng)
        #: Whether zlib-ng inflates (else stdlib zlib).
        self.uses_zlib_ng: Final = module is not zlib
        #: What ``decompress`` raises on corrupt input (see :meth:`corrupt`).
        self.error: Final[type[Exception]] = module.error
        self._inflate = module.decompressobj()
        #: ``decompress(data, max_length)`` of the connection's inflate context.
        self.decompress = self._inflate.decompress
        #: Compressed input waiting for the suffix (a payload split across messages).
        self.pending = bytearray()

    def feed(self, data: bytes) -> bytes | None:
        """Add one binary message; return a whole payload, or ``None`` until one is complete.

        Raises:
            CompressionError: corrupt input, or input after the end of the zlib stream.
            MessageTooLargeError: the payload, or its buffered input, is over the cap.

        """
        pending = self.pending
        if pending or data[-4:] != ZLIB_SUFFIX:
            pending += data
            # The suffix may even straddle two messages: the *buffer* must end with it.
            if pending[-4:] != ZLIB_SUFFIX:
                if len(pending) > self.max_size:
                    raise _too_large("buffered compressed input", len(pending), self.max_size)
                return None
            data = bytes(pending)
            pending.clear()
        try:
            # max_length bounds the allocation: cap + 1 bytes out means "too large".
            out = self.decompress(data, self.max_size + 1)
        except self.error as exc:
            raise self.corrupt(exc) from None
        return self.check(out)

    @staticmethod
    def corrupt(exc: Exception) -> CompressionError:
        """Return the error for corrupt input (``exc``: the :attr:`error` ``decompress`` raised)."""
        return CompressionError(f"corrupt zlib-stream data: {exc}")

    def check(self, out: bytes) -> bytes:
        """Return ``out`` if it is a plausible payload, else raise (shared with the hot path).

        Raises:
            CompressionError: nothing came out because the zlib stream had ended
                (Discord never ends it; a new stream needs a new connection).
            MessageTooLargeError: ``out`` is longer than the cap.

        """
        if len(out) > self.max_size:
            raise _too_large("a decompressed payload", len(out), self.max_size)
        if not out and self._inflate.eof:
            raise CompressionError("data after the end of the zlib stream")
        return out


def _import_zstandard() -> Any:
    try:
        import zstandard  # noqa: PLC0415 - an optional extra, imported only when used
    except ImportError as exc:
        raise ImportError(
            "compression='zstd-stream' needs the 'zstandard' package: "
            "pip install 'spectacles-gateway[zstd]'"
        ) from exc
    return zstandard


#: zstd's largest block (``ZSTD_BLOCKSIZE_MAX``): no block decodes to more bytes.
_ZSTD_BLOCK: Final = 128 * 1024


class ZstdStreamInflater:
    """``zstd-stream``: one decompression context per connection; one payload per message.

    Decompression runs through zstandard's ``decompressobj``, which drains the
    context until it has nothing left to give: a payload comes out whole whatever
    its size (``stream_writer`` left whatever did not fit its last 128 KiB output
    buffer inside the context, glued to the front of the next message). With
    ``read_across_frames``, a frame that ends (a server that ends the frame after
    each message) simply lets the next bytes start a new one.

    ``decompressobj`` has no output limit, so a message is fed in slices small
    enough that the output can pass the cap by at most one block: every zstd block
    decodes to at most 128 KiB and needs at least 3 bytes of header, so a slice of
    ``3 * k + 2`` bytes completes at most ``k + 1`` blocks (the one already begun,
    and ``k`` new ones). A message of up to ``3 * (max_size // 128 KiB) + 2`` bytes
    (1538 at the default cap: nearly every message) is one slice, one call.

    Args:
        max_size: the largest decompressed payload (and compressed message).

    """

    __slots__ = ("decompress", "error", "max_size", "one_slice")

    def __init__(self, max_size: int) -> None:
        zstandard = _import_zstandard()
        self.max_size = max_size
        #: The context's ``decompress(data)``: everything ``data`` completes, drained.
        self.decompress: Any = (
            zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress
        )
        #: The longest message decompressed in one call (see the class docstring).
        self.one_slice = 3 * (max_size // _ZSTD_BLOCK) + 2
        #: What ``decompress`` raises on corrupt input (see :meth:`corrupt`).
        self.error: type[Exception] = zstandard.ZstdError

    def feed(self, data: bytes) -> bytes:
        """Decompress one whole binary message into its payload.

        Raises:
            CompressionError: corrupt input.
            MessageTooLargeError: the message or its payload is over the cap.

        """
        cap = self.max_size
        size = len(data)
        if size > cap:
            raise _too_large("a compressed message", size, cap)
        try:
            if size <= self.one_slice:
                out: bytes = self.decompress(data)
            else:
                out = self._sliced(data)
        except self.error as exc:
            raise self.corrupt(exc) from None
        if len(out) > cap:
            self.refuse(len(out))
        return out

    def _sliced(self, data: bytes) -> bytes:
        """Decompress a long message slice by slice, stopping soon after the cap.

        The C hot path (``inflate_zstd`` in ``_speedups.c``) slices the same way.
        """
        cap = self.max_size
        decompress = self.decompress
        view = memoryview(data)
        parts: list[bytes] = []
        produced = 0
        pos = 0
        size = len(data)
        while pos < size:
            # Whole blocks that still fit under the cap: the slice may finish one more.
            step = 3 * ((cap - produced) // _ZSTD_BLOCK) + 2
            part = decompress(view[pos : pos + step])
            pos += step
            produced += len(part)
            if produced > cap:
                self.refuse(produced)
            parts.append(part)
        return b"".join(parts)

    def refuse(self, size: int) -> NoReturn:
        """Raise for a payload of at least ``size`` bytes, over the cap (shared with the hot path).

        Raises:
            MessageTooLargeError: always.

        """
        raise _too_large("a decompressed payload", size, self.max_size)

    @staticmethod
    def corrupt(exc: Exception) -> CompressionError:
        """Return the error for corrupt input (``exc``: the :attr:`error` ``decompress`` raised)."""
        return CompressionError(f"corrupt zstd-stream data: {exc}")


class PayloadInflater:
    """Payload compression (IDENTIFY ``compress: true``): each binary message is standalone zlib.

    Args:
        max_size: the largest decompressed payload.
        use_zlib_ng: inflate with zlib-ng (``None``: if it is installed; see
            :func:`zlib_module`).

    """

    __slots__ = ("decompressobj", "error", "max_size", "uses_zlib_ng")

    def __init__(self, max_size: int, *, use_zlib_ng: bool | None = None) -> None:
        self.max_size = max_size
        module = zlib_module(use_zlib_ng)
        #: Whether zlib-ng inflates (else stdlib zlib).
        self.uses_zlib_ng: Final = module is not zlib
        #: What ``decompressobj().decompress`` raises on corrupt input (see :meth:`corrupt`).
        self.error: Final[type[Exception]] = module.error
        #: A fresh inflate context per message (the C hot path calls it too).
        self.decompressobj: Final[Any] = module.decompressobj

    def feed(self, data: bytes) -> bytes:
        """Decompress one whole binary message (a complete zlib stream).

        Raises:
            CompressionError: corrupt or truncated input, or bytes after the stream.
            MessageTooLargeError: the payload is over the cap.

        """
        inflate = self.decompressobj()
        try:
            out = inflate.decompress(data, self.max_size + 1)
        except self.error as exc:
            raise self.corrupt(exc) from None
        return self.check(inflate, out)

    def check(self, inflate: Any, out: bytes) -> bytes:
        """Return ``out`` if ``inflate`` (its context) ended cleanly within the cap, else raise.

        Shared with the C hot path, which calls it only when a check fails.

        Raises:
            MessageTooLargeError: ``out`` is over the cap.
            CompressionError: the stream is truncated, or has bytes after its end.

        """
        cap = self.max_size
        if len(out) > cap:
            raise _too_large("a decompressed payload", len(out), cap)
        if not inflate.eof or inflate.unused_data:
            raise CompressionError("a compressed payload that is truncated or has trailing data")
        return out

    @staticmethod
    def corrupt(exc: Exception) -> CompressionError:
        """Return the error for corrupt input (``exc``: the :attr:`error` ``decompress`` raised)."""
        return CompressionError(f"corrupt zlib payload: {exc}")


def make_inflater(
    compression: str | None, max_size: int
) -> ZlibStreamInflater | ZstdStreamInflater | PayloadInflater | None:
    """Return a fresh inflater for ``compression`` (``None`` for no compression).

    Raises:
        ImportError: ``zstd-stream`` without ``zstandard`` installed (names the extra).

    """
    if compression == "zlib-stream":
        return ZlibStreamInflater(max_size)
    if compression == "zstd-stream":
        return ZstdStreamInflater(max_size)
    if compression == "payload":
        return PayloadInflater(max_size)
    return None
