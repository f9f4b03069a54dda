"""The promise of docs/core.md, as a property: nothing the peer sends makes any method raise.

Hypothesis plays a server that writes *semantic* nonsense, well framed and well
encoded: any JSON or ETF value at every field the core reads (HELLO's interval,
READY's session, op 0's ``s``/``t``/``d``, op 1/7/9/10/11 and unknown ops,
RATE_LIMITED, whole envelopes that are not maps, close codes and reasons, EOF),
in both encodings and both JSON libraries, on the C hot path and the Python one.
Between those messages it calls every public method and property of the
connection at times that jump forward. Only the caller's own misuse may raise
(``LocalProtocolError``, ``InvalidCommandError``); every deadline is finite and
near; a connection that ends, ends with one ``Closed``, the last event ever.

The default run is bounded (a few seconds); ``HYPOTHESIS_PROFILE=long`` (or
``--hypothesis-profile=long``) runs the long profile of tests/proto/conftest.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto import (
    Closed,
    Dispatch,
    HeartbeatAck,
    Hello,
    InvalidCommandError,
    LocalProtocolError,
    RequestGuildMembers,
    Session,
    UpdatePresence,
    codecs,
    compression,
)
from gateway_proto.codecs import MAX_SEQUENCE
from gateway_proto.driver_support import MemberChunkCollector
from gateway_proto.driver_support.member_chunks import MAX_RETRY_AFTER
from gateway_proto.heartbeat import MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS

from . import _terms
from .helpers import RESUME_URL, FixedRandom, make_config, open_connection

pytestmark = pytest.mark.usefixtures("wire_path")

#: A third of the profile's examples per run (six runs: two wire paths, three codecs):
#: about 200 in all by default, a few seconds; the "long" profile multiplies it.
_PROFILE = settings.default
FUZZ = settings(
    max_examples=max(20, (_PROFILE.max_examples if _PROFILE is not None else 100) // 3),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,  # the codec and wire path hold for all examples
        HealthCheck.data_too_large,
    ],
)

# -- values -----------------------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(-(2**2000), 2**2000),  # within ETF's 255-byte bignums and json's 4300 digits
    st.sampled_from(
        [0, 1, -1, 8, 41_250, MAX_SEQUENCE, MAX_SEQUENCE + 1, 2**63, 2**64, -(2**64), 10**30]
    ),
    st.sampled_from(
        [MIN_HEARTBEAT_INTERVAL_MS, MAX_HEARTBEAT_INTERVAL_MS, MAX_HEARTBEAT_INTERVAL_MS + 1]
    ),
    st.floats(),  # NaN and the infinities included
    st.sampled_from([1e-322, 1e11, 1e10, 0.5, -0.0, math.nan, math.inf, -math.inf]),
)
_strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["READY", "RESUMED", "\ud800", "", "x" * 300, "ws://h/", RESUME_URL]),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    _numbers,
    _strings,
    st.sampled_from([_terms.Atom("nil"), _terms.Atom("true"), _terms.Atom("READY")]),
)
_keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.sampled_from([_terms.Atom("k")]))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the field's kind, sometimes anything at all."""
    return st.one_of(strategy, strategy, _values)


# -- what the server sends ------------------------------------------------------------------

_hello = st.builds(
    lambda d: ("envelope", {"op": 10, "d": d, "s": None, "t": None}),
    _maybe(st.fixed_dictionaries({"heartbeat_interval": _maybe(_numbers)})),
)
_ready = st.fixed_dictionaries(
    {
        "session_id": _maybe(_strings),
        "resume_gateway_url": _maybe(st.sampled_from([RESUME_URL, "wss://r.test", "http://x"])),
    }
)
_rate_limited = st.fixed_dictionaries(
    {
        "opcode": _maybe(st.just(8)),
        "retry_after": _maybe(_numbers),
        "meta": _maybe(
            st.fixed_dictionaries(
                {"nonce": _maybe(st.just("n")), "guild_id": _maybe(st.sampled_from(["5", 5]))}
            )
        ),
    }
)
_dispatch = st.one_of(
    st.tuples(st.just("READY"), _maybe(_ready)),
    st.tuples(st.just("RESUMED"), _values),
    st.tuples(st.just("RATE_LIMITED"), _maybe(_rate_limited)),
    st.tuples(_maybe(st.sampled_from(["MESSAGE_CREATE", "GUILD_MEMBERS_CHUNK"])), _values),
).flatmap(
    lambda td: st.builds(
        lambda s: ("envelope", {"op": 0, "t": td[0], "s": s, "d": td[1]}),
        _maybe(st.integers(0, 50)),
    )
)
_control = st.builds(
    lambda op, d, s, t: ("envelope", {"op": op, "d": d, "s": s, "t": t}),
    _maybe(st.sampled_from([1, 7, 9, 11, 10, 42, -1, 2**70])),
    _values,
    st.one_of(st.none(), st.none(), _values),
    st.one_of(st.none(), st.none(), _values),
)
_server = st.one_of(
    _hello,
    _dispatch,
    _dispatch,
    _control,
    _control,
    st.builds(lambda v: ("envelope", v), _values),  # not even a map
    st.builds(
        lambda code, reason: ("close", code, reason),
        st.one_of(st.none(), st.integers(0, 65535), st.sampled_from([1000, 4000, 4004, 4999])),
        st.binary(max_size=8),
    ),
    st.just(("ping",)),
    st.just(("eof",)),
)

# -- what the caller does ---------------------------------------------------------------------

_client = st.one_of(
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.001, 1.0, 30.0, 45.0, 1e5, 1e7])),
    st.tuples(st.just("deadline")),  # handle_timeout at next_deadline(), a few times
    st.tuples(st.just("drain")),
    st.tuples(st.just("observe")),
    st.tuples(st.just("identify")),
    st.tuples(st.just("send"), st.sampled_from(["presence", "members"])),
    st.tuples(st.just("hang_up"), st.sampled_from([1000, 4000, 1005])),
)


@pytest.fixture(params=["orjson", "stdlib", "etf"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The payload codec: JSON through orjson or stdlib json (NaN, lone surrogates), or ETF.

    ``stdlib`` is a machine without the ``speed`` extra: stdlib zlib inflates too.
    """
    if request.param == "stdlib":
        monkeypatch.setattr(codecs, "_orjson", None)
        monkeypatch.setattr(compression, "_zlib_ng", None)
    return str(request.param)


class _Run:
    """One connection under fuzzing, and the checks made after every step."""

    def __init__(self, codec: str, resume: bool, compression: str | None) -> None:
        self.codec = codec
        config = make_config(encoding="etf" if codec == "etf" else "json", compression=compression)
        session = Session(session_id="s", sequence=3, resume_url=RESUME_URL) if resume else None
        self.conn, self.peer = open_connection(config=config, session=session, rng=FixedRandom())
        self.now = 0.0
        self.closed = False
        self.collector = MemberChunkCollector("n", "5")

    def server(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "envelope":
            value = action[1]
            raw = _terms.etf(value) if self.codec == "etf" else _terms.json_text(value)
            data = self.peer.encoded(raw)
        elif kind == "close":
            data = _terms.server_close(action[1], action[2])
        elif kind == "ping":
            data = self.peer.ping()
        else:
            data = b""
        self.conn.receive_data(data, self.now)

    def client(self, action: tuple[Any, ...]) -> None:
        conn = self.conn
        kind = action[0]
        if kind == "wait":
            self.now += action[1]
            conn.handle_timeout(self.now)
        elif kind == "deadline":
            for _ in range(3):
                deadline = conn.next_deadline()
                if deadline is None:
                    break
                self.now = max(self.now, deadline)
                conn.handle_timeout(self.now)
        elif kind == "drain":
            self.check_events()
        elif kind == "observe":
            self.observe()
        else:
            try:
                if kind == "identify":
                    conn.identify(self.now)
                elif kind == "send":
                    command = (
                        UpdatePresence()
                        if action[1] == "presence"
                        else RequestGuildMembers(guild_id="5", query="", nonce="n")
                    )
                    conn.send(command, self.now)
                else:
                    conn.close(action[1], now=self.now)
            except (LocalProtocolError, InvalidCommandError):
                pass  # the caller's misuse in this state: documented, and allowed

    def observe(self) -> None:
        conn = self.conn
        deadline = conn.next_deadline()
        if deadline is not None:
            assert math.isfinite(deadline)
            assert deadline - self.now <= MAX_HEARTBEAT_INTERVAL_MS / 1000 + 120
        sequence = conn.sequence
        assert sequence is None or (sequence.__class__ is int and 0 <= sequence <= MAX_SEQUENCE)
        session = conn.session
        if session is not None:
            assert isinstance(session.session_id, str)
            assert session.sequence is None or 0 <= session.sequence <= MAX_SEQUENCE
        latency = conn.latency
        assert latency is None or (math.isfinite(latency) and latency >= 0)
        interval = conn.heartbeat_interval
        assert interval is None or 0.001 <= interval <= MAX_HEARTBEAT_INTERVAL_MS / 1000
        assert conn.rate_limit_available(self.now) >= 0
        conn.pending_commands  # noqa: B018 - a property that must not raise
        conn.state  # noqa: B018
        repr(conn)
        conn.data_to_send()

    def check_events(self) -> None:
        for event in self.conn.events():
            assert not self.closed, f"{event!r} after Closed"
            if isinstance(event, Closed):
                self.closed = True
                assert isinstance(event.reason, str)
            elif isinstance(event, Dispatch):
                assert isinstance(event.name, str)
                s = event.sequence
                assert s is None or (s.__class__ is int and 0 <= s <= MAX_SEQUENCE)
                outcome = self.collector.feed(event.name, event.data)
                if outcome is not None and outcome.retry_after is not None:
                    assert 0.0 <= outcome.retry_after <= MAX_RETRY_AFTER
            elif isinstance(event, Hello):
                assert 0.001 <= event.heartbeat_interval <= MAX_HEARTBEAT_INTERVAL_MS / 1000
            elif isinstance(event, HeartbeatAck):
                assert event.latency is None or math.isfinite(event.latency)


@FUZZ
@given(
    resume=st.booleans(),
    compression=st.sampled_from([None, "zlib-stream"]),
    steps=st.lists(st.one_of(_server, _server, _client), max_size=14),
)
def test_nothing_the_peer_sends_makes_a_method_raise(
    codec: str, resume: bool, compression: str | None, steps: list[tuple[Any, ...]]
) -> None:
    run = _Run(codec, resume, compression)
    for step in steps:
        if step[0] in ("envelope", "close", "ping", "eof"):
            run.server(step)
        else:
            run.client(step)
        run.now += 0.01
    run.observe()
    run.check_events()
    # Time passing with no server at all: the connection ends (zombie, HELLO or close
    # timeout), and its last event is Closed.
    for _ in range(6):
        deadline = run.conn.next_deadline()
        if deadline is None:
            break
        run.now = max(run.now, deadline)
        run.conn.handle_timeout(run.now)
        run.observe()
    run.check_events()
    if run.closed:
        assert run.conn.next_deadline() is None
        assert list(run.conn.events()) == []


def test_the_fuzz_encoders_write_what_json_and_erlpack_refuse() -> None:
    """The fuzz's encoders really reach the core with NaN, bignums, atoms and bare NaN."""
    term = _terms.etf({"d": [math.nan, -(2**100), _terms.Atom("x")]})
    loaded = codecs.EtfCodec().loads(term)["d"]
    assert math.isnan(loaded[0])
    assert loaded[1:] == [str(-(2**100)), "x"]
    assert _terms.json_text([math.nan, math.inf]) == b"[NaN,Infinity]"
    assert _terms.server_close(4000, b"\xff") == b"\x88\x03\x0f\xa0\xff"
