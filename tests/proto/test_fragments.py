"""Fragmented messages: memory bounded by the message, fragments counted by the size cap.

A server may split any message into continuation frames (one server
reimplementation sends zlib-stream messages as 1 KiB fragments). What the
reader keeps while a message is incomplete must stay close to the message's
size, however small the fragments, and fragments the cap does not see (empty
ones) must still be bounded.
"""

from __future__ import annotations

import gc
import json
import random
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from gateway_proto._frames import MIN_FRAGMENT_CHARGE, FrameReader
from gateway_proto._wire import WireFailed
from gateway_proto.config import DEFAULT_MAX_MESSAGE_SIZE
from gateway_proto.errors import MessageTooLargeError
from gateway_proto.events import Dispatch

from ._wire_helpers import client_frames, make_config, open_wire, server_frame

# The Wire tests run on the C hot path and on the pure-Python wire layer.
both_wire_paths = pytest.mark.usefixtures("wire_path")


def _fragmented(opcode: int, message: bytes, size: int) -> bytes:
    """``message`` as a first frame and continuation frames of ``size`` bytes each."""
    pieces = [message[i : i + size] for i in range(0, len(message), size)] or [b""]
    last = len(pieces) - 1
    return b"".join(
        server_frame(opcode if i == 0 else 0x0, piece, fin=i == last)
        for i, piece in enumerate(pieces)
    )


def _dispatch(content: str) -> bytes:
    payload = {"op": 0, "s": 1, "t": "MESSAGE_CREATE", "d": {"content": content}}
    return json.dumps(payload, separators=(",", ":")).encode()


def _peak(receive: Callable[[bytes], Any], stream: bytes) -> tuple[int, Any]:
    """The most memory allocated at once while ``receive(stream)`` ran, and its result."""
    gc.collect()
    tracemalloc.start()
    try:
        result = receive(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


_CONTENT = random.Random(0).randbytes(32 * 1024).hex()  # 64 KiB of text
_MESSAGE = _dispatch(_CONTENT)


def test_tiny_fragments_cost_memory_in_proportion_to_the_message() -> None:
    """Regression: each fragment was its own bytes object (~21x the message in memory)."""
    stream = _fragmented(0x1, _MESSAGE, 2)  # ~33,000 two-byte frames
    peak, out = _peak(FrameReader(DEFAULT_MAX_MESSAGE_SIZE).feed, stream)
    assert out == [(0x1, _MESSAGE)]
    # One growing buffer, then the message's bytes: about twice its size.
    assert peak < 3 * len(_MESSAGE), peak / len(_MESSAGE)


@both_wire_paths
def test_a_fragmented_message_costs_the_wire_no_more_than_a_whole_one() -> None:
    expected = [Dispatch("MESSAGE_CREATE", {"content": _CONTENT}, 1)]
    whole, _ = open_wire(make_config(compression=None))
    peak_whole, items = _peak(whole.receive, server_frame(0x1, _MESSAGE))
    assert items == expected
    fragmented, _ = open_wire(make_config(compression=None))
    peak_fragmented, items = _peak(fragmented.receive, _fragmented(0x1, _MESSAGE, 2))
    assert items == expected
    # Decoding dominates both (the JSON parser's own buffers); fragments add a buffer.
    assert peak_fragmented < peak_whole + 3 * len(_MESSAGE), (peak_fragmented, peak_whole)


@both_wire_paths
def test_empty_continuations_are_counted_by_the_cap() -> None:
    """Regression: zero-length continuations cost nothing against the cap, forever."""
    config = make_config(compression=None, max_message_size=4096)
    wire, out = open_wire(config)
    start = server_frame(0x1, b'{"op":', fin=False)
    empty = server_frame(0x0, b"", fin=False)
    items = wire.receive(start + empty * 10_000)
    assert len(items) == 1
    assert isinstance(items[0], WireFailed)
    assert isinstance(items[0].error, MessageTooLargeError)
    assert f"at least {MIN_FRAGMENT_CHARGE} bytes" in str(items[0].error)
    assert client_frames(bytes(out)) == [("close", 1009, "")]


@both_wire_paths
def test_empty_continuations_within_the_cap_are_fine() -> None:
    config = make_config(compression=None, max_message_size=4096)
    wire, _ = open_wire(config)
    message = _dispatch("x")
    empty = server_frame(0x0, b"", fin=False)
    count = 4096 // MIN_FRAGMENT_CHARGE - 2  # the first frame and the last count too
    stream = server_frame(0x1, message, fin=False) + empty * count + server_frame(0x0, b"")
    assert wire.receive(stream) == [Dispatch("MESSAGE_CREATE", {"content": "x"}, 1)]


@both_wire_paths
def test_an_empty_first_fragment_starts_the_message() -> None:
    wire, _ = open_wire(make_config(compression=None))
    message = _dispatch("y")
    stream = server_frame(0x1, b"", fin=False) + server_frame(0x0, message)
    assert wire.receive(stream) == [Dispatch("MESSAGE_CREATE", {"content": "y"}, 1)]


@both_wire_paths
def test_one_kib_zlib_fragments_of_a_20_mb_message() -> None:
    """What a server reimplementation does: zlib-stream messages in 1 KiB fragments."""
    content = random.Random(1).randbytes(10_000_000).hex()
    deflate = zlib.compressobj(1)
    blob = deflate.compress(_dispatch(content)) + deflate.flush(zlib.Z_SYNC_FLUSH)
    after = deflate.compress(_dispatch("after")) + deflate.flush(zlib.Z_SYNC_FLUSH)
    stream = _fragmented(0x2, blob, 1024) + _fragmented(0x2, after, 1024)
    wire, _ = open_wire()
    items = wire.receive(stream)
    assert [type(item).__name__ for item in items] == ["Dispatch", "Dispatch"]
    assert items[0] == Dispatch("MESSAGE_CREATE", {"content": content}, 1)
    assert items[1] == Dispatch("MESSAGE_CREATE", {"content": "after"}, 1)
