"""``GatewayConnection.take_dispatches``: the drivers' hot path gives what ``events()`` gives.

A driver alternates ``take_dispatches`` (runs of ordinary dispatches, made into its
own objects) and ``next_event`` (everything else). Whatever the server sends and
however it is cut, that must hand out the same dispatches, in the same order, with
the same other events between them, the same sequence, duplicates and counts as
draining ``events()``, with the C extension and without it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto import GatewayConnection, _wire
from gateway_proto.events import Dispatch

from ._wire_helpers import server_frame
from .helpers import GatewayPeer, make_config, ready_connection, stdlib_zlib

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_NAMES = ["MESSAGE_CREATE", "TYPING_START", "GUILD_CREATE", "READY", "RESUMED", "NEW_A", "NEW_B"]
_MALFORMED = [b"{", b"null", b'{"op":0}', b'{"op":0,"d":1,"s":"2","t":"X"}', b"[1]"]
#: The names counted apart at most (as ShardCounters bounds them); the rest are "other".
_MAX_NAMES = 3


@st.composite
def _messages(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """What a server (faithful, replaying or hostile) sends after READY."""
    out: list[tuple[Any, ...]] = []
    seq = 1  # READY was 1
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["dispatch"] * 6 + ["replay", "none", "op", "bad", "big"]))
        if kind in {"dispatch", "big"}:
            seq += draw(st.integers(1, 3))
            size = 300_000 if kind == "big" else draw(st.integers(0, 40))
            out.append(("dispatch", draw(st.sampled_from(_NAMES)), {"x": "y" * size}, seq))
        elif kind == "replay":
            out.append(("dispatch", draw(st.sampled_from(_NAMES)), {}, draw(st.integers(0, seq))))
        elif kind == "none":
            out.append(("dispatch", draw(st.sampled_from(_NAMES)), [1], None))
        elif kind == "op":
            out.append(("op", draw(st.sampled_from([1, 11, 7, 9])), False))
        else:
            out.append(("raw", draw(st.sampled_from(_MALFORMED))))
    return out


def _wire_bytes(peer: GatewayPeer, messages: list[tuple[Any, ...]]) -> bytes:
    data = b""
    for message in messages:
        if message[0] == "dispatch":
            _, name, d, s = message
            data += peer.payload(0, d, s, name)
        elif message[0] == "op":
            data += peer.payload(message[1], message[2])
        else:
            data += peer.encoded(message[1])
    return data


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=False)]


def _count(counts: dict[str, int], name: str) -> None:
    if name in counts or len(counts) < _MAX_NAMES:
        counts[name] = counts.get(name, 0) + 1
    else:
        counts["other"] = counts.get("other", 0) + 1


def _shown(event: Any) -> Any:
    if type(event) is Dispatch:
        return ("D", event.name, event.data, event.sequence, event.raw)
    return repr(event)


def _make(name: str, data: Any, sequence: int | None, raw: bytes | None) -> Any:
    return ("D", name, data, sequence, raw)


def _connection(options: dict[str, Any], c_path: bool) -> tuple[GatewayConnection, GatewayPeer]:
    saved = _wire.Scanner
    if not c_path:
        _wire.Scanner = None
    try:
        conn, peer = ready_connection(config=make_config(**options))
    finally:
        _wire.Scanner = saved
    assert (conn._wire.fast_run is None) == (not c_path)
    return conn, peer


def _outcome(
    conn: GatewayConnection, chunks: list[bytes], take: tuple[int, int] | None
) -> tuple[Any, ...]:
    """What draining gives: by ``events()`` (``take`` None), else by (limit, bound) runs."""
    counts: dict[str, int] = {"MESSAGE_CREATE": 0}
    shown: list[Any] = []
    for chunk in chunks:
        conn.receive_data(chunk, 1.0)
        if take is None:
            for event in conn.events():
                if type(event) is Dispatch:
                    _count(counts, event.name)
                shown.append(_shown(event))
            continue
        limit, over = take
        while True:
            into: list[Any] = []
            bound = -1 if over < 0 else conn.payload_bytes + over
            taken = conn.take_dispatches(_make, into, limit, counts=counts, payload_bound=bound)
            assert taken == len(into) <= limit
            shown += into
            if taken:
                continue
            pulled = conn.next_event()
            if pulled is None:
                break
            if type(pulled) is Dispatch:
                _count(counts, pulled.name)
            shown.append(_shown(pulled))
    return (
        shown,
        counts,
        conn.sequence,
        conn.duplicates_dropped,
        conn.payload_bytes,
        conn.messages_decoded,
        conn.state,
        len(conn.data_to_send()),
    )


@SETTINGS
@given(
    _messages(),
    st.lists(st.integers(0, 10**6), max_size=6),
    st.sampled_from(["json", "etf"]),
    st.sampled_from(["zlib-stream", "zstd-stream", None]),
    st.tuples(st.integers(1, 5), st.sampled_from([-1, 0, 50]), st.booleans()),
)
def test_runs_and_next_event_give_what_events_gives(
    messages: list[tuple[Any, ...]],
    cuts: list[int],
    encoding: str,
    compression: str | None,
    take_and_raw: tuple[int, int, bool],
) -> None:
    *take, keep_raw = take_and_raw
    options = {"encoding": encoding, "compression": compression, "keep_raw": keep_raw}
    with stdlib_zlib():  # the runs inflate with zlib-ng: the two must agree too
        reference_conn, peer = _connection(options, c_path=True)
    chunks = _cut(_wire_bytes(peer, messages), cuts)
    reference = _outcome(reference_conn, chunks, None)
    for c_path in (True, False):
        conn, _ = _connection(options, c_path)
        assert _outcome(conn, chunks, (take[0], take[1])) == reference


@SETTINGS
@given(st.binary(max_size=400))  # alone: st.binary beside other draws trips -bb in hypothesis
def test_arbitrary_bytes_give_what_events_gives(noise: bytes) -> None:
    # Whatever follows a few good dispatches (a binary frame of noise, then noise where
    # a header should be), the two ways of draining agree, and neither raises.
    for compression in ("zlib-stream", None):
        options = {"compression": compression}
        with stdlib_zlib():
            reference_conn, peer = _connection(options, c_path=True)
        good = peer.dispatch("MESSAGE_CREATE", {"n": 1}) + peer.dispatch("NEW_NAME", {"n": 2})
        data = good + server_frame(0x2, noise) + noise
        chunks = _cut(data, [len(good) // 2, len(good) + 3, len(data) - len(noise) // 2])
        reference = _outcome(reference_conn, chunks, None)
        for c_path in (True, False):
            conn, _ = _connection(options, c_path)
            assert _outcome(conn, chunks, (3, -1)) == reference


def test_a_run_stops_where_the_state_machine_has_work() -> None:
    conn, peer = ready_connection()
    data = (
        peer.dispatch("MESSAGE_CREATE", {"n": 1})
        + peer.dispatch("MESSAGE_CREATE", {"n": 2})
        + peer.dispatch("NEW_NAME", {"n": 3})
        + peer.dispatch("MESSAGE_CREATE", {"n": 4}, s=2)  # a replayed duplicate
        + peer.dispatch("MESSAGE_CREATE", {"n": 5})
    )
    conn.receive_data(data, 1.0)
    into: list[Any] = []
    counts = {"MESSAGE_CREATE": 7}
    assert conn.take_dispatches(_make, into, 10, counts=counts) == 2
    assert [i[2] for i in into] == [{"n": 1}, {"n": 2}]
    assert counts == {"MESSAGE_CREATE": 9}
    # A name not counted yet is the caller's: the run ended at it, which is now
    # processed (the sequence is its own) and queued for next_event; until it is
    # taken from there, no run starts.
    assert conn.sequence == 4
    assert conn.take_dispatches(_make, into, 10, counts=counts) == 0
    event = conn.next_event()
    assert isinstance(event, Dispatch)
    assert event.name == "NEW_NAME"
    # The duplicate is dropped on the way; the run goes on after it.
    assert conn.take_dispatches(_make, into, 10, counts=counts) == 0  # it ended the run
    assert conn.take_dispatches(_make, into, 10, counts=counts) == 1
    assert into[-1][2] == {"n": 5}
    assert conn.duplicates_dropped == 1
    assert conn.next_event() is None


def test_a_run_stops_after_its_limit_and_its_payload_bound() -> None:
    conn, peer = ready_connection()
    conn.receive_data(b"".join(peer.dispatch("MESSAGE_CREATE", {"n": n}) for n in range(6)), 1.0)
    into: list[Any] = []
    assert conn.take_dispatches(_make, into, 2) == 2
    assert conn.take_dispatches(_make, into, 10, payload_bound=conn.payload_bytes) == 1
    assert conn.take_dispatches(_make, into, 10) == 3
    assert [i[2]["n"] for i in into] == list(range(6))
    assert conn.take_dispatches(_make, into, 10) == 0
    assert conn.take_dispatches(_make, into, 0) == 0


@pytest.mark.parametrize("c_path", [True, False])
def test_an_error_in_make_closes_the_connection_and_keeps_what_was_taken(c_path: bool) -> None:
    conn, peer = _connection({}, c_path)
    conn.receive_data(b"".join(peer.dispatch("MESSAGE_CREATE", {"n": n}) for n in range(3)), 1.0)
    made: list[int] = []

    def make(name: str, data: Any, sequence: int | None, raw: bytes | None) -> int:
        if data["n"] == 1:
            raise RuntimeError("a bug")
        made.append(int(data["n"]))
        return made[-1]

    into: list[int] = []
    assert conn.take_dispatches(make, into, 10) == 1
    assert into == made == [0]
    assert conn.sequence == 2
    closed = conn.next_event()
    assert type(closed).__name__ == "Closed"
    assert "undecodable input (RuntimeError)" in repr(closed)
