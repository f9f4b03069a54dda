"""Numbers and strings the peer supplies: validated where they enter, never an exception.

A value out of range is the peer's protocol error: the connection closes (1007,
keeping the session resumable) and ends in ``Closed(cause=PROTOCOL_ERROR)``; no
method raises, and no deadline becomes NaN, infinite or too far for a selector.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from gateway_proto import (
    CloseCause,
    Closed,
    DecodeError,
    Dispatch,
    GatewayConnection,
    Hello,
    Session,
    codecs,
    compression,
)
from gateway_proto.codecs import EtfCodec
from gateway_proto.driver_support import MemberChunkCollector
from gateway_proto.driver_support.member_chunks import MAX_RETRY_AFTER
from gateway_proto.heartbeat import MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS

from . import _terms
from .helpers import (
    RESUME_URL,
    FixedRandom,
    GatewayPeer,
    closed_event,
    drive,
    events,
    make_config,
    open_connection,
    ready_connection,
)

pytestmark = pytest.mark.usefixtures("wire_path")

SESSION = Session(session_id="sess-0", sequence=41, resume_url=RESUME_URL)


@pytest.fixture(params=["orjson", "stdlib", "etf"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The payload codec: JSON through orjson or stdlib json, or ETF.

    ``stdlib`` is a machine without the ``speed`` extra: stdlib zlib inflates too.
    """
    if request.param == "stdlib":
        monkeypatch.setattr(codecs, "_orjson", None)
        monkeypatch.setattr(compression, "_zlib_ng", None)
    return str(request.param)


def _encode(codec: str, envelope: dict[str, Any]) -> bytes:
    return _terms.etf(envelope) if codec == "etf" else _terms.json_text(envelope)


def _open(codec: str, *, session: Session | None = None) -> tuple[GatewayConnection, GatewayPeer]:
    encoding = "etf" if codec == "etf" else "json"
    config = make_config(encoding=encoding, compression="zlib-stream")
    return open_connection(config=config, session=session, rng=FixedRandom(0.5), now=1.0)


def _every_observer(conn: GatewayConnection, peer: GatewayPeer, now: float) -> list[Any]:
    """Call every observer and ``handle_timeout``; none may raise (the bytes go to ``peer``)."""
    deadline = conn.next_deadline()
    assert deadline is None or (math.isfinite(deadline) and deadline - now < 2 * 86_400)
    conn.handle_timeout(now)
    return [
        conn.state,
        conn.session,
        conn.sequence,
        conn.latency,
        conn.heartbeat_interval,
        conn.pending_commands,
        conn.rate_limit_available(now),
        peer.sent(conn.data_to_send()),
        repr(conn),
    ]


def _assert_protocol_close(conn: GatewayConnection, peer: GatewayPeer, evs: list[Any]) -> Closed:
    closed = closed_event(evs)
    assert closed.cause is CloseCause.PROTOCOL_ERROR
    assert isinstance(closed.error, DecodeError)
    drive(conn, peer)
    assert [code for code, _ in peer.closes] == [1007]
    return closed


# -- HELLO's heartbeat_interval ------------------------------------------------------------

BAD_INTERVALS = [
    pytest.param(1e-322, id="denormal"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(float("-inf"), id="-inf"),
    pytest.param(1e11, id="1e11"),
    pytest.param(10**30, id="bigint"),
    pytest.param(MIN_HEARTBEAT_INTERVAL_MS / 2, id="below-min"),
    pytest.param(MAX_HEARTBEAT_INTERVAL_MS + 1, id="above-max"),
    pytest.param(0, id="zero"),
    pytest.param(-41250, id="negative"),
    pytest.param(True, id="bool"),
    pytest.param("41250", id="str"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("interval", BAD_INTERVALS)
def test_a_hello_interval_out_of_range_is_a_protocol_error(codec: str, interval: Any) -> None:
    conn, peer = _open(codec, session=SESSION)
    hello = {"op": 10, "d": {"heartbeat_interval": interval}, "s": None, "t": None}
    conn.receive_data(peer.encoded(_encode(codec, hello)), 2.0)
    _every_observer(conn, peer, 2.0)  # before draining: they parse the input themselves
    closed = _assert_protocol_close(conn, peer, events(conn))
    assert closed.can_resume
    assert closed.session == SESSION  # the peer's fault keeps the session resumable
    _every_observer(conn, peer, 3.0)
    assert conn.next_deadline() is None


@pytest.mark.parametrize("interval", [MIN_HEARTBEAT_INTERVAL_MS, MAX_HEARTBEAT_INTERVAL_MS])
def test_the_interval_bounds_are_accepted(codec: str, interval: int) -> None:
    conn, peer = _open(codec)
    hello = {"op": 10, "d": {"heartbeat_interval": interval}, "s": None, "t": None}
    conn.receive_data(peer.encoded(_encode(codec, hello)), 2.0)
    assert Hello(interval / 1000) in events(conn)
    deadline = conn.next_deadline()
    assert deadline is not None
    assert 2.0 <= deadline <= 2.0 + interval / 1000


# -- op 0's s and t --------------------------------------------------------------------------

BAD_SEQUENCES = [
    pytest.param(-1, id="negative"),
    pytest.param(2**53, id="2**53"),
    pytest.param(2**64, id="2**64"),
    pytest.param(-(2**70), id="-2**70"),
    pytest.param(10**300, id="10**300"),
    pytest.param(1.5, id="float"),
    pytest.param(float("nan"), id="nan"),
    pytest.param("7", id="str"),
    pytest.param(True, id="bool"),
]


@pytest.mark.parametrize("s", BAD_SEQUENCES)
def test_a_sequence_out_of_range_never_reaches_the_session(codec: str, s: Any) -> None:
    conn, peer = _open(codec)
    conn.receive_data(peer.hello(), 1.0)
    conn.identify(1.0)
    ready = {
        "op": 0,
        "t": "READY",
        "s": 3,
        "d": {"session_id": "a", "resume_gateway_url": RESUME_URL},
    }
    conn.receive_data(peer.encoded(_encode(codec, ready)), 1.0)
    events(conn)
    bad = {"op": 0, "t": "MESSAGE_CREATE", "s": s, "d": {}}
    conn.receive_data(peer.encoded(_encode(codec, bad)) + peer.heartbeat_request(), 2.0)
    _every_observer(conn, peer, 2.0)
    evs = events(conn)
    assert not [e for e in evs if isinstance(e, Dispatch)]
    closed = _assert_protocol_close(conn, peer, evs)
    assert closed.session == Session(session_id="a", sequence=3, resume_url=RESUME_URL)
    _every_observer(conn, peer, 100.0)


@pytest.mark.parametrize("s", [0, 2**53 - 1])
def test_the_sequence_bounds_are_accepted(codec: str, s: int) -> None:
    conn, peer = _open(codec)
    conn.receive_data(peer.hello(), 1.0)
    msg = {"op": 0, "t": "X", "s": s, "d": None}
    conn.receive_data(peer.encoded(_encode(codec, msg)) + peer.heartbeat_request(), 2.0)
    assert Dispatch("X", None, s) in events(conn)
    # s = 0 is delivered but is "no sequence" (servers that number READY 0): it never
    # becomes the sequence heartbeats and RESUME carry.
    expected = s or None
    assert conn.sequence == expected
    assert [p["d"] for p in peer.sent(conn.data_to_send()) if p["op"] == 1] == [expected]


@pytest.mark.parametrize("t", [None, 5, ["READY"], _terms.Atom("READY")])
def test_a_dispatch_needs_a_string_name(codec: str, t: Any) -> None:
    conn, peer = ready_connection(now=1.0, config=make_config(encoding=_enc(codec)))
    msg = {"op": 0, "t": t, "s": 9, "d": {}}
    conn.receive_data(peer.encoded(_encode(codec, msg)), 2.0)
    evs = events(conn)
    if isinstance(t, str):  # an atom in ETF, a string in JSON: both are the name
        assert Dispatch("READY", {}, 9) in evs
        return
    assert not [e for e in evs if isinstance(e, Dispatch)]
    _assert_protocol_close(conn, peer, evs)


def _enc(codec: str) -> str:
    return "etf" if codec == "etf" else "json"


# -- READY's session ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_id",
    [
        pytest.param("x" * 5000, id="long"),
        pytest.param("", id="empty"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param(12, id="int"),
    ],
)
def test_a_session_id_that_cannot_be_resumed_is_not_kept(codec: str, session_id: Any) -> None:
    conn, peer = _open(codec)
    conn.receive_data(peer.hello(), 1.0)
    conn.identify(1.0)
    ready = {"op": 0, "t": "READY", "s": 1, "d": {"session_id": session_id}}
    conn.receive_data(peer.encoded(_encode(codec, ready)), 1.0)
    evs = events(conn)
    if codec != "stdlib" and session_id == "\ud800":
        closed_event(evs)  # orjson and ETF's UTF-8 refuse it: a decode error already
        return
    assert conn.session is None
    # Had it been kept, the RESUME built from it would raise out of the next connection.
    conn.close(4000, now=2.0)
    conn.receive_data(b"", 3.0)
    assert closed_event(events(conn)).session is None


# -- RATE_LIMITED --------------------------------------------------------------------------------


def _rate_limited(retry_after: Any, **fields: Any) -> dict[str, Any]:
    data = {"opcode": 8, "retry_after": retry_after, "meta": {"guild_id": "5", "nonce": "n"}}
    data.update(fields)
    return data


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (1e10, MAX_RETRY_AFTER),
        (10**400, MAX_RETRY_AFTER),
        (float("inf"), MAX_RETRY_AFTER),
        (float("nan"), 1.0),
        (-3, 0.0),
        (-(10**400), 0.0),
        (True, 1.0),
        ("5", 1.0),
        (2.5, 2.5),
    ],
)
def test_rate_limited_retry_after_is_clamped(retry_after: Any, expected: float) -> None:
    outcome = MemberChunkCollector("n", "5").feed("RATE_LIMITED", _rate_limited(retry_after))
    assert outcome is not None
    assert outcome.retry_after == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"opcode": 3},
        {"opcode": "8"},
        {"meta": ["n"]},
        {"meta": {"guild_id": 10**5000, "nonce": None}},
        {"meta": {"guild_id": float("nan")}},
    ],
)
def test_rate_limited_for_another_request_or_malformed_is_not_ours(fields: dict[str, Any]) -> None:
    assert MemberChunkCollector("n", "5").feed("RATE_LIMITED", _rate_limited(1.0, **fields)) is None


def test_rate_limited_matches_an_integer_guild_id_without_a_nonce() -> None:
    data = _rate_limited(1.0, meta={"guild_id": 5})
    outcome = MemberChunkCollector("n", "5").feed("RATE_LIMITED", data)
    assert outcome is not None
    assert outcome.retry_after == 1.0


# -- ETF integers: one rule for both signs ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**53 - 1, 2**53 - 1),
        (-(2**53 - 1), -(2**53 - 1)),
        (2**53, str(2**53)),
        (-(2**53), str(-(2**53))),
        (-(2**63), str(-(2**63))),
        (2**64 - 1, str(2**64 - 1)),
        (-(2**2000), str(-(2**2000))),
    ],
)
def test_etf_integers_beyond_2_53_become_str_whatever_their_sign(value: int, expected: Any) -> None:
    decoded = EtfCodec().decode(_terms.etf({"op": 0, "d": {"id": value}, "s": 1, "t": "X"}))
    assert decoded[1] == {"id": expected}


@pytest.mark.parametrize("value", [2**20_000, -(2**20_000)], ids=["positive", "negative"])
def test_an_etf_integer_too_large_for_a_snowflake_string_is_a_decode_error(value: int) -> None:
    with pytest.raises(DecodeError, match="integer"):
        EtfCodec().decode(_terms.etf({"op": 0, "d": {"id": value}, "s": 1, "t": "X"}))


def test_an_etf_map_with_a_list_key_is_a_decode_error() -> None:
    term = b"\x83t\x00\x00\x00\x01" + b"l\x00\x00\x00\x01a\x01j" + b"a\x02"
    with pytest.raises(DecodeError, match="key"):
        EtfCodec().decode(term)


# -- close frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (None, b""),
        (1000, b"bye"),
        (3999, b""),
        (4999, b"\xff\xfe"),
        (999, b""),
        (5000, b""),
        (65535, b"x"),
        (1005, b""),
        (4004, b"\xc3"),
    ],
)
def test_any_close_frame_ends_in_closed(codec: str, code: int | None, reason: bytes) -> None:
    conn, peer = ready_connection(now=1.0, config=make_config(encoding=_enc(codec)))
    conn.receive_data(_terms.server_close(code, reason), 2.0)
    _every_observer(conn, peer, 2.0)
    closed = closed_event(events(conn))
    assert isinstance(closed.reason, str)
    _every_observer(conn, peer, 3.0)
