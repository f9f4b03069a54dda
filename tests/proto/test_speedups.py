"""The C hot path (``gateway_proto._speedups``) against the pure-Python wire layer.

The Python code in ``_wire_reader.py`` is the reference: for the same server bytes, in
any chunking, a Wire with the C scanner must give the same items (dispatches,
other payloads, closes, failures with the same error type, message and close
code) and write the same bytes back as a Wire without it. The streams mix what
the scanner takes (whole zlib-stream, zstd-stream and payload-compressed
messages, plain text frames) with everything it must leave alone or refuse:
payloads split across messages, corrupt or truncated compressed data,
decompression bombs, masked and non-minimal frames, control frames, fragments,
oversized messages, bad JSON and odd envelopes. Both paths run with
``keep_raw`` off and on, and must agree on every dispatch's ``raw`` too.
"""

from __future__ import annotations

import json
import os
import random
import zlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import erlpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto import _wire
from gateway_proto._wire import PeerClosed, Wire, WireFailed
from gateway_proto.codecs import _envelope
from gateway_proto.compression import PayloadInflater, ZlibStreamInflater
from gateway_proto.events import Dispatch

from ._wire_helpers import (
    accept,
    client_frames,
    close_payload,
    make_config,
    open_wire,
    server_frame,
)

if _wire.Scanner is None:
    if os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS"):
        pytest.skip("the C extension was not built", allow_module_level=True)
    pytest.fail("gateway_proto._speedups is missing: was the C extension built?")

Scanner = _wire.Scanner

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- streams ------------------------------------------------------------------------

_envelopes = st.one_of(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from([0, 0, 0, 1, 7, 9, 10, 11]),
            "d": st.one_of(st.none(), st.text(max_size=20), st.integers(), st.booleans()),
            "s": st.one_of(st.none(), st.integers(0, 10**6)),
            "t": st.one_of(st.none(), st.sampled_from(["READY", "RESUMED", "MESSAGE_CREATE"])),
        }
    ),
    # Odd envelopes: missing keys, wrong types, bools, huge ints, not a map.
    st.fixed_dictionaries(
        {},
        optional={
            "op": st.one_of(st.just(0), st.booleans(), st.just(2**70), st.text(max_size=3)),
            "d": st.integers(),
            "s": st.one_of(st.just(1), st.just("1"), st.just(True)),
            "t": st.one_of(st.just("X"), st.just(1)),
        },
    ),
    st.lists(st.integers(), max_size=3),
)
_json = st.one_of(
    _envelopes.map(lambda obj: json.dumps(obj).encode()),
    st.just(b'{"op":0,"d":{"content":"' + b"y" * 5000 + b'"},"s":1,"t":"BIG"}'),
    st.sampled_from([b"", b"{", b"\xff", b"null", b'{"op":0}x', b"[1,2"]),
)


@st.composite
def zlib_streams(draw: st.DrawFn) -> list[bytes]:
    """Frames of one zlib-stream connection, with the usual and the unusual mixed in."""
    deflate = zlib.compressobj()
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["message"] * 6 + ["split", "corrupt", "other", "text"]))
        payload = draw(_json)
        if kind == "text":  # a text frame on a compressed connection is not inflated
            out.append(server_frame(0x1, payload))
            continue
        if kind == "other":
            out.append(draw(_other_frames))
            continue
        body = deflate.compress(payload) + deflate.flush(zlib.Z_SYNC_FLUSH)
        if kind == "split":  # one payload over two messages: only the last has the suffix
            cut = draw(st.integers(0, len(body) - 1))
            out += [server_frame(0x2, body[:cut]), server_frame(0x2, body[cut:])]
        elif kind == "corrupt":
            at = draw(st.integers(0, len(body) - 1))
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
            out.append(server_frame(0x2, body))
        else:
            out.append(server_frame(0x2, body, length_bytes=draw(_length_forms(len(body)))))
    return out


def _big_json(draw: st.DrawFn) -> bytes:
    """A payload that compresses only 2:1: several zstd blocks' worth of input slices."""
    size = draw(st.integers(1000, 9000))
    text = random.Random(size).randbytes(size // 2).hex()
    return b'{"op":0,"d":"%s","s":2,"t":"BIG"}' % text.encode()


def _corrupted(draw: st.DrawFn, body: bytes) -> bytes:
    if not body:
        return b"\x00"
    at = draw(st.integers(0, len(body) - 1))
    return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]


#: Decompresses to more than either cap the differential tests use.
_BOMB = b'{"op":0,"d":"' + b"0" * (3 << 20) + b'","s":1,"t":"X"}'


@st.composite
def zstd_streams(draw: st.DrawFn) -> list[bytes]:
    """Frames of one zstd-stream connection: one payload per message, unusual ones mixed in."""
    compressor = zstandard.ZstdCompressor().compressobj()
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(
            st.sampled_from(
                ["message"] * 5 + ["big", "ended", "corrupt", "bomb", "other", "text"]
            )
        )
        if kind == "text":  # a text frame on a compressed connection is not inflated
            out.append(server_frame(0x1, draw(_json)))
            continue
        if kind == "other":
            out.append(draw(_other_frames))
            continue
        payload = _big_json(draw) if kind == "big" else _BOMB if kind == "bomb" else draw(_json)
        if kind == "ended":  # a server that ends the zstd frame after each message
            body = zstandard.ZstdCompressor().compress(payload)
        else:
            flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            body = compressor.compress(payload) + compressor.flush(flush)
        if kind == "corrupt":
            body = _corrupted(draw, body)
        out.append(server_frame(0x2, body, length_bytes=draw(_length_forms(len(body)))))
    return out


@st.composite
def payload_streams(draw: st.DrawFn) -> list[bytes]:
    """Frames of a ``compress: true`` connection: each binary message a whole zlib stream."""
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(
            st.sampled_from(
                ["message"] * 5
                + ["big", "corrupt", "truncated", "trailing", "bomb", "other", "text"]
            )
        )
        if kind == "text":  # small payloads come uncompressed, in text frames
            out.append(server_frame(0x1, draw(_json)))
            continue
        if kind == "other":
            out.append(draw(_other_frames))
            continue
        payload = _big_json(draw) if kind == "big" else _BOMB if kind == "bomb" else draw(_json)
        body = zlib.compress(payload)
        if kind == "corrupt":
            body = _corrupted(draw, body)
        elif kind == "truncated":
            body = body[: draw(st.integers(0, len(body) - 1))]
        elif kind == "trailing":
            body += draw(st.binary(min_size=1, max_size=4))
        out.append(server_frame(0x2, body, length_bytes=draw(_length_forms(len(body)))))
    return out


def _length_forms(n: int) -> st.SearchStrategy[int | None]:
    forms: list[int | None] = [None, None, None, 8]
    if n >= 126:
        forms.append(2)
    else:
        forms.append(2)  # not minimal: refused, by both paths alike
    return st.sampled_from(forms)


_other_frames = st.one_of(
    st.builds(lambda p: server_frame(0x9, p), st.binary(max_size=10)),
    st.builds(lambda p: server_frame(0xA, p), st.binary(max_size=10)),
    st.just(server_frame(0x8, close_payload(4000, "bye"))),
    st.builds(lambda p: server_frame(0x2, p, mask=b"abcd"), st.binary(max_size=10)),
    st.builds(lambda p: server_frame(0x2, p, fin=False), st.binary(max_size=10)),
    st.builds(lambda p: server_frame(0x0, p), st.binary(max_size=10)),
    st.builds(lambda p: server_frame(0x2, p, rsv=4), st.binary(max_size=10)),
    st.binary(min_size=1, max_size=12),  # noise where a header should be
)


@st.composite
def plain_streams(draw: st.DrawFn) -> list[bytes]:
    """Frames of a connection without transport compression (JSON in text frames)."""
    frames = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.integers(0, 5)) == 0:
            frames.append(draw(_other_frames))
        else:
            opcode = draw(st.sampled_from([0x1, 0x1, 0x1, 0x2]))
            payload = draw(_json)
            form = draw(_length_forms(len(payload)))
            frames.append(server_frame(opcode, payload, length_bytes=form))
    return frames


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=False)]


# -- the two paths ------------------------------------------------------------------


def _run(config_options: dict[str, Any], chunks: list[bytes], scanner: Any) -> list[Any]:
    saved = _wire.Scanner
    _wire.Scanner = scanner
    try:
        config = make_config(**config_options)
        out = bytearray()
        wire = Wire(config, config.gateway_url(), out)
        assert (wire.fast_next is None) == (scanner is None)
        wire.initiate()
        wire.receive(accept(bytes(out)))
    finally:
        _wire.Scanner = saved
    out.clear()
    outcome: list[Any] = []
    for chunk in chunks:
        for item in wire.receive(chunk):
            if isinstance(item, WireFailed):
                error = item.error
                outcome.append(("failed", type(error), str(error), error.close_code))
            elif isinstance(item, Dispatch):  # raw is not part of equality: compare it too
                outcome.append((item, item.raw))
            else:
                outcome.append(item)
    outcome.append(("wrote", client_frames(bytes(out))))  # masks differ: compare frames
    return outcome


def _same_on_both_paths(options: dict[str, Any], chunks: list[bytes]) -> None:
    for keep_raw in (False, True):
        fast = _run({**options, "keep_raw": keep_raw}, chunks, Scanner)
        reference = _run({**options, "keep_raw": keep_raw}, chunks, None)
        assert fast == reference
        raws = [i[1] for i in reference if isinstance(i, tuple) and isinstance(i[0], Dispatch)]
        assert all(isinstance(raw, bytes) if keep_raw else raw is None for raw in raws)


@SETTINGS
@given(
    zlib_streams(),
    st.lists(st.integers(0, 10**6), max_size=8),
    st.sampled_from([4096, 1 << 20]),
)
def test_zlib_stream_json_matches_the_python_path(
    frames: list[bytes], cuts: list[int], max_size: int
) -> None:
    stream = b"".join(frames)
    _same_on_both_paths({"max_message_size": max_size}, _cut(stream, cuts))


@SETTINGS
@given(
    zstd_streams(),
    st.lists(st.integers(0, 10**6), max_size=8),
    st.sampled_from([4096, 1 << 20]),
)
def test_zstd_stream_json_matches_the_python_path(
    frames: list[bytes], cuts: list[int], max_size: int
) -> None:
    stream = b"".join(frames)
    options = {"compression": "zstd-stream", "max_message_size": max_size}
    _same_on_both_paths(options, _cut(stream, cuts))


@SETTINGS
@given(
    payload_streams(),
    st.lists(st.integers(0, 10**6), max_size=8),
    st.sampled_from([4096, 1 << 20]),
)
def test_payload_compression_json_matches_the_python_path(
    frames: list[bytes], cuts: list[int], max_size: int
) -> None:
    stream = b"".join(frames)
    options = {"compression": "payload", "max_message_size": max_size}
    _same_on_both_paths(options, _cut(stream, cuts))


@SETTINGS
@given(plain_streams(), st.lists(st.integers(0, 10**6), max_size=8))
def test_uncompressed_json_matches_the_python_path(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frames)
    _same_on_both_paths({"compression": None}, _cut(stream, cuts))


_etf_payloads = st.one_of(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from([0, 11]),
            "d": st.one_of(st.none(), st.text(max_size=10)),
            "s": st.integers(0, 1000),
            "t": st.sampled_from(["READY", "MESSAGE_CREATE"]),
        }
    ).map(lambda obj: bytes(erlpack.pack(obj))),
    st.binary(max_size=20),
)


@SETTINGS
@given(
    st.lists(_etf_payloads, min_size=1, max_size=6),
    st.lists(st.integers(0, 10**6), max_size=6),
)
def test_zlib_stream_etf_matches_the_python_path(payloads: list[bytes], cuts: list[int]) -> None:
    deflate = zlib.compressobj()
    stream = b"".join(
        server_frame(0x2, deflate.compress(p) + deflate.flush(zlib.Z_SYNC_FLUSH)) for p in payloads
    )
    _same_on_both_paths({"encoding": "etf"}, _cut(stream, cuts))


@SETTINGS
@given(st.binary(max_size=400), st.lists(st.integers(0, 10**6), max_size=6))
def test_arbitrary_bytes_match_the_python_path(data: bytes, cuts: list[int]) -> None:
    for compression in ("zlib-stream", "zstd-stream", "payload", None):
        _same_on_both_paths({"compression": compression}, _cut(data, cuts))


def _compressed_messages(compression: str | None, *payloads: bytes) -> bytes:
    """Frames as a server sends them: one payload per message, one context per connection."""
    if compression == "zlib-stream":
        deflate = zlib.compressobj()
        bodies = [deflate.compress(p) + deflate.flush(zlib.Z_SYNC_FLUSH) for p in payloads]
    elif compression == "zstd-stream":
        compressor = zstandard.ZstdCompressor().compressobj()
        flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        bodies = [compressor.compress(p) + compressor.flush(flush) for p in payloads]
    elif compression == "payload":
        bodies = [zlib.compress(p) for p in payloads]
    else:
        return b"".join(server_frame(0x1, p) for p in payloads)
    return b"".join(server_frame(0x2, body) for body in bodies)


@pytest.mark.parametrize("compression", ["zlib-stream", "zstd-stream", "payload", None])
def test_the_c_path_takes_every_transport_compression(compression: str | None) -> None:
    """Regression: zstd-stream and payload messages went through Python's inflater per message."""
    wire, _ = open_wire(make_config(compression=compression))
    assert wire.fast_next is not None
    dispatch = b'{"op":0,"d":{"a":1},"s":3,"t":"MESSAGE_CREATE"}'
    other = b'{"op":11,"d":"%s","s":null,"t":null}' % (b"x" * 300,)
    wire.feed(_compressed_messages(compression, dispatch, other))
    assert wire.fast_next() == Dispatch("MESSAGE_CREATE", {"a": 1}, 3)
    assert wire.fast_next() == (11, "x" * 300, None, None)
    assert wire.messages == 2


# -- the scanner on its own ---------------------------------------------------------


def _reraise(exc: BaseException) -> Any:
    raise exc


def _plain_scanner(decode: Callable[[bytes], Any] = json.loads) -> Any:
    return Scanner(
        decode=decode,
        envelope=_envelope,
        on_error=_reraise,
        max_size=4096,
        inflate=False,
        decoded=False,
        dispatch=Dispatch,
    )


def test_scanner_takes_a_whole_frame_and_moves_past_it() -> None:
    frame = server_frame(0x1, b'{"op":0,"d":{"a":1},"s":5,"t":"MESSAGE_CREATE"}')
    scanner = _plain_scanner()
    scanner.data = b"xx" + frame + b"\x81"
    scanner.pos = 2
    assert scanner.next() == Dispatch("MESSAGE_CREATE", {"a": 1}, 5)
    assert scanner.pos == 2 + len(frame)
    assert scanner.next() is None  # half a header: left alone
    assert scanner.pos == 2 + len(frame)


@pytest.mark.parametrize(
    "frame",
    [
        server_frame(0x1, b'{"op":11,"d":null,"s":null,"t":null}')[:-1],  # incomplete
        server_frame(0x9, b"ping"),
        server_frame(0x1, b"{}", mask=b"abcd"),
        server_frame(0x1, b"{}", length_bytes=2),  # not minimal
        server_frame(0x1, b"{}", length_bytes=8),
        server_frame(0x1, b"{}", fin=False),
        server_frame(0x1, b"x" * 5000),  # over max_size
        bytes((0x81, 127)) + (2**63).to_bytes(8, "big"),  # a length with the top bit set
        bytes((0x81, 127)) + (2**64 - 1).to_bytes(8, "big"),
    ],
)
def test_scanner_leaves_the_unusual_to_python(frame: bytes) -> None:
    scanner = _plain_scanner()
    scanner.data = frame
    assert scanner.next() is None
    assert scanner.pos == 0


def test_scanner_takes_nothing_while_a_fragmented_message_is_in_progress() -> None:
    scanner = _plain_scanner()
    scanner.data = server_frame(0x1, b'{"op":11,"d":null,"s":null,"t":null}')
    scanner.fragmenting = True
    assert scanner.next() is None
    scanner.fragmenting = False
    assert scanner.next() == (11, None, None, None)  # any other op: a tuple


def test_scanner_distrusts_its_settable_state() -> None:
    scanner = _plain_scanner()
    scanner.data = b"\x81\x00"
    for pos in (-1, 3, 10**6):
        scanner.pos = pos
        assert scanner.next() is None
    with pytest.raises(TypeError):
        scanner.data = bytearray(b"\x81\x00")
    with pytest.raises(AttributeError):
        Scanner(json.loads, _envelope, _reraise, 4096, True, False, zlib_stream=object())  # type: ignore[arg-type]
    not_a_bytearray = SimpleNamespace(decompress=len, pending=b"", check=len)
    with pytest.raises(TypeError, match="bytearray"):
        Scanner(json.loads, _envelope, _reraise, 4096, True, False, zlib_stream=not_a_bytearray)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_size"):
        Scanner(json.loads, _envelope, _reraise, -1, False, False)
    with pytest.raises(ValueError, match="at most one"):
        Scanner(
            json.loads, _envelope, _reraise, 4096, True, False,
            zlib_stream=ZlibStreamInflater(4096), payload=PayloadInflater(4096),
        )
    with pytest.raises(AttributeError):
        Scanner(json.loads, _envelope, _reraise, 4096, True, False, zstd_stream=object())  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        Scanner(json.loads, _envelope, _reraise, 4096, True, False, payload=object())  # type: ignore[arg-type]


def test_a_scanner_whose_init_never_ran_takes_nothing() -> None:
    scanner = Scanner.__new__(Scanner)
    assert scanner.data == b""
    scanner.data = server_frame(0x1, b'{"op":11,"d":null,"s":null,"t":null}')
    assert scanner.next() is None


def test_scanner_hands_errors_to_on_error_after_taking_the_frame() -> None:
    def broken(data: bytes) -> Any:
        raise ValueError("nope")

    seen: list[BaseException] = []
    scanner = Scanner(
        decode=broken, envelope=_envelope, on_error=seen.append, max_size=4096,
        inflate=False, decoded=False,
    )
    scanner.data = server_frame(0x1, b"{}")
    assert scanner.next() is None  # what on_error returned
    assert [str(e) for e in seen] == ["nope"]
    assert scanner.pos == len(scanner.data)
    strict = _plain_scanner(broken)  # on_error raises it again
    strict.data = scanner.data
    with pytest.raises(ValueError, match="nope"):
        strict.next()


def test_python_path_fixture_switches_the_scanner_off(wire_path: str) -> None:
    config = make_config()
    wire = Wire(config, config.gateway_url(), bytearray())
    assert (wire.fast_next is None) == (wire_path == "python")


def test_peer_close_is_the_same_on_both_paths() -> None:
    frames = [server_frame(0x1, b'{"op":11,"d":null,"s":null,"t":null}')] * 2
    stream = b"".join(frames) + server_frame(0x8, close_payload(4000, "bye"))
    fast = _run({"compression": None}, [stream], Scanner)
    assert fast == _run({"compression": None}, [stream], None)
    assert PeerClosed(4000, "bye") in fast
