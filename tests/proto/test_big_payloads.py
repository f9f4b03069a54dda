"""Big payloads through the whole core: every compression, both encodings, random chunks.

Discord's READY and GUILD_CREATE are routinely megabytes, while the rest of the
suite sends payloads of a few hundred bytes. Each case here builds one server
stream (HELLO, READY, a GUILD_CREATE whose *decoded* payload is exactly ``size``
bytes, then a small dispatch that must come out unharmed after it) on one
compression context, once per module, and feeds it to a ``GatewayConnection``
on both wire paths, split at random places. The sizes straddle zstandard's
128 KiB output buffer and zlib's ``max_length`` handling; the filler is random
hex, cheap to make and only about 2:1 compressible, so the compressed streams
are big too.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import erlpack
import pytest
import zstandard

from gateway_proto import Closed, Dispatch, GatewayConnection, ShardConfig
from gateway_proto.errors import DecodeError, MessageTooLargeError

from ._wire_helpers import accept, server_frame
from .helpers import FixedRandom, make_config, without_sent

# Every test here runs on the C hot path and on the pure-Python wire layer.
pytestmark = pytest.mark.usefixtures("wire_path")

#: Decoded sizes of the big payload: nothing, one byte, both sides of zstandard's
#: 128 KiB output chunk, and the sizes of real guilds' GUILD_CREATE and READY.
SIZES = (0, 1, 131_071, 131_072, 131_073, 1_000_000, 8_000_000, 20_000_000)
#: Below this size no gateway envelope fits: the payload is junk of that size, and
#: the connection must fail cleanly with a DecodeError (not glue it to the next).
_ENVELOPE_MIN = 128
_COMPRESSIONS = ("zlib-stream", "zstd-stream", "payload", None)
_HELLO = {"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}
_READY = {
    "v": 10,
    "user": {"id": "1", "username": "bot"},
    "guilds": [],
    "session_id": "big-1",
    "resume_gateway_url": "wss://resume.example.test/",
}
_AFTER = {"op": 0, "s": 3, "t": "MESSAGE_CREATE", "d": {"content": "after the big one"}}


def filler(size: int) -> str:
    """``size`` random hex digits, the same for the same size (one fast C call)."""
    return random.Random(size).randbytes((size + 1) // 2).hex()[:size]


def _encode(payload: dict[str, Any], encoding: str) -> bytes:
    if encoding == "etf":
        packed: bytes = erlpack.pack(payload)
        return packed
    return json.dumps(payload, separators=(",", ":")).encode()


def big_payload(size: int, encoding: str) -> tuple[bytes, dict[str, Any] | None]:
    """Return a GUILD_CREATE encoded to exactly ``size`` bytes, and its ``d``.

    Below :data:`_ENVELOPE_MIN`, junk of that size and ``None``.
    """
    if size < _ENVELOPE_MIN:
        return b"1"[:size], None
    d = {"id": "10", "blob": ""}
    envelope = {"op": 0, "s": 2, "t": "GUILD_CREATE", "d": d}
    d["blob"] = filler(size - len(_encode(envelope, encoding)))
    raw = _encode(envelope, encoding)
    assert len(raw) == size  # both encodings have a fixed overhead per string
    return raw, d


class _Server:
    """One server's compression context: encodes, compresses and frames each payload."""

    def __init__(self, encoding: str, compression: str | None) -> None:
        self.encoding = encoding
        self.compression = compression
        # Level 1 keeps building 20 MB streams cheap; any level is valid input.
        self._zlib = zlib.compressobj(1)
        self._zstd = zstandard.ZstdCompressor(level=1).compressobj()

    def frame(self, raw: bytes) -> bytes:
        if self.compression == "zlib-stream":
            blob = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        elif self.compression == "zstd-stream":
            blob = self._zstd.compress(raw) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        elif self.compression == "payload":
            blob = zlib.compress(raw, 1)
        else:
            return server_frame(0x2 if self.encoding == "etf" else 0x1, raw)
        return server_frame(0x2, blob)


@dataclass(frozen=True)
class Case:
    """One server stream: HELLO's frame, then READY + the big one + a small dispatch."""

    encoding: str
    compression: str | None
    size: int
    hello: bytes = field(repr=False)
    rest: bytes = field(repr=False)
    data: dict[str, Any] | None = field(repr=False)


def _cases() -> list[Any]:
    params = []
    for size in SIZES:
        for compression in _COMPRESSIONS:
            for encoding in ("json", "etf"):
                if compression == "payload" and encoding == "etf":
                    continue  # the config refuses it: payload compression is JSON only
                if compression is None and size > SIZES[-2]:
                    continue  # framing alone: 8 MB covers the 64-bit length (time)
                params.append(
                    pytest.param(
                        (encoding, compression, size), id=f"{encoding}-{compression}-{size}"
                    )
                )
    return params


@pytest.fixture(scope="module", params=_cases())
def case(request: pytest.FixtureRequest) -> Case:
    """Build each stream once; pytest groups the tests by it, so it is freed after use."""
    encoding, compression, size = request.param
    server = _Server(encoding, compression)
    raw, data = big_payload(size, encoding)
    ready = {"op": 0, "s": 1, "t": "READY", "d": _READY}
    hello = server.frame(_encode(_HELLO, encoding))
    rest = b"".join(
        (
            server.frame(_encode(ready, encoding)),
            server.frame(raw),
            server.frame(_encode(_AFTER, encoding)),
        )
    )
    return Case(encoding, compression, size, hello, rest, data)


def _chunks(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """``data`` cut at ``count - 1`` random places."""
    cuts = sorted(rng.sample(range(1, len(data)), min(count - 1, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _run(case: Case, chunks: list[bytes], config: ShardConfig | None = None) -> list[object]:
    """Connect, take HELLO, identify, feed ``chunks``; return the events after IDENTIFY."""
    if config is None:
        config = make_config(encoding=case.encoding, compression=case.compression)
    conn = GatewayConnection(config, rng=FixedRandom(0.5))
    conn.connect(0.0)
    conn.receive_data(accept(conn.data_to_send()), 0.0)
    conn.receive_data(case.hello, 0.0)
    list(conn.events())
    conn.identify(0.0)
    list(conn.events())
    events: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk, 0.0)
        events += without_sent(conn.events())
    return events


def test_any_decoded_size_in_random_chunks(case: Case) -> None:
    # Several chunkings for the smaller streams, one for the huge ones (time).
    seeds = range(3) if case.size <= SIZES[4] else range(1)
    for seed in seeds:
        rng = random.Random(f"{case.encoding}-{case.compression}-{case.size}-{seed}")
        events = _run(case, _chunks(case.rest, rng, 64))
        dispatches = [e for e in events if isinstance(e, Dispatch)]
        if case.data is None:
            # Junk too short for any envelope: a clean DecodeError, nothing after it.
            assert [d.name for d in dispatches] == ["READY"]
            closed = events[-1]
            assert isinstance(closed, Closed), events[-3:]
            assert isinstance(closed.error, DecodeError), closed
            continue
        assert [d.name for d in dispatches] == ["READY", "GUILD_CREATE", "MESSAGE_CREATE"], [
            (type(e).__name__, getattr(e, "error", None)) for e in events
        ]
        big = dispatches[1]
        assert big.sequence == 2
        assert big.data == case.data  # every byte, none glued to the next message
        assert dispatches[2].data == _AFTER["d"]
        assert not any(isinstance(e, Closed) for e in events)


@pytest.mark.parametrize(
    ("encoding", "compression"),
    [(e, c) for e in ("json", "etf") for c in _COMPRESSIONS if (e, c) != ("etf", "payload")],
)
def test_exactly_the_cap_passes_and_one_byte_more_is_refused(
    encoding: str, compression: str | None
) -> None:
    """``max_length`` and slice limits at their edge: the cap itself is a legal size."""
    cap = 1 << 18
    for size, fits in ((cap, True), (cap + 1, False)):
        server = _Server(encoding, compression)
        raw, data = big_payload(size, encoding)
        hello = server.frame(_encode(_HELLO, encoding))
        ready = server.frame(_encode({"op": 0, "s": 1, "t": "READY", "d": _READY}, encoding))
        stream = Case(encoding, compression, size, hello, ready + server.frame(raw), data)
        config = make_config(encoding=encoding, compression=compression, max_message_size=cap)
        events = _run(stream, [stream.rest], config)
        last = events[-1]
        if fits:
            assert isinstance(last, Dispatch)
            assert last.data == data
        else:
            assert isinstance(last, Closed)
            assert isinstance(last.error, MessageTooLargeError), last
