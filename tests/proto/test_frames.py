"""The lean frame reader and writer, unit by unit (the differential tests cover the rest)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_proto._frames import (
    OP_BINARY,
    OP_PING,
    OP_TEXT,
    FrameReader,
    build_close,
    build_frame,
    parse_close,
)
from gateway_proto.errors import MessageTooLargeError, ProtocolError

from ._wire_helpers import client_frames, server_frame


def test_whole_frames_in_one_chunk() -> None:
    stream = server_frame(OP_TEXT, b"a") + server_frame(OP_BINARY, b"b" * 300)
    assert FrameReader(1 << 20).feed(stream) == [(OP_TEXT, b"a"), (OP_BINARY, b"b" * 300)]


def test_an_incomplete_frame_is_kept_until_whole() -> None:
    frame = server_frame(OP_BINARY, b"x" * 70000)
    reader = FrameReader(1 << 20)
    assert reader.feed(frame[:1]) == []
    assert reader.feed(frame[1:5]) == []
    assert reader.feed(frame[5:-1]) == []
    assert reader.feed(frame[-1:]) == [(OP_BINARY, b"x" * 70000)]
    assert reader.feed(b"") == []


def test_fragments_joined_with_a_ping_between() -> None:
    stream = (
        server_frame(OP_TEXT, b"he", fin=False)
        + server_frame(OP_PING, b"p")
        + server_frame(0x0, b"llo")
    )
    reader = FrameReader(1 << 20)
    assert reader.feed(stream[:3]) == []
    assert reader.fragmenting is False
    assert reader.feed(stream[3:]) == [(OP_PING, b"p"), (OP_TEXT, b"hello")]
    assert not reader.fragmenting


def test_size_cap_on_one_frame_and_on_fragments() -> None:
    reader = FrameReader(100)
    assert reader.feed(server_frame(OP_BINARY, b"x" * 101)) == []
    assert isinstance(reader.error, MessageTooLargeError)
    assert reader.error.close_code == 1009
    reader = FrameReader(100)
    reader.feed(server_frame(OP_BINARY, b"x" * 60, fin=False) + server_frame(0x0, b"x" * 60))
    assert isinstance(reader.error, MessageTooLargeError)


def test_nothing_is_parsed_after_an_error_or_a_close() -> None:
    reader = FrameReader(1 << 20)
    assert reader.feed(server_frame(0x3, b"")) == []
    assert reader.error is not None
    assert reader.error.close_code == 1002
    assert reader.feed(server_frame(OP_TEXT, b"late")) == []
    reader = FrameReader(1 << 20)
    out = reader.feed(server_frame(0x8, b"\x03\xe8") + server_frame(OP_TEXT, b"late"))
    assert out == [(0x8, b"\x03\xe8")]
    assert reader.closed


def test_invalid_utf8_in_fragments_is_1007() -> None:
    reader = FrameReader(1 << 20)
    reader.feed(server_frame(OP_TEXT, b"\xff", fin=False))
    assert reader.error is not None
    assert reader.error.close_code == 1007


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"", (1005, "")), (b"\x0f\xa0", (4000, "")), (b"\x03\xe8bye", (1000, "bye"))],
)
def test_parse_close(payload: bytes, expected: tuple[int, str]) -> None:
    assert parse_close(payload) == expected


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x03", 1002),
        (b"\x03\xe7", 1002),
        (b"\x03\xed", 1002),
        (b"\x03\xec", 1002),
        (b"\x13\x88", 1002),
        (b"\x03\xe8\xff", 1007),
    ],
)
def test_parse_close_refuses(payload: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close(payload)
    assert info.value.close_code == code


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING]), st.binary(max_size=70000))
def test_build_frame_round_trips_through_a_wsproto_server(opcode: int, payload: bytes) -> None:
    if opcode == OP_PING:
        payload = payload[:125]
    if opcode == OP_TEXT:
        payload = payload.decode("latin-1").encode()
    frame = build_frame(opcode, payload)
    assert frame[1] & 0x80  # every client frame is masked
    kind = {OP_TEXT: "text", OP_BINARY: "binary", OP_PING: "ping"}[opcode]
    expected = payload.decode() if opcode == OP_TEXT else payload
    assert client_frames(frame) == [(kind, expected)]


def test_build_close_without_a_code() -> None:
    assert client_frames(build_close(None)) == [("close", 1005, "")]
