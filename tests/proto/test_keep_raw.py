"""``ShardConfig.keep_raw``: each dispatch carries the bytes it was decoded from.

With the option on, ``Dispatch.raw`` is the whole payload as received, after
decompression: exactly the message the server sent, whatever the chunking and
the transport compression, on the C hot path and the Python one, so code that
forwards it (the Redis publisher) hands on what the shard decoded. Off (the
default), it is ``None``, and a ``Dispatch`` built by hand is what it always was.
"""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto.codecs import JsonCodec
from gateway_proto.driver_support import GatewayEvent
from gateway_proto.errors import ConfigError
from gateway_proto.events import Dispatch

from ._wire_helpers import dispatch_messages, make_config, open_wire, server_frame
from .helpers import drive, open_connection
from .test_drain import _Driver

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _frames(compression: str | None, messages: list[bytes]) -> bytes:
    if compression == "zlib-stream":
        deflate = zlib.compressobj()
        return b"".join(
            server_frame(0x2, deflate.compress(m) + deflate.flush(zlib.Z_SYNC_FLUSH))
            for m in messages
        )
    if compression == "zstd-stream":
        compressor = zstandard.ZstdCompressor().compressobj()
        return b"".join(
            server_frame(
                0x2, compressor.compress(m) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            )
            for m in messages
        )
    if compression == "payload":
        return b"".join(server_frame(0x2, zlib.compress(m)) for m in messages)
    return b"".join(server_frame(0x1, m) for m in messages)


def _has_big_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    return False


@SETTINGS
@given(
    messages=st.lists(dispatch_messages(), min_size=1, max_size=5),
    compression=st.sampled_from(["zlib-stream", "zstd-stream", "payload", None]),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_raw_is_the_message_and_its_d_is_the_data(
    wire_path: str, messages: list[bytes], compression: str | None, cuts: list[int]
) -> None:
    wire, _ = open_wire(make_config(compression=compression, keep_raw=True))
    stream = _frames(compression, messages)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    items: list[Any] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=False):
        items += wire.receive(stream[a:b])
    assert [type(item) for item in items] == [Dispatch] * len(messages)
    loads = JsonCodec().loads  # the shard's own decoder
    for item, message in zip(items, messages, strict=True):
        assert item.raw == message
        assert loads(item.raw)["d"] == item.data
        sent = json.loads(message)["d"]
        if not _has_big_int(sent):
            assert json.loads(item.raw)["d"] == item.data == sent


def test_raw_is_none_by_default(wire_path: str) -> None:
    wire, _ = open_wire()
    (item,) = wire.receive(server_frame(0x1, b'{"t":"X","s":1,"op":0,"d":{}}'))
    assert isinstance(item, Dispatch)
    assert item.raw is None


def test_an_unusual_envelope_keeps_its_bytes_too(wire_path: str) -> None:
    # No "s" key: the careful envelope check builds this dispatch, not the inline one.
    message = b'{"op":0,"t":"X","d":[1]}'
    wire, _ = open_wire(make_config(keep_raw=True, compression=None))
    (item,) = wire.receive(server_frame(0x1, message))
    assert isinstance(item, Dispatch)
    assert (item, item.raw) == (Dispatch("X", [1], None), message)


def test_a_fragmented_message_keeps_its_bytes(wire_path: str) -> None:
    message = b'{"t":"X","s":2,"op":0,"d":"' + b"y" * 300 + b'"}'
    wire, _ = open_wire(make_config(keep_raw=True, compression=None))
    frames = server_frame(0x1, message[:100], fin=False) + server_frame(0x0, message[100:])
    (item,) = wire.receive(frames)
    assert isinstance(item, Dispatch)
    assert item.raw == message


def test_keep_raw_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="keep_raw"):
        make_config(keep_raw=1)


def test_a_dispatch_built_by_hand_is_unchanged() -> None:
    # Positional construction of the three old fields still works; raw is not
    # part of equality (two spellings of one payload are one dispatch) or repr.
    event = Dispatch("X", {"a": 1}, 5)
    assert event.raw is None
    assert event == Dispatch("X", {"a": 1}, 5, b'{"d":{"a":1}}')
    assert repr(event) == "Dispatch(name='X', data={'a': 1}, sequence=5)"


def test_the_drain_hands_the_kept_bytes_to_the_gateway_event() -> None:
    conn, peer = open_connection(config=make_config(keep_raw=True), rng=random.Random(0))
    driver = _Driver()
    drain = driver.drain_for(conn)
    conn.receive_data(peer.hello(), 0.0)
    drain.drain(conn)
    conn.identify(0.0)
    drive(conn, peer)
    conn.receive_data(peer.ready() + peer.dispatch("MESSAGE_CREATE", {"n": 1}), 1.0)
    drain.drain(conn)
    events = [item for item in driver.log if isinstance(item, GatewayEvent)]
    assert [e.name for e in events] == ["READY", "MESSAGE_CREATE"]
    for event in events:
        assert event.raw is not None
        assert json.loads(event.raw)["d"] == event.data
