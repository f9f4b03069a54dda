"""The stream ``bench_core.py`` feeds the core: the recorded session, as Discord sends it.

HELLO, then one dispatch per message, encoded (JSON, or ETF with snowflakes as
integers), compressed as ``compression`` says (zlib-stream: one deflate context,
``Z_SYNC_FLUSH`` per message; zstd-stream: one zstd context, a flushed block per
message; payload: a standalone zlib stream per message), one unmasked binary frame
per message, cut into socket-sized chunks. Also the bare decompression the floors use.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from typing import Any

HELLO = {"op": 10, "d": {"heartbeat_interval": 45_000}, "s": None, "t": None}
SNOWFLAKE_MIN = 2**53


def load_session(guilds: int, members: int, events: int) -> tuple[list[tuple[str, Any]], str]:
    """The recorded session ``[(name, d), ...]``, READY first, and where it came from."""
    try:
        from gateway_testing.corpus import recorded_session
    except ImportError:  # pragma: no cover - the fake gateway is part of this repo
        session = _fallback_session(events)
        return session, "benchmarks/_core_stream.py fallback generator"
    return (
        recorded_session(seed=0, guilds=guilds, members_per_guild=members, events=events),
        "gateway_testing.corpus.recorded_session",
    )


def _fallback_session(events: int) -> list[tuple[str, Any]]:
    rng = random.Random(0)

    def sid() -> str:
        return str(rng.randrange(10**17, 10**19))

    ready = {
        "v": 10,
        "session_id": "ab" * 16,
        "resume_gateway_url": "wss://r.example/",
        "user": {"id": sid(), "username": "bot"},
        "guilds": [],
    }
    out: list[tuple[str, Any]] = [("READY", ready)]
    for _ in range(events):
        out.append(
            (
                "MESSAGE_CREATE",
                {
                    "id": sid(),
                    "channel_id": sid(),
                    "content": "hi " * 20,
                    "author": {"id": sid(), "username": "someone"},
                },
            )
        )
    return out


def _to_etf_ints(value: Any) -> Any:
    """Snowflake strings as 64-bit ints, where Discord's ETF encoder sends ints."""
    if isinstance(value, dict):
        return {k: _to_etf_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_etf_ints(v) for v in value]
    if isinstance(value, str) and value.isdigit() and int(value) >= SNOWFLAKE_MIN:
        return int(value)
    return value


def frame(payload: bytes) -> bytes:
    """One unmasked, final, binary WebSocket frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, n))
    elif n < 65536:
        head = bytes((0x82, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 127)) + n.to_bytes(8, "big")
    return head + payload


def _compressor(compression: str) -> Callable[[bytes], bytes]:
    """Compress one message as a server with ``compression`` does."""
    if compression == "zstd-stream":
        import zstandard

        zstd = zstandard.ZstdCompressor().compressobj()
        block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        return lambda raw: zstd.compress(raw) + zstd.flush(block)
    if compression == "payload":
        return zlib.compress
    deflate = zlib.compressobj()
    return lambda raw: deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)


def _decompressor(compression: str, *, zlib_ng: bool = False) -> Callable[[bytes], bytes]:
    """The bare decompression of one message, for the floor: a fresh context per connection.

    Stdlib zlib, or with ``zlib_ng`` zlib-ng (what the core uses with the speed extra).
    """
    if compression == "zstd-stream":
        import zstandard

        decompressobj = zstandard.ZstdDecompressor().decompressobj
        return decompressobj(read_across_frames=True).decompress
    module: Any = zlib
    if zlib_ng:
        from zlib_ng import zlib_ng as module
    if compression == "payload":
        return module.decompress  # type: ignore[no-any-return]
    return module.decompressobj().decompress  # type: ignore[no-any-return]


class Stream:
    """HELLO + the session, compressed as ``compression`` says, framed, chunked."""

    def __init__(
        self,
        session: list[tuple[str, Any]],
        encoding: str,
        chunk: int,
        compression: str = "zlib-stream",
    ) -> None:
        self.compression = compression
        if encoding == "etf":
            import erlpack

            def dumps(obj: Any) -> bytes:
                return bytes(erlpack.pack(_to_etf_ints(obj)))
        else:

            def dumps(obj: Any) -> bytes:
                return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

        compress = _compressor(compression)
        raw = [dumps(HELLO)] + [
            dumps({"op": 0, "t": name, "s": seq, "d": d})
            for seq, (name, d) in enumerate(session, start=1)
        ]
        self.messages = [compress(r) for r in raw]
        self.events = len(raw) - 1
        self.raw_bytes = sum(len(r) for r in raw)
        self.hello_frame = frame(self.messages[0])
        body = b"".join(frame(m) for m in self.messages[1:])
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
