"""Differential tests: our lean frame reader (and the Wire's inlined hot path) against wsproto.

The same server bytes, cut into any chunks, must give the same messages, pings,
pongs, closes and errors (close codes) from both. Streams are made of whole
frames, well-formed or broken on purpose (reserved bits, masks, bad opcodes,
non-minimal lengths, fragmented control frames, stray continuations, bad close
payloads, invalid UTF-8).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_proto._frames import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader, parse_close
from gateway_proto._wire import PeerClosed, WireFailed
from gateway_proto.errors import ProtocolError
from gateway_proto.events import Dispatch

from ._wire_helpers import (
    Outcome,
    close_payload,
    dumps,
    make_config,
    open_wire,
    oracle_frames,
    server_frame,
)

# Every test here runs on the C hot path and on the pure-Python wire layer.
pytestmark = pytest.mark.usefixtures("wire_path")

BIG = 1 << 30  # our own size cap is not wsproto's business: keep it out of the way
_KINDS = {0x1: "text", 0x2: "binary", OP_PING: "ping", OP_PONG: "pong"}


@st.composite
def frames(draw: st.DrawFn, payloads: st.SearchStrategy[bytes]) -> bytes:
    """One frame: usually a plausible one, sometimes broken in one way."""
    kind = draw(
        st.sampled_from(
            ["data"] * 6 + ["fragmented", "ping", "pong", "close", "broken", "continuation"]
        )
    )
    if kind == "data":
        opcode = draw(st.sampled_from([0x1, 0x2]))
        payload = draw(payloads) if opcode == 0x1 else draw(st.binary(max_size=300))
        form = draw(st.sampled_from([None, None, None, 2, 8]))
        if form is not None and len(payload) >= 126:
            form = None if form == 2 and len(payload) < 65536 else form
        return server_frame(opcode, payload, length_bytes=form)
    if kind == "fragmented":
        opcode = draw(st.sampled_from([0x1, 0x2]))
        payload = draw(payloads)
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=False)]
        out = [server_frame(opcode, pieces[0], fin=len(pieces) == 1)]
        for i, piece in enumerate(pieces[1:], start=2):
            out.append(server_frame(0x0, piece, fin=i == len(pieces)))
            if draw(st.booleans()):  # control frames may come between fragments
                out.insert(-1, server_frame(OP_PING, b"mid"))
        return b"".join(out)
    if kind in ("ping", "pong"):
        return server_frame(OP_PING if kind == "ping" else OP_PONG, draw(st.binary(max_size=125)))
    if kind == "close":
        code = draw(
            st.sampled_from(
                [None, 1000, 1001, 1002, 1004, 1005, 1012, 2999, 3000, 4000, 4004, 4999, 5000, 999]
            )
        )
        reason = draw(st.sampled_from(["", "bye", "né"]))
        payload = close_payload(code, reason)
        if draw(st.integers(0, 9)) == 0:
            payload = draw(st.sampled_from([b"\x03", b"\x03\xe8\xff\xfe"]))
        return server_frame(OP_CLOSE, payload)
    if kind == "continuation":
        return server_frame(0x0, draw(st.binary(max_size=20)), fin=draw(st.booleans()))
    # broken
    flaw = draw(
        st.sampled_from(
            [
                "rsv",
                "mask",
                "opcode",
                "minimal16",
                "minimal64",
                "control_fin",
                "control_long",
                "msb",
            ]
        )
    )
    if flaw == "rsv":
        return server_frame(0x2, b"x", rsv=draw(st.integers(1, 7)))
    if flaw == "mask":
        return server_frame(0x1, b"hi", mask=b"\x01\x02\x03\x04")
    if flaw == "opcode":
        return server_frame(draw(st.sampled_from([3, 4, 7, 0xB, 0xF])), b"")
    if flaw == "minimal16":
        return server_frame(0x2, b"short", length_bytes=2)
    if flaw == "minimal64":
        return server_frame(0x2, b"s" * 200, length_bytes=8)
    if flaw == "control_fin":
        return server_frame(OP_PING, b"", fin=False)
    if flaw == "control_long":
        return server_frame(OP_PING, b"p" * 126)
    return bytes((0x82, 127)) + (1 << 63 | 5).to_bytes(8, "big") + b"xxxxx"


_text = st.one_of(
    st.text(max_size=200).map(str.encode),
    st.binary(max_size=40),  # sometimes not UTF-8
    st.just(b"\xf0\x9f\x98\x80" * 40),
)


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def ours(chunks: list[bytes]) -> list[Outcome]:
    """Our reader's view, in the oracle's vocabulary."""
    reader = FrameReader(BIG)
    out: list[Outcome] = []
    for chunk in chunks:
        for opcode, payload in reader.feed(chunk):
            if opcode == OP_CLOSE:
                code, reason = parse_close(payload)
                out.append(("close", code, reason))
                return out
            if opcode == OP_TEXT:
                try:  # unfragmented text is checked by the JSON codec, with the same code
                    payload.decode()
                except UnicodeDecodeError:
                    out.append(("error", 1007))
                    return out
            out.append((_KINDS[opcode], payload))
        if reader.error is not None:
            out.append(("error", reader.error.close_code))
            return out
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(frames(_text), min_size=1, max_size=8), st.lists(st.integers(0, 10**6), max_size=12)
)
def test_reader_matches_wsproto_in_any_chunking(frame_list: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame_list)
    expected = oracle_frames([stream])
    assert ours(_cut(stream, cuts)) == expected
    assert oracle_frames(_cut(stream, cuts)) == expected  # the oracle agrees with itself


@settings(max_examples=100, deadline=None)
@given(st.lists(frames(_text), min_size=1, max_size=6))
def test_reader_matches_wsproto_byte_by_byte(frame_list: list[bytes]) -> None:
    stream = b"".join(frame_list)
    expected = oracle_frames([stream])
    assert ours([stream[i : i + 1] for i in range(len(stream))]) == expected


# -- the Wire's inlined hot path, against wsproto + json.loads --------------------------

_envelopes = st.fixed_dictionaries(
    {
        "op": st.sampled_from([0, 1, 7, 9, 10, 11]),
        "d": st.one_of(st.none(), st.text(max_size=30), st.integers()),
    },
    optional={
        # The sequence's bounds too: the C hot path must refuse exactly what Python does.
        "s": st.integers(0, 10**6) | st.sampled_from([-1, 2**53 - 1, 2**53, 2**64, -(2**64)]),
        "t": st.sampled_from(["READY", "MESSAGE_CREATE"]),
    },
)
_json_payloads = st.one_of(
    _envelopes.map(dumps),
    _envelopes.map(dumps),
    _envelopes.map(dumps),
    st.sampled_from([b"[]", b"{", b'{"op":"x"}', b"\xff", b'{"op":0,"s":"1"}']),
)


def _oracle_wire(chunks: list[bytes]) -> list[Outcome]:
    """wsproto's frames, then json.loads and the envelope rules: what the Wire must give."""
    out: list[Outcome] = []
    for item in oracle_frames(chunks):
        if item[0] in ("text", "binary"):
            try:
                obj: Any = json.loads(item[1])
            except ValueError:
                out.append(("error", 1007))
                return out
            ok = isinstance(obj, dict) and type(obj.get("op")) is int
            s = obj.get("s") if isinstance(obj, dict) else None
            ok = ok and (s is None or (type(s) is int and 0 <= s <= 2**53 - 1))
            ok = ok and (obj.get("t") is None or type(obj.get("t")) is str)
            ok = ok and not (obj.get("op") == 0 and obj.get("t") is None)  # a dispatch's name
            if not ok:
                out.append(("error", 1007))
                return out
            out.append(("payload", (obj["op"], obj.get("d"), obj.get("s"), obj.get("t"))))
        elif item[0] in ("close", "error"):
            code = None if item[0] == "close" and item[1] == 1005 else item[1]
            out.append((item[0], code, *item[2:]))
            return out
    return out


def _wire_outcomes(chunks: list[bytes]) -> list[Outcome]:
    wire, _ = open_wire(make_config(compression=None, max_message_size=BIG))
    out: list[Outcome] = []
    for chunk in chunks:
        for item in wire.receive(chunk):
            if isinstance(item, Dispatch):
                out.append(("payload", (0, item.data, item.sequence, item.name)))
            elif isinstance(item, tuple):
                out.append(("payload", item))
            elif isinstance(item, PeerClosed):
                out.append(("close", item.code, item.reason))
            elif isinstance(item, WireFailed):
                assert isinstance(item.error, ProtocolError)
                out.append(("error", item.error.close_code))
    return out


@settings(max_examples=250, deadline=None)
@given(
    st.lists(frames(_json_payloads), min_size=1, max_size=8),
    st.lists(st.integers(0, 10**6), max_size=12),
)

def test_wire_matches_wsproto_and_json(frame_list: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame_list)
    assert _wire_outcomes(_cut(stream, cuts)) == _oracle_wire([stream])
