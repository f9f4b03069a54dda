"""The Wire: handshake, frames, compression and codecs together; replies it writes itself."""

from __future__ import annotations

import zlib
from typing import Any

import erlpack
import h11
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_proto._frames import build_close
from gateway_proto._wire import HandshakeAccepted, HandshakeRejected, PeerClosed, Wire, WireFailed
from gateway_proto.errors import (
    CompressionError,
    DecodeError,
    HandshakeError,
    InvalidCommandError,
    MessageTooLargeError,
    ProtocolError,
)
from gateway_proto.events import Dispatch

from ._wire_helpers import (
    TOKEN,
    accept,
    client_frames,
    close_payload,
    dumps,
    make_config,
    open_wire,
    server_frame,
)

# Every test here runs on the C hot path and on the pure-Python wire layer.
pytestmark = pytest.mark.usefixtures("wire_path")

HELLO = {"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}
HELLO_ITEM = (10, {"heartbeat_interval": 41250}, None, None)


def _zlib_frames(*payloads: Any) -> list[bytes]:
    deflate = zlib.compressobj()
    return [
        server_frame(0x2, deflate.compress(dumps(p)) + deflate.flush(zlib.Z_SYNC_FLUSH))
        for p in payloads
    ]


def _dispatch(seq: int, name: str = "MESSAGE_CREATE", **d: Any) -> dict[str, Any]:
    return {"op": 0, "s": seq, "t": name, "d": d}


# -- handshake ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compression", "query"),
    [
        ("json", "zlib-stream", b"v=10&encoding=json&compress=zlib-stream"),
        ("etf", "zstd-stream", b"v=10&encoding=etf&compress=zstd-stream"),
        ("json", None, b"v=10&encoding=json"),
        ("json", "payload", b"v=10&encoding=json"),
    ],
)
def test_upgrade_request(encoding: str, compression: str | None, query: bytes) -> None:
    config = make_config(encoding=encoding, compression=compression)
    out = bytearray()
    Wire(config, config.gateway_url("wss://resume.example.test:8443/x"), out).initiate()
    server = h11.Connection(h11.SERVER)
    server.receive_data(bytes(out))
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert request.method == b"GET"
    assert request.target == b"/x?" + query
    headers = dict(request.headers)
    assert headers[b"host"] == b"resume.example.test:8443"
    assert headers[b"upgrade"].lower() == b"websocket"
    assert b"sec-websocket-extensions" not in headers  # no permessage-deflate offered


def test_bytes_read_past_the_101_are_not_lost() -> None:
    config = make_config()
    out = bytearray()
    wire = Wire(config, config.gateway_url(), out)
    wire.initiate()
    hello, ready = _zlib_frames(HELLO, _dispatch(1, "READY", v=10))
    items = wire.receive(accept(bytes(out)) + hello + ready[:5])
    assert items == [HandshakeAccepted(), HELLO_ITEM]
    assert wire.receive(ready[5:]) == [Dispatch("READY", {"v": 10}, 1)]


def test_handshake_byte_by_byte() -> None:
    config = make_config()
    out = bytearray()
    wire = Wire(config, config.gateway_url(), out)
    wire.initiate()
    data = accept(bytes(out)) + _zlib_frames(HELLO)[0]
    items = [item for i in range(len(data)) for item in wire.receive(data[i : i + 1])]
    assert items == [HandshakeAccepted(), HELLO_ITEM]


@pytest.mark.parametrize("status", [400, 403, 404, 500, 502, 503])
def test_rejected_handshake(status: int) -> None:
    config = make_config()
    out = bytearray()
    wire = Wire(config, config.gateway_url(), out)
    wire.initiate()
    reply = (
        f"HTTP/1.1 {status} Nope\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nnope!"
    ).encode()
    (item,) = wire.receive(reply)
    assert isinstance(item, HandshakeRejected)
    assert item.status_code == status
    assert isinstance(item.error, HandshakeError)
    assert item.error.status_code == status
    assert wire.receive(b"more") == []


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-accept: wrong\r\n\r\n",
        b"x" * 70_000,
    ],
    ids=["garbage", "bad-accept", "endless-head"],
)
def test_broken_handshake_reply(reply: bytes) -> None:
    config = make_config()
    out = bytearray()
    wire = Wire(config, config.gateway_url(), out)
    wire.initiate()
    (item,) = wire.receive(reply)
    assert isinstance(item, HandshakeRejected)
    assert item.status_code == 0
    assert item.error.status_code is None


# -- control frames and the close handshake -----------------------------------------


def test_ping_is_answered_with_a_pong() -> None:
    wire, out = open_wire()
    assert wire.receive(server_frame(0x9, b"are you there")) == []
    assert client_frames(bytes(out)) == [("pong", b"are you there")]


def test_pong_is_ignored() -> None:
    wire, out = open_wire()
    assert wire.receive(server_frame(0xA, b"x")) == []
    assert out == b""


def test_peer_close_is_answered_and_ends_input() -> None:
    wire, out = open_wire()
    hello = _zlib_frames(HELLO)[0]
    items = wire.receive(hello + server_frame(0x8, close_payload(4000, "bye")) + hello)
    assert items == [HELLO_ITEM, PeerClosed(4000, "bye")]
    assert wire.close_received
    assert wire.close_sent
    assert client_frames(bytes(out)) == [("close", 4000, "bye")]
    assert wire.receive(hello) == []


def test_peer_close_without_a_code() -> None:
    wire, out = open_wire()
    assert wire.receive(server_frame(0x8, b"")) == [PeerClosed(None, "")]
    assert client_frames(bytes(out)) == [("close", 1005, "")]


def test_our_close_first_then_the_peers() -> None:
    wire, out = open_wire()
    wire.send_close(4000, "resuming")
    wire.send_close(1000)  # only once
    assert client_frames(bytes(out)) == [("close", 4000, "resuming")]
    out.clear()
    assert wire.receive(server_frame(0x8, close_payload(4000))) == [PeerClosed(4000, "")]
    assert out == b""  # no second close frame


def test_no_pong_after_our_close() -> None:
    wire, out = open_wire()
    wire.send_close(4000)
    out.clear()
    wire.receive(server_frame(0x9, b"late"))
    assert out == b""


def test_close_before_the_handshake_writes_nothing() -> None:
    config = make_config()
    out = bytearray()
    wire = Wire(config, config.gateway_url(), out)
    wire.send_close(1000)
    assert wire.close_sent
    assert out == b""


def test_close_reason_is_cut_to_the_control_frame_limit() -> None:
    frame = build_close(4000, "é" * 100)
    assert client_frames(frame) == [("close", 4000, "é" * 61)]


# -- failures ------------------------------------------------------------------------


def _failure(items: list[Any]) -> ProtocolError:
    assert isinstance(items[-1], WireFailed)
    return items[-1].error


def test_bad_frame_closes_with_1002_and_ignores_input() -> None:
    wire, out = open_wire()
    hello = _zlib_frames(HELLO)[0]
    items = wire.receive(hello + server_frame(0x2, b"x", rsv=4) + hello)
    assert items[0] == HELLO_ITEM  # what came before the broken frame still counts
    error = _failure(items)
    assert error.close_code == 1002
    assert client_frames(bytes(out)) == [("close", 1002, "")]
    assert wire.receive(hello) == []


def test_message_over_the_cap_is_refused_from_its_header() -> None:
    wire, out = open_wire(make_config(max_message_size=4096))
    header_only = bytes((0x82, 127)) + (1 << 40).to_bytes(8, "big")
    error = _failure(wire.receive(header_only))
    assert isinstance(error, MessageTooLargeError)
    assert client_frames(bytes(out)) == [("close", 1009, "")]


def test_fragmented_message_over_the_cap() -> None:
    wire, _ = open_wire(make_config(max_message_size=4096, compression=None))
    first = server_frame(0x1, b"x" * 3000, fin=False)
    second = server_frame(0x0, b"x" * 3000)
    assert isinstance(_failure(wire.receive(first + second)), MessageTooLargeError)


def test_zlib_bomb_through_the_wire() -> None:
    wire, out = open_wire(make_config(max_message_size=1 << 16))
    (bomb,) = _zlib_frames({"op": 0, "d": "0" * (1 << 22)})
    assert isinstance(_failure(wire.receive(bomb)), MessageTooLargeError)
    assert client_frames(bytes(out)) == [("close", 1009, "")]


def test_corrupt_zlib_through_the_wire() -> None:
    wire, _ = open_wire()
    error = _failure(wire.receive(server_frame(0x2, b"garbage\x00\x00\xff\xff")))
    assert isinstance(error, CompressionError)
    assert error.close_code == 1007


@pytest.mark.parametrize(
    "payload", [b"not json", b"[1]", b'{"d": 1}', b'{"op": "0"}', b'{"op": 0, "t": 1}']
)

def test_malformed_payload_is_a_decode_error(payload: bytes) -> None:
    wire, out = open_wire(make_config(compression=None))
    error = _failure(wire.receive(server_frame(0x1, payload)))
    assert isinstance(error, DecodeError)
    assert client_frames(bytes(out)) == [("close", 1007, "")]  # never 1000/1001


def test_errors_never_raise_on_arbitrary_bytes() -> None:
    for seed in range(50):
        data = zlib.compress(seed.to_bytes(4, "big")) * 20
        wire, _ = open_wire()
        for item in wire.receive(data):
            assert isinstance(item, (Dispatch, tuple, WireFailed, PeerClosed))


# -- messages ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 10**6), max_size=10))
def test_zlib_stream_any_chunking(count: int, cuts: list[int]) -> None:
    payloads = [_dispatch(i, content="x" * (i * 37 % 500)) for i in range(1, count + 1)]
    stream = b"".join(_zlib_frames(*payloads))
    points = sorted({c % (len(stream) + 1) for c in cuts})
    wire, _ = open_wire()
    items = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=False):
        items += wire.receive(stream[a:b])
    assert items == [Dispatch(p["t"], p["d"], p["s"]) for p in payloads]


def test_zlib_payload_spanning_several_messages_and_fragments() -> None:
    deflate = zlib.compressobj()
    data = deflate.compress(dumps(_dispatch(1, content="y" * 5000)))
    data += deflate.flush(zlib.Z_SYNC_FLUSH)
    third = len(data) // 3
    # Message 1: two fragments; message 2: one frame; message 3 (with the suffix).
    stream = (
        server_frame(0x2, data[:10], fin=False)
        + server_frame(0x0, data[10:third])
        + server_frame(0x2, data[third : 2 * third])
        + server_frame(0x2, data[2 * third :])
    )
    wire, _ = open_wire()
    assert wire.receive(stream) == [Dispatch("MESSAGE_CREATE", {"content": "y" * 5000}, 1)]


def test_big_frames_use_16_and_64_bit_lengths() -> None:
    wire, _ = open_wire(make_config(compression=None))
    small, medium, large = (
        _dispatch(i, content="z" * n) for i, n in ((1, 10), (2, 1000), (3, 70000))
    )
    stream = b"".join(server_frame(0x1, dumps(p)) for p in (small, medium, large))
    assert [item.sequence for item in wire.receive(stream)] == [1, 2, 3]  # type: ignore[union-attr]


def test_zstd_stream_through_the_wire() -> None:
    wire, _ = open_wire(make_config(compression="zstd-stream"))
    compressor = zstandard.ZstdCompressor().compressobj()
    frames = [
        server_frame(
            0x2, compressor.compress(dumps(p)) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        )
        for p in (HELLO, _dispatch(1))
    ]
    assert wire.receive(b"".join(frames)) == [HELLO_ITEM, Dispatch("MESSAGE_CREATE", {}, 1)]


def test_payload_compression_binary_and_text() -> None:
    wire, _ = open_wire(make_config(compression="payload"))
    stream = server_frame(0x2, zlib.compress(dumps(HELLO))) + server_frame(0x1, dumps(_dispatch(1)))
    assert wire.receive(stream) == [HELLO_ITEM, Dispatch("MESSAGE_CREATE", {}, 1)]


def test_text_frames_on_zlib_stream_are_plain_json() -> None:
    wire, _ = open_wire()
    assert wire.receive(server_frame(0x1, dumps(HELLO))) == [HELLO_ITEM]


def test_etf_through_the_wire() -> None:
    wire, _ = open_wire(make_config(encoding="etf", compression="zlib-stream"))
    deflate = zlib.compressobj()
    payload = {"op": 0, "s": 4, "t": "READY", "d": {"user": {"id": 1158427385231155251}}}
    packed = erlpack.pack(payload)
    frame = server_frame(0x2, deflate.compress(packed) + deflate.flush(zlib.Z_SYNC_FLUSH))
    assert wire.receive(frame) == [Dispatch("READY", {"user": {"id": "1158427385231155251"}}, 4)]


def test_json_stdlib_fallback_through_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gateway_proto import codecs

    monkeypatch.setattr(codecs, "_orjson", None)
    monkeypatch.setitem(sys.modules, "orjson", None)
    wire, _ = open_wire()
    assert not wire._codec.uses_orjson  # type: ignore[union-attr]
    assert wire.receive(_zlib_frames(HELLO)[0]) == [HELLO_ITEM]


# -- outbound ------------------------------------------------------------------------


def test_json_goes_out_in_masked_text_frames() -> None:
    wire, out = open_wire()
    wire.write_message(wire.encode(1, 42))
    assert out[1] & 0x80  # masked
    assert client_frames(bytes(out)) == [("text", '{"op":1,"d":42}')]


def test_etf_goes_out_in_binary_frames() -> None:
    wire, out = open_wire(make_config(encoding="etf"))
    wire.write_message(wire.encode(1, None))
    ((kind, data),) = client_frames(bytes(out))
    assert kind == "binary"
    assert erlpack.unpack(data) == {b"op": 1, b"d": None}


def test_large_outbound_frames_are_framed_correctly() -> None:
    wire, out = open_wire()
    body = wire.encode(3, {"activities": [{"name": "n" * 3000}]})
    wire.write_message(body)
    assert client_frames(bytes(out)) == [("text", body.decode())]


def test_outbound_size_limit() -> None:
    wire, out = open_wire()
    with pytest.raises(InvalidCommandError) as info:
        wire.encode(2, {"token": TOKEN, "pad": "p" * 5000})
    assert "4096" in str(info.value)
    assert TOKEN not in str(info.value)
    assert out == b""
