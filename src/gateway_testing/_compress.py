"""The fake's own transport compression (zlib-stream, zstd-stream) and payload compression.

Theory of operation (PROTOCOL.md 9): one compressor lives for the whole connection.
zlib-stream flushes every payload with ``Z_SYNC_FLUSH``, so each ends with
``00 00 ff ff`` and a client may inflate once that suffix arrives. zstd-stream
flushes every payload as a block (``COMPRESSOBJ_FLUSH_BLOCK``) and never ends the
frame: one WebSocket message is exactly one payload (with ``end_frames``, as some
other servers do, each payload ends its frame and the next starts a new one).
Payload compression (Identify ``compress: true``, JSON only) deflates large
payloads one by one, with no shared context, and sends them as binary frames.
"""

from __future__ import annotations

import zlib
from typing import Any

from gateway_testing._codec import require

__all__ = ["COMPRESSIONS", "PAYLOAD_COMPRESSION_THRESHOLD", "Compressor", "compress_payload"]

COMPRESSIONS = ("zlib-stream", "zstd-stream")
#: Payloads at least this long (bytes of JSON) are deflated when Identify asked for it.
PAYLOAD_COMPRESSION_THRESHOLD = 1024


class Compressor:
    """The per-connection transport compressor (``kind`` ``None`` means no compression).

    Args:
        kind: ``"zlib-stream"``, ``"zstd-stream"`` or ``None``.
        end_frames: zstd-stream only: end the zstd frame after every payload.

    """

    def __init__(self, kind: str | None, *, end_frames: bool = False) -> None:
        self.kind = kind
        self._zlib: Any = None
        self._zstd: Any = None
        self._zstd_context: Any = None
        self._flush_mode = 0
        self._end_frames = end_frames
        if kind == "zlib-stream":
            self._zlib = zlib.compressobj()
        elif kind == "zstd-stream":
            zstandard = require("zstd-stream")
            assert zstandard is not None
            self._zstd_context = zstandard.ZstdCompressor()
            self._zstd = self._zstd_context.compressobj()
            finish, block = zstandard.COMPRESSOBJ_FLUSH_FINISH, zstandard.COMPRESSOBJ_FLUSH_BLOCK
            self._flush_mode = finish if end_frames else block
        elif kind is not None:
            raise ValueError(f"unknown compression {kind!r}")

    def compress(self, data: str | bytes) -> str | bytes:
        """Return ``data`` compressed through the shared context (unchanged without one)."""
        if self.kind is None:
            return data
        raw = data.encode() if isinstance(data, str) else data
        if self._zlib is not None:
            out: bytes = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
            return out
        out = self._zstd.compress(raw)
        out += self._zstd.flush(self._flush_mode)
        if self._end_frames:
            # A finished compressobj takes nothing more: the next frame needs a new one.
            self._zstd = self._zstd_context.compressobj()
        return bytes(out)

    def corrupted(self) -> bytes:
        """Return a message that cannot be decompressed (nor decoded) by a correct client."""
        if self.kind == "zlib-stream":
            # A reserved deflate block type (BTYPE=11) that ends with the sync-flush
            # marker, so the client does try to inflate it, and fails.
            return b"\x07\xff corrupted" + b"\x00\x00\xff\xff"
        return b"\x28\xb5\x2f\xfd corrupted \xff\xfe\xfd\xfc"


def compress_payload(data: str | bytes) -> str | bytes:
    """Return a JSON payload as a standalone zlib blob if it is large (payload compression)."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) < PAYLOAD_COMPRESSION_THRESHOLD:
        return data
    return zlib.compress(raw)
