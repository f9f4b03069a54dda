"""Hypothesis properties of the whole connection (bytes in, events and bytes out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto import (
    DEFAULT_HEARTBEAT_GRID,
    Closed,
    ConnectionState,
    Event,
    GatewayConnection,
    GatewayError,
    LocalProtocolError,
    PayloadSent,
    Session,
    UpdatePresence,
)

from .helpers import (
    RESUME_URL,
    FixedRandom,
    GatewayPeer,
    drive,
    events,
    make_config,
    without_sent,
)

# Every test here runs on the C hot path and on the pure-Python wire layer.
pytestmark = pytest.mark.usefixtures("wire_path")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SESSION = Session(session_id="s", sequence=5, resume_url=RESUME_URL)
ENCODINGS = st.sampled_from(
    [
        ("json", "zlib-stream"),
        ("json", "zstd-stream"),
        ("json", None),
        ("json", "payload"),
        ("etf", "zlib-stream"),
        ("etf", None),
    ]
)

_text = st.text(st.characters(codec="utf-8"), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_names = st.sampled_from(["MESSAGE_CREATE", "GUILD_CREATE", "TYPING_START", "X_NEW_EVENT"])
# One server action: ("dispatch", name, data) | ("op1",) | ("ack",) | ("ping",).
_action = st.one_of(
    st.tuples(st.just("dispatch"), _names, _json),
    st.tuples(st.just("op1")),
    st.tuples(st.just("ack")),
    st.tuples(st.just("ping")),
)


def _transcript(
    conn: GatewayConnection, encoding: str, compression: str | None, script: list[Any]
) -> bytes:
    """The server's whole byte stream for a resumed connection running ``script``."""
    peer = GatewayPeer(encoding=encoding, compression=compression)
    drive(conn, peer)
    out = [peer.accept(), peer.hello()]
    for action in script:
        if action[0] == "dispatch":
            out.append(peer.dispatch(action[1], action[2], split=3))
        elif action[0] == "op1":
            out.append(peer.heartbeat_request())
        elif action[0] == "ack":
            out.append(peer.ack())
        else:
            out.append(peer.ping())
    out.append(peer.resumed())
    out.append(peer.close(4009, "done"))
    return b"".join(out)


def _run(encoding: str, compression: str | None, script: list[Any], cuts: list[int]) -> list[Event]:
    config = make_config(encoding=encoding, compression=compression)
    conn = GatewayConnection(config, session=SESSION, rng=FixedRandom())
    conn.connect(0.0)
    data = _transcript(conn, encoding, compression, script)
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if cut > start:
            conn.receive_data(data[start:cut], 1.0)
            start = cut
    return events(conn)


@SETTINGS
@given(
    ENCODINGS,
    st.lists(_action, max_size=8),
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=30),
)
def test_any_chunking_gives_the_same_events(
    encoding: tuple[str, str | None], script: list[Any], cuts: list[int]
) -> None:
    # What the client writes depends on when it gets the chance (a close in the
    # same read leaves no room to answer), so compare what it *received*.
    whole = without_sent(_run(*encoding, script, []))
    chunked = without_sent(_run(*encoding, script, cuts))
    if not cuts:
        chunked = without_sent(_run(*encoding, script, list(range(100_000))))
    assert whole == chunked
    assert isinstance(whole[-1], Closed)
    assert whole[-1].code == 4009


@SETTINGS
@given(
    ENCODINGS,
    st.lists(_action, min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=8),
)
def test_corrupted_bytes_only_ever_close_the_connection(
    encoding: tuple[str, str | None],
    script: list[Any],
    flips: list[tuple[int, int]],
    cuts: list[int],
) -> None:
    config = make_config(encoding=encoding[0], compression=encoding[1])
    conn = GatewayConnection(config, session=SESSION, rng=FixedRandom())
    conn.connect(0.0)
    data = bytearray(_transcript(conn, *encoding, script))
    for position, value in flips:
        data[position % len(data)] = value
    _feed_chunks(conn, bytes(data), cuts)
    conn.receive_data(b"", 2.0)
    evs = events(conn)
    assert isinstance(evs[-1], Closed)
    assert sum(isinstance(e, Closed) for e in evs) == 1
    assert conn.state is ConnectionState.CLOSED


@SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_arbitrary_bytes_after_the_handshake(garbage: bytes, cuts: list[int]) -> None:
    conn = GatewayConnection(make_config(), rng=FixedRandom())
    conn.connect(0.0)
    peer = GatewayPeer()
    drive(conn, peer)
    _feed_chunks(conn, peer.accept() + garbage, cuts)
    conn.handle_timeout(1000.0)  # the HELLO timeout, if nothing else ended it
    conn.receive_data(b"", 1000.0)
    evs = events(conn)
    assert isinstance(evs[-1], Closed)
    assert sum(isinstance(e, Closed) for e in evs) == 1


def _feed_chunks(conn: GatewayConnection, data: bytes, cuts: list[int]) -> None:
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if cut > start:
            try:
                conn.receive_data(data[start:cut], 1.0)
            except GatewayError as exc:  # pragma: no cover - the property: never happens
                raise AssertionError(f"receive_data raised {exc!r}") from exc
            start = cut


# One client-side step: a dispatch with sequence s, an op 1, or time passing.
_step = st.one_of(
    st.tuples(st.just("dispatch"), st.integers(0, 10**9)),
    st.tuples(st.just("null-seq"), st.just(0)),
    st.tuples(st.just("op1"), st.just(0)),
    st.tuples(st.just("tick"), st.integers(1, 50_000)),
)


@SETTINGS
@given(st.lists(_step, max_size=40))
def test_heartbeats_carry_the_last_sequence_seen(steps: list[tuple[str, int]]) -> None:
    conn = GatewayConnection(make_config(), rng=FixedRandom(0.1))
    conn.connect(0.0)
    peer = GatewayPeer()
    drive(conn, peer)
    now = 0.0
    conn.receive_data(peer.accept() + peer.hello(), now)
    last: int | None = None
    for kind, value in steps:
        if kind == "dispatch":
            conn.receive_data(peer.dispatch("X", None, s=value), now)
            if value > (last or 0):  # s <= 0 is no sequence; s <= last a replayed duplicate
                last = value
        elif kind == "null-seq":
            conn.receive_data(peer.payload(0, None, None, "Y"), now)
        elif kind == "op1":
            conn.receive_data(peer.heartbeat_request(), now)
        else:
            now += value / 1000
            conn.handle_timeout(now)
            conn.receive_data(peer.ack(), now)  # keep it alive
        for payload in drive(conn, peer):
            if payload["op"] == 1:
                assert payload["d"] == last
        assert conn.sequence == last


_identify_step = st.sampled_from(
    ["identify", "hello", "ready", "invalid", "reconnect", "tick", "dispatch"]
)


@SETTINGS
@given(st.lists(_identify_step, max_size=25), st.booleans())
def test_never_a_second_identify(steps: list[str], resume: bool) -> None:
    conn = GatewayConnection(make_config(), session=SESSION if resume else None)
    conn.connect(0.0)
    peer = GatewayPeer()
    drive(conn, peer)
    conn.receive_data(peer.accept(), 0.0)
    now = 0.0
    identifies = 0
    for step in steps:
        if conn.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            break  # the peer may send nothing after our close frame
        now += 7.0
        if step == "identify":
            before = conn.state
            try:
                conn.identify(now)
            except LocalProtocolError:
                assert conn.state is before
        elif step == "tick":
            conn.handle_timeout(now)
        else:
            actions: dict[str, Callable[[], bytes]] = {
                "hello": peer.hello,
                "ready": peer.ready,
                "invalid": lambda: peer.invalid_session(False),
                "reconnect": peer.reconnect,
                "dispatch": lambda: peer.dispatch("X", {}),
            }
            data = actions[step]()
            conn.receive_data(data, now)
        sent = drive(conn, peer)
        identifies += sum(p["op"] == 2 for p in sent)
        if resume:
            assert identifies == 0
        # Before IDENTIFY/RESUME, nothing but heartbeats leaves (Discord's 4003 rule).
        if identifies == 0 and not resume:
            assert all(p["op"] == 1 for p in sent)
    assert identifies <= 1


@SETTINGS
@given(
    st.lists(
        st.tuples(st.floats(0.0, 5.0, allow_nan=False), st.integers(1, 40)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([41_250, 45_000, 10_000, 100_000, 5_000, 7_000]),
    st.sampled_from([0.0, DEFAULT_HEARTBEAT_GRID]),
)
def test_never_more_than_120_payloads_in_any_60_s_window(
    bursts: list[tuple[float, int]], interval_ms: int, grid: float
) -> None:
    config = make_config(max_pending_commands=10_000, heartbeat_grid=grid)
    conn = GatewayConnection(config, rng=FixedRandom(0.3))
    conn.connect(0.0)
    peer = GatewayPeer()
    drive(conn, peer)
    conn.receive_data(peer.accept() + peer.hello(interval_ms), 0.0)
    conn.identify(0.0)
    conn.receive_data(peer.ready(), 0.0)
    times: list[float] = [0.0] * len(drive(conn, peer))
    now = 0.0
    presence = UpdatePresence()

    def advance_to(target: float) -> None:
        nonlocal now
        for _ in range(10_000):
            deadline = conn.next_deadline()
            if deadline is None or deadline > target:
                break
            now = max(now, deadline)
            conn.handle_timeout(now)
            times.extend([now] * len(drive(conn, peer)))
            conn.receive_data(peer.ack(), now)
        else:
            raise AssertionError(f"the deadline does not move: {conn.next_deadline()} at {now}")
        now = target

    for gap, count in bursts:
        advance_to(now + gap)
        for _ in range(count):
            conn.send(presence, now)
        times.extend([now] * len(drive(conn, peer)))
    # Long enough for all of them at 117 commands per 60 s (up to 1,600 sent at once).
    advance_to(now + 60.0 * (sum(count for _, count in bursts) // 117 + 2))
    assert not conn.pending_commands
    assert conn.state is ConnectionState.ACTIVE
    times.sort()
    # Payloads at t <= u share a half-open 60 s window when u < t + 60 (the
    # limiter's own arithmetic: ``u - t < 60`` can round differently).
    for i, start in enumerate(times):
        j = i
        while j < len(times) and times[j] < start + 60.0:
            j += 1
        assert j - i <= 120, f"{j - i} payloads in the 60 s from {start}"
    sent = [e for e in events(conn) if isinstance(e, PayloadSent)]
    assert len(sent) == len(times)
