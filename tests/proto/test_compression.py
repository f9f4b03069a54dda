"""Inflaters: zlib-stream, zstd-stream, payload; caps, bombs and corrupt input.

Every test runs twice: with zlib-ng inflating (the ``speed`` extra) and with stdlib zlib.
"""

from __future__ import annotations

import json
import random
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_proto import compression
from gateway_proto._wire import WireFailed
from gateway_proto.compression import (
    ZLIB_SUFFIX,
    PayloadInflater,
    ZlibStreamInflater,
    ZstdStreamInflater,
    make_inflater,
    zlib_module,
)
from gateway_proto.errors import CompressionError, MessageTooLargeError

from ._wire_helpers import make_config, open_wire, server_frame

CAP = 1 << 20

# A HELLO as a zlib-stream server sends it: the zlib header, one deflate block and
# the Z_SYNC_FLUSH marker (captured-style constant, in the manner of twilight's tests).
HELLO = b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["gw-1"]}}'
HELLO_COMPRESSED = bytes.fromhex(
    "789caa562a51b2ca2bcdc9d1512a8631f20b94ac0c0d74945294acaa953252138b4a9252134be233f34a"
    "528bca127394ac4c0c8d4c81f2f1254589c9a94a56d14ae9e5ba864ab1b5b500000000ffff"
)


@pytest.fixture(autouse=True, scope="module", params=["zlib-ng", "zlib"])
def zlib_implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the module's tests with zlib-ng inflating, then with stdlib zlib."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "zlib":
            patch.setattr(compression, "_zlib_ng", None)
        assert ZlibStreamInflater(CAP).uses_zlib_ng is (request.param == "zlib-ng")
        yield str(request.param)


def test_the_implementation_in_use(zlib_implementation: str) -> None:
    ng = zlib_implementation == "zlib-ng"
    assert ZlibStreamInflater(CAP).uses_zlib_ng is ng
    assert PayloadInflater(CAP).uses_zlib_ng is ng
    assert zlib_module() is not zlib if ng else zlib_module() is zlib
    assert ZlibStreamInflater(CAP, use_zlib_ng=False).uses_zlib_ng is False


def test_zlib_ng_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression, "_zlib_ng", None)
    with pytest.raises(ImportError, match=r"spectacles-gateway\[speed\]"):
        ZlibStreamInflater(CAP, use_zlib_ng=True)


def _stream(*payloads: bytes) -> list[bytes]:
    """Compress payloads on one deflate context, each ended by a sync flush."""
    deflate = zlib.compressobj()
    return [deflate.compress(p) + deflate.flush(zlib.Z_SYNC_FLUSH) for p in payloads]


def _hello_message() -> bytes:
    return HELLO_COMPRESSED


def test_hello_constant_is_a_sync_flushed_zlib_stream() -> None:
    message = _hello_message()
    assert message.startswith(b"\x78\x9c")  # the zlib header: a context per connection
    assert message.endswith(ZLIB_SUFFIX)
    assert ZlibStreamInflater(CAP).feed(message) == HELLO


def test_hello_fed_whole() -> None:
    assert json.loads(ZlibStreamInflater(CAP).feed(_hello_message()) or b"")["op"] == 10


@pytest.mark.parametrize("cut", range(1, len(HELLO_COMPRESSED)))
def test_hello_split_at_every_index(cut: int) -> None:
    message = _hello_message()
    inflater = ZlibStreamInflater(CAP)
    first = inflater.feed(message[:cut])
    assert first is None  # the suffix only ends the whole message
    assert inflater.feed(message[cut:]) == HELLO


def test_every_split_of_a_longer_stream() -> None:
    payloads = [b'{"op":0,"d":%d}' % i for i in range(3)]
    blob = b"".join(_stream(*payloads))
    messages = _stream(*payloads)
    for cut in range(1, len(blob)):
        inflater = ZlibStreamInflater(CAP)
        out = [inflater.feed(blob[:cut]), inflater.feed(blob[cut:])]
        # Whatever the cut, the pieces inflate to the payloads, joined.
        joined = b"".join(o for o in out if o)
        assert joined == b"".join(payloads), cut
    assert len(messages) == 3


def test_several_payloads_across_several_messages() -> None:
    payloads = [json.dumps({"op": 0, "d": {"n": i, "x": "y" * i}}).encode() for i in range(50)]
    inflater = ZlibStreamInflater(CAP)
    got = []
    for message in _stream(*payloads):
        # Each payload spans three WebSocket messages: only the last has the suffix.
        a, b = len(message) // 3, 2 * len(message) // 3
        for piece in (message[:a], message[a:b], message[b:]):
            result = inflater.feed(piece)
            if result is not None:
                got.append(result)
    assert got == payloads


def test_suffix_split_across_two_messages() -> None:
    message = _hello_message()
    inflater = ZlibStreamInflater(CAP)
    assert inflater.feed(message[:-2]) is None
    assert inflater.feed(message[-2:]) == HELLO


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6), st.data())
def test_any_chunking_of_a_zlib_stream(payloads: list[bytes], data: st.DataObject) -> None:
    inflater = ZlibStreamInflater(CAP)
    got = []
    for message in _stream(*payloads):
        cut = data.draw(st.integers(0, len(message)))
        for piece in (message[:cut], message[cut:]):
            if piece:
                result = inflater.feed(piece)
                if result is not None:
                    got.append(result)
    # A cut ending on the suffix may inflate early; the bytes still come out in order.
    assert b"".join(got) == b"".join(payloads)


def test_fresh_context_per_inflater() -> None:
    first, second = _stream(b"one", b"two")
    assert ZlibStreamInflater(CAP).feed(first) == b"one"
    with pytest.raises(CompressionError):
        # The second message depends on the first's context: a new one can't read it.
        ZlibStreamInflater(CAP).feed(second)


def test_zlib_bomb_refused_within_the_cap() -> None:
    bomb = _stream(b"\x00" * (50 * CAP))[0]  # ~50 KB of input, 50 MiB of output
    assert len(bomb) < CAP
    inflater = ZlibStreamInflater(CAP)
    with pytest.raises(MessageTooLargeError, match="cap of 1048576"):
        inflater.feed(bomb)


def test_zlib_bomb_never_allocates_past_the_cap() -> None:
    """``max_length`` stops inflating at cap + 1 bytes: the rest stays compressed."""
    bomb = _stream(b"\x00" * (50 * CAP))[0]
    inflater = ZlibStreamInflater(CAP)
    out = inflater.decompress(bomb, CAP + 1)
    assert len(out) == CAP + 1
    with pytest.raises(MessageTooLargeError):
        inflater.check(out)


def test_exactly_the_cap_is_accepted() -> None:
    payload = b"a" * CAP
    assert ZlibStreamInflater(CAP).feed(_stream(payload)[0]) == payload


def test_buffered_input_without_suffix_is_capped() -> None:
    inflater = ZlibStreamInflater(4096)
    assert inflater.feed(b"\x78\x9c" + b"\x01" * 4000) is None
    with pytest.raises(MessageTooLargeError, match="buffered compressed input"):
        inflater.feed(b"\x01" * 200)


def test_corrupt_zlib_stream() -> None:
    with pytest.raises(CompressionError, match="corrupt"):
        ZlibStreamInflater(CAP).feed(b"not zlib at all" + ZLIB_SUFFIX)


def test_data_after_the_end_of_the_zlib_stream() -> None:
    ended = zlib.compress(b"the end")  # a complete stream: header, data, adler32
    inflater = ZlibStreamInflater(CAP)
    assert inflater.feed(ended + ZLIB_SUFFIX) == b"the end"
    # Discord never ends the stream; whatever follows the end is refused.
    with pytest.raises(CompressionError, match="end of the zlib stream"):
        inflater.feed(_stream(b"x")[0])


# -- zstd-stream -------------------------------------------------------------------


def _zstd_messages(*payloads: bytes) -> list[bytes]:
    """One compressor, flushed per message, the frame never ended (Discord's way)."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return [
        compressor.compress(p) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        for p in payloads
    ]


def test_zstd_stream_one_payload_per_message() -> None:
    payloads = [json.dumps({"op": 0, "s": i, "d": "x" * i}).encode() for i in range(40)]
    inflater = ZstdStreamInflater(CAP)
    assert [inflater.feed(m) for m in _zstd_messages(*payloads)] == payloads


def test_zstd_stream_frame_ended_per_message() -> None:
    """Some servers end the zstd frame after each message: the next one starts a new frame."""
    payloads = [b'{"op":11}', b'{"op":0,"d":1}', b'{"op":0,"d":2}']
    inflater = ZstdStreamInflater(CAP)
    assert [inflater.feed(zstandard.ZstdCompressor().compress(p)) for p in payloads] == payloads


def test_zstd_stream_both_modes_mixed() -> None:
    inflater = ZstdStreamInflater(CAP)
    assert inflater.feed(zstandard.ZstdCompressor().compress(b"ended")) == b"ended"
    assert [inflater.feed(m) for m in _zstd_messages(b"open1", b"open2")] == [b"open1", b"open2"]


def test_zstd_fresh_context_per_inflater() -> None:
    first, second = _zstd_messages(b"a" * 100, b"a" * 100)
    ZstdStreamInflater(CAP).feed(first)
    with pytest.raises(CompressionError):
        ZstdStreamInflater(CAP).feed(second)


def test_zstd_bomb_refused_within_the_cap() -> None:
    (bomb,) = _zstd_messages(b"\x00" * (64 * CAP))
    inflater = ZstdStreamInflater(CAP)
    with pytest.raises(MessageTooLargeError):
        inflater.feed(bomb)


def test_zstd_bomb_never_allocates_far_past_the_cap() -> None:
    """The message is inflated in slices: a bomb is refused about one block past the cap."""
    (bomb,) = _zstd_messages(b"\x00" * (64 * CAP))
    inflater = ZstdStreamInflater(CAP)
    tracemalloc.start()
    try:
        with pytest.raises(MessageTooLargeError):
            inflater.feed(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The parts kept (at most cap + 128 KiB) and the last slice's own output and
    # join; inflating it whole would take the full 64 MiB.
    assert peak < 3 * CAP


def test_zstd_compressed_message_over_the_cap() -> None:
    with pytest.raises(MessageTooLargeError, match="compressed message"):
        ZstdStreamInflater(4096).feed(b"\x00" * 5000)


def test_zstd_corrupt_input() -> None:
    with pytest.raises(CompressionError, match="corrupt zstd"):
        ZstdStreamInflater(CAP).feed(b"definitely not zstd")


# -- payload compression ------------------------------------------------------------


def test_payload_mode_standalone_messages() -> None:
    inflater = PayloadInflater(CAP)
    for payload in (b'{"op":10}', b'{"op":0,"d":{"a":1}}'):
        assert inflater.feed(zlib.compress(payload)) == payload


def test_payload_mode_bomb() -> None:
    with pytest.raises(MessageTooLargeError):
        PayloadInflater(CAP).feed(zlib.compress(b"\x00" * (8 * CAP)))


@pytest.mark.parametrize(
    "data",
    [b"garbage", zlib.compress(b"truncated payload")[:-3], zlib.compress(b"x") + b"trailing"],
)
def test_payload_mode_corrupt_truncated_or_trailing(data: bytes) -> None:
    with pytest.raises(CompressionError):
        PayloadInflater(CAP).feed(data)


# -- every inflater at the sizes where buffers end ----------------------------------

#: Both sides of zstandard's 128 KiB output chunk and of zlib's output growth steps.
_BOUNDARY_SIZES = (0, 1, 131_071, 131_072, 131_073, 262_144, 262_145, CAP - 1, CAP)


def _filler(size: int) -> bytes:
    """Random hex: cheap, and only 2:1 compressible (a whole message stays under the cap)."""
    return random.Random(size).randbytes((size + 1) // 2).hex()[:size].encode()


def _compressed(kind: str, payloads: list[bytes]) -> list[bytes]:
    if kind == "zlib-stream":
        return _stream(*payloads)
    if kind == "zstd-stream":
        return _zstd_messages(*payloads)
    return [zlib.compress(p) for p in payloads]


@pytest.mark.parametrize("size", _BOUNDARY_SIZES)
@pytest.mark.parametrize("kind", ["zlib-stream", "zstd-stream", "payload"])
def test_every_size_comes_out_whole_and_alone(kind: str, size: int) -> None:
    """Regression: zstd-stream cut every payload over 128 KiB and glued the rest to the next."""
    payloads = [b"before", _filler(size), b"after", b"x" * size, b"last"]
    inflater = make_inflater(kind, CAP)
    assert inflater is not None
    assert [inflater.feed(m) for m in _compressed(kind, payloads)] == payloads


@pytest.mark.parametrize("kind", ["zlib-stream", "zstd-stream", "payload"])
def test_one_byte_over_the_cap_is_refused(kind: str) -> None:
    inflater = make_inflater(kind, CAP)
    assert inflater is not None
    (message,) = _compressed(kind, [_filler(CAP + 1)])
    with pytest.raises(MessageTooLargeError, match="decompressed payload"):
        inflater.feed(message)


def test_zstd_big_payloads_in_frames_ended_per_message() -> None:
    payloads = [_filler(n) for n in (131_073, 300_000, 5, 131_072)]
    inflater = ZstdStreamInflater(CAP)
    messages = [zstandard.ZstdCompressor().compress(p) for p in payloads]
    assert [inflater.feed(m) for m in messages] == payloads


def test_zstd_long_message_at_the_smallest_cap() -> None:
    """At a 4 KiB cap every slice is 2 bytes: slow, but exact."""
    payloads = [_filler(4000), b"next"]
    inflater = ZstdStreamInflater(4096)
    assert [inflater.feed(m) for m in _zstd_messages(*payloads)] == payloads


def test_make_inflater() -> None:
    assert isinstance(make_inflater("zlib-stream", CAP), ZlibStreamInflater)
    assert isinstance(make_inflater("zstd-stream", CAP), ZstdStreamInflater)
    assert isinstance(make_inflater("payload", CAP), PayloadInflater)
    assert make_inflater(None, CAP) is None


def test_missing_zstandard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ImportError, match=r"spectacles-gateway\[zstd\]"):
        ZstdStreamInflater(CAP)


# -- through the wire, on the C hot path and the pure-Python one ---------------------


@pytest.mark.usefixtures("wire_path")
@pytest.mark.parametrize("kind", ["zlib-stream", "zstd-stream", "payload"])
def test_a_bomb_through_the_wire_is_refused_within_the_cap(kind: str) -> None:
    """Both wire paths stop inflating about one block past the cap: the bomb is 64x it."""
    (bomb,) = _compressed(kind, [b"\x00" * (64 * CAP)])
    wire, _ = open_wire(make_config(compression=kind, max_message_size=CAP))
    wire.feed(server_frame(0x2, bomb))
    tracemalloc.start()
    try:
        item = wire.next_item()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(item, WireFailed)
    assert isinstance(item.error, MessageTooLargeError)
    assert "decompressed payload" in str(item.error)
    assert item.error.close_code == 1009
    assert peak < 3 * CAP
    assert wire.next_item() is None  # nothing after the failure


@pytest.mark.usefixtures("wire_path")
@pytest.mark.parametrize("kind", ["zlib-stream", "zstd-stream", "payload"])
def test_corrupt_input_through_the_wire_names_its_compression(kind: str) -> None:
    wire, _ = open_wire(make_config(compression=kind))
    wire.feed(server_frame(0x2, b"definitely not compressed" + ZLIB_SUFFIX))
    item = wire.next_item()
    assert isinstance(item, WireFailed)
    assert isinstance(item.error, CompressionError)
    expected = {
        "zlib-stream": "corrupt zlib-stream data",
        "zstd-stream": "corrupt zstd-stream data",
        "payload": "corrupt zlib payload",
    }
    assert str(item.error).startswith(expected[kind])
