"""Scenarios: handshake, HELLO, IDENTIFY, READY, RESUME, heartbeats, op 1/7/9, timeouts."""

from __future__ import annotations

import pytest

from gateway_proto import (
    RESUMABLE_CLOSE,
    CloseCause,
    Closed,
    CloseInitiator,
    ConnectionState,
    Dispatch,
    GatewayConnection,
    HeartbeatAck,
    Hello,
    IdentifyNeeded,
    InvalidSession,
    LocalProtocolError,
    Opened,
    PayloadSent,
    ReconnectRequested,
    Session,
    UpdatePresence,
)

from .helpers import (
    RESUME_URL,
    FixedRandom,
    GatewayPeer,
    closed_event,
    drive,
    events,
    feed,
    make_config,
    open_connection,
    ready_connection,
    state_of,
    without_sent,
)

SESSION = Session(session_id="sess-0", sequence=41, resume_url=RESUME_URL)

# -- the handshake and the URL ------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compression", "query"),
    [
        ("json", "zlib-stream", "v=10&encoding=json&compress=zlib-stream"),
        ("etf", "zstd-stream", "v=10&encoding=etf&compress=zstd-stream"),
        ("json", None, "v=10&encoding=json"),
        ("json", "payload", "v=10&encoding=json"),
    ],
)
def test_handshake_goes_to_the_configured_url_with_the_query(
    encoding: str, compression: str | None, query: str
) -> None:
    config = make_config(encoding=encoding, compression=compression)
    conn = GatewayConnection(config, rng=FixedRandom())
    assert conn.state is ConnectionState.CONNECTING
    assert conn.data_to_send() == b""
    assert conn.next_deadline() is None
    conn.connect(0.0)
    peer = GatewayPeer(encoding=encoding, compression=compression)
    assert drive(conn, peer) == []
    assert peer.request is not None
    assert peer.request.host == "gateway.example.test"
    assert peer.request.target == f"/?{query}"
    assert conn.url == f"wss://gateway.example.test/?{query}"
    conn.receive_data(peer.accept(), 1.0)
    assert events(conn) == [Opened()]
    assert state_of(conn) is ConnectionState.AWAITING_HELLO


def test_connect_twice_and_receive_before_connect_are_local_errors() -> None:
    conn = GatewayConnection(make_config())
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x", 0.0)
    conn.connect(0.0)
    with pytest.raises(LocalProtocolError):
        conn.connect(0.0)


# -- identify ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compression"),
    [
        ("json", "zlib-stream"),
        ("json", "zstd-stream"),
        ("json", None),
        ("json", "payload"),
        ("etf", "zlib-stream"),
        ("etf", None),
    ],
)
def test_identify_flow(encoding: str, compression: str | None) -> None:
    config = make_config(encoding=encoding, compression=compression, shard=(2, 4))
    conn, peer = open_connection(config=config, now=0.0)
    assert conn.next_deadline() == 20.0  # hello_timeout
    assert without_sent(feed(conn, peer.hello(41_250), 1.0)) == [Hello(41.25), IdentifyNeeded()]
    assert conn.state is ConnectionState.AWAITING_IDENTIFY
    assert drive(conn, peer) == []  # nothing until the driver calls identify()
    assert conn.next_deadline() == pytest.approx(1.0 + 41.25 * 0.5)

    conn.identify(2.0)
    assert state_of(conn) is ConnectionState.IDENTIFYING
    (identify,) = drive(conn, peer)
    assert identify["op"] == 2
    d = identify["d"]
    assert d["token"] == config.token
    assert d["intents"] == 513
    assert d["shard"] == [2, 4]
    assert d["large_threshold"] == 50
    assert set(d["properties"]) == {"os", "browser", "device"}
    assert d.get("compress") is (True if compression == "payload" else None)
    assert "presence" not in d
    assert peer.frames == ["binary" if encoding == "etf" else "text"]
    (sent,) = events(conn)
    assert sent == PayloadSent(2, {**d, "token": "[REDACTED]"})

    ready = without_sent(feed(conn, peer.ready("abc", resume_url=RESUME_URL + "?x=1"), 3.0))
    assert [type(e) for e in ready] == [Dispatch]
    assert isinstance(ready[0], Dispatch)
    assert ready[0].name == "READY"
    assert ready[0].sequence == 1
    assert state_of(conn) is ConnectionState.ACTIVE
    # The resume URL is stored without its query string.
    assert conn.session == Session(session_id="abc", sequence=1, resume_url=RESUME_URL)
    assert conn.sequence == 1

    evs = feed(conn, peer.dispatch("MESSAGE_CREATE", {"id": "5", "content": "hi"}), 4.0)
    assert evs == [Dispatch("MESSAGE_CREATE", {"id": "5", "content": "hi"}, 2)]
    assert conn.session is not None
    assert conn.session.sequence == 2


def test_identify_carries_the_presence() -> None:
    from gateway_proto import Activity, UpdatePresence

    presence = UpdatePresence(status="idle", activities=[Activity(name="chess")])
    conn, peer = open_connection(config=make_config(presence=presence))
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    (identify,) = drive(conn, peer)
    assert identify["d"]["presence"] == {
        "since": None,
        "activities": [{"name": "chess", "type": 0}],
        "status": "idle",
        "afk": False,
    }


def test_identify_is_refused_before_hello_twice_and_when_resuming() -> None:
    conn, peer = open_connection()
    with pytest.raises(LocalProtocolError):
        conn.identify(0.0)
    assert conn.state is ConnectionState.AWAITING_HELLO
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    with pytest.raises(LocalProtocolError, match="once"):
        conn.identify(0.0)
    conn.receive_data(peer.ready(), 0.0)
    with pytest.raises(LocalProtocolError):
        conn.identify(0.0)
    assert state_of(conn) is ConnectionState.ACTIVE
    assert [p["op"] for p in drive(conn, peer)] == [2]

    resuming, peer2 = open_connection(session=SESSION)
    resuming.receive_data(peer2.hello(), 0.0)
    with pytest.raises(LocalProtocolError):
        resuming.identify(0.0)


# -- resume ------------------------------------------------------------------------------


def test_resume_flow() -> None:
    conn, peer = open_connection(session=SESSION, now=0.0)
    assert conn.url == RESUME_URL + "?v=10&encoding=json&compress=zlib-stream"
    assert peer.request is not None
    assert peer.request.host == "resume.example.test"
    assert conn.session == SESSION
    evs = feed(conn, peer.hello(), 1.0)
    assert evs == [
        Hello(40.0),
        PayloadSent(6, {"token": "[REDACTED]", "session_id": "sess-0", "seq": 41}),
    ]
    assert conn.state is ConnectionState.RESUMING
    (resume,) = drive(conn, peer)
    assert resume == {
        "op": 6,
        "d": {"token": make_config().token, "session_id": "sess-0", "seq": 41},
    }
    replayed = feed(conn, peer.dispatch("MESSAGE_CREATE", {"n": 1}, s=42), 2.0)
    assert replayed == [Dispatch("MESSAGE_CREATE", {"n": 1}, 42)]
    assert conn.state is ConnectionState.RESUMING
    assert feed(conn, peer.dispatch("RESUMED", None, s=43), 3.0) == [Dispatch("RESUMED", None, 43)]
    assert state_of(conn) is ConnectionState.ACTIVE
    assert conn.session == Session(session_id="sess-0", sequence=43, resume_url=RESUME_URL)


def test_a_session_is_resumed_on_an_explicit_url() -> None:
    conn = GatewayConnection(make_config(), session=SESSION, url="wss://gateway.example.test")
    assert conn.url == "wss://gateway.example.test/?v=10&encoding=json&compress=zlib-stream"
    assert conn.session == SESSION


# -- heartbeats --------------------------------------------------------------------------


def test_heartbeat_schedule_ack_latency_and_sequence() -> None:
    conn, peer = open_connection(now=100.0, rng=FixedRandom(0.25))
    conn.receive_data(peer.hello(40_000), 100.0)
    events(conn)
    assert conn.next_deadline() == 110.0  # 40 s * 0.25 of jitter
    conn.handle_timeout(109.999)  # early: nothing
    assert drive(conn, peer) == []
    conn.handle_timeout(110.0)
    assert drive(conn, peer) == [{"op": 1, "d": None}]  # no sequence yet
    assert events(conn) == [PayloadSent(1, None)]
    assert conn.next_deadline() == 150.0
    assert feed(conn, peer.ack(), 110.25) == [HeartbeatAck(0.25)]
    assert conn.latency == 0.25

    conn.identify(111.0)
    conn.receive_data(peer.ready(), 112.0)
    conn.receive_data(peer.dispatch("X", {}, s=7), 113.0)
    conn.receive_data(peer.payload(11, {}), 113.0)  # an ACK no heartbeat waits for
    assert without_sent(events(conn))[-1] == HeartbeatAck(None)
    drive(conn, peer)
    conn.handle_timeout(150.5)  # a late timer: the next one counts from now
    assert drive(conn, peer) == [{"op": 1, "d": 7}]
    assert conn.next_deadline() == 190.5


def test_server_heartbeat_request_is_answered_at_once() -> None:
    conn, peer = ready_connection(now=0.0)
    assert conn.next_deadline() == 20.0
    conn.receive_data(peer.heartbeat_request(), 5.0)
    assert events(conn) == [PayloadSent(1, 1)]
    assert drive(conn, peer) == [{"op": 1, "d": 1}]
    assert conn.next_deadline() == 20.0  # the schedule stays
    assert feed(conn, peer.ack(), 5.5) == [HeartbeatAck(0.5)]


def test_heartbeat_request_before_hello_is_answered_too() -> None:
    conn, peer = open_connection()
    conn.receive_data(peer.heartbeat_request(), 1.0)
    assert drive(conn, peer) == [{"op": 1, "d": None}]


def test_zombie_connection_closes_resumably() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.handle_timeout(20.0)
    assert drive(conn, peer) == [{"op": 1, "d": 1}]
    events(conn)
    assert conn.next_deadline() == 60.0
    conn.handle_timeout(60.0)  # no ACK since the heartbeat at 20 s
    closed = closed_event(events(conn))
    assert closed == Closed(
        code=RESUMABLE_CLOSE,
        reason=closed.reason,
        initiator=CloseInitiator.LOCAL,
        cause=CloseCause.ZOMBIE,
        can_reconnect=True,
        can_resume=True,
        session=Session(session_id="sess-1", sequence=1, resume_url=RESUME_URL),
    )
    assert "zombie" in closed.reason
    assert conn.state is ConnectionState.CLOSED
    drive(conn, peer)
    assert peer.closes == [(4000, "")]
    assert conn.next_deadline() is None


def test_an_ack_in_time_prevents_the_zombie_close() -> None:
    conn, peer = ready_connection(now=0.0)
    for beat in range(5):
        now = 20.0 + 40.0 * beat
        conn.handle_timeout(now)
        conn.receive_data(peer.ack(), now + 0.1)
    assert conn.state is ConnectionState.ACTIVE
    assert [p["op"] for p in drive(conn, peer)] == [1] * 5


# -- op 7 and op 9 -----------------------------------------------------------------------


def test_reconnect_before_hello() -> None:
    conn, peer = open_connection(session=SESSION)
    evs = feed(conn, peer.reconnect(), 1.0)
    assert evs == [ReconnectRequested()]
    assert conn.state is ConnectionState.CLOSING
    drive(conn, peer)
    assert peer.closes == [(4000, "")]
    assert conn.next_deadline() == 6.0  # close_timeout
    with pytest.raises(LocalProtocolError):
        conn.send(_presence(), 1.0)
    closed = closed_event(feed(conn, peer.reply_close(), 1.5))
    assert closed.cause is CloseCause.RECONNECT_REQUESTED
    assert closed.code == 4000
    assert closed.initiator is CloseInitiator.LOCAL
    assert closed.can_reconnect
    assert closed.can_resume
    assert closed.session == SESSION
    assert state_of(conn) is ConnectionState.CLOSED


def test_reconnect_while_active_keeps_dispatches_until_the_close() -> None:
    conn, peer = ready_connection()
    assert feed(conn, peer.reconnect(), 1.0) == [ReconnectRequested()]
    # The server may still deliver dispatches (and ask for heartbeats) while closing.
    evs = feed(conn, peer.dispatch("X", {}) + peer.heartbeat_request() + peer.hello(), 1.1)
    assert evs == [Dispatch("X", {}, 2)]
    assert drive(conn, peer) == []  # no heartbeat after our close frame
    assert peer.closes == [(4000, "")]
    closed = closed_event(feed(conn, peer.reply_close(), 1.2))
    assert closed.session is not None
    assert closed.session.sequence == 2


@pytest.mark.parametrize("resumable", [True, False])
def test_invalid_session(resumable: bool) -> None:
    conn, peer = ready_connection(rng=FixedRandom(0.5))
    evs = feed(conn, peer.invalid_session(resumable), 1.0)
    assert evs == [InvalidSession(resumable)]
    assert conn.state is ConnectionState.CLOSING
    drive(conn, peer)
    assert peer.closes == [(4000, "")]
    closed = closed_event(feed(conn, peer.reply_close(), 1.1))
    assert closed.cause is CloseCause.INVALID_SESSION
    assert closed.can_reconnect
    assert closed.can_resume is resumable
    if resumable:
        assert closed.session == conn.session
        assert closed.session is not None
        assert closed.retry_after == 0.0
    else:
        assert closed.session is None
        assert conn.session is None
        assert closed.retry_after == 3.0  # uniform(1, 5) with random() = 0.5


def test_invalid_session_after_identify_asks_for_a_fresh_identify() -> None:
    conn, peer = open_connection(rng=FixedRandom(0.0))
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    events(conn)
    assert feed(conn, peer.invalid_session(False), 1.0) == [InvalidSession(False)]
    closed = closed_event(feed(conn, b"", 1.0))  # the server hung up instead of answering
    assert closed.session is None
    assert closed.retry_after == 1.0


# -- timeouts ----------------------------------------------------------------------------


def test_hello_timeout() -> None:
    conn, peer = open_connection(session=SESSION, now=10.0)
    assert conn.next_deadline() == 30.0
    conn.handle_timeout(29.0)
    assert events(conn) == []
    conn.handle_timeout(30.0)
    closed = closed_event(events(conn))
    assert closed.cause is CloseCause.TIMEOUT
    assert closed.code == RESUMABLE_CLOSE
    assert closed.can_resume
    assert closed.session == SESSION
    drive(conn, peer)
    assert peer.closes == [(4000, "")]
    assert conn.next_deadline() is None


def test_hello_stops_the_hello_timer() -> None:
    conn, peer = open_connection(now=0.0, rng=FixedRandom(0.9))
    conn.receive_data(peer.hello(), 1.0)
    assert conn.next_deadline() == pytest.approx(37.0)
    conn.handle_timeout(25.0)
    assert conn.state is ConnectionState.AWAITING_IDENTIFY


def test_malformed_hello_is_a_protocol_error() -> None:
    conn, peer = open_connection()
    closed = closed_event(feed(conn, peer.payload(10, {"heartbeat_interval": "soon"}), 1.0))
    assert closed.cause is CloseCause.PROTOCOL_ERROR
    assert closed.error is not None
    drive(conn, peer)
    assert len(peer.closes) == 1


def test_unknown_opcodes_and_a_second_hello_are_ignored() -> None:
    conn, peer = ready_connection()
    assert feed(conn, peer.payload(42, {"new": True}) + peer.hello(1000), 1.0) == []
    assert conn.heartbeat_interval == 40.0


def _presence() -> UpdatePresence:
    return UpdatePresence(status="dnd")


def test_pings_are_answered_and_fragmented_messages_joined() -> None:
    conn, peer = ready_connection()
    assert feed(conn, peer.ping(b"are you there"), 1.0) == []
    assert drive(conn, peer) == []
    assert peer.pongs == [b"are you there"]
    big = {"members": [{"id": str(i), "nick": "x" * 50} for i in range(200)]}
    assert feed(conn, peer.dispatch("GUILD_MEMBERS_CHUNK", big, split=5), 2.0) == [
        Dispatch("GUILD_MEMBERS_CHUNK", big, 2)
    ]


@pytest.mark.parametrize(
    ("ready", "session"),
    [
        ({"session_id": "a", "resume_gateway_url": "https://odd/"}, "base"),
        ({"session_id": "a"}, "base"),
        ({"resume_gateway_url": RESUME_URL}, None),
        (None, None),
    ],
)
def test_odd_ready_payloads(ready: object, session: str | None) -> None:
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    conn.receive_data(peer.dispatch("READY", ready), 1.0)
    events(conn)  # properties reflect the input processed (drained) so far
    assert state_of(conn) is ConnectionState.ACTIVE
    if session is None:
        assert conn.session is None
    else:
        assert conn.session == Session(
            session_id="a", sequence=1, resume_url="wss://gateway.example.test/"
        )


def test_identify_after_the_connection_started_closing_does_nothing() -> None:
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    assert without_sent(events(conn)) == [Hello(40.0), IdentifyNeeded()]
    conn.receive_data(peer.reconnect(), 1.0)  # while the driver waited for a permit
    conn.identify(2.0)
    assert [p["op"] for p in drive(conn, peer)] == []
    assert peer.closes == [(4000, "")]
    assert events(conn) == [ReconnectRequested()]
    conn.receive_data(b"", 3.0)
    conn.identify(4.0)
    assert state_of(conn) is ConnectionState.CLOSED
