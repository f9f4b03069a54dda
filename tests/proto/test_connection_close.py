"""Scenarios: every close code's classification, close handshakes, EOF, faults."""

from __future__ import annotations

import pytest

from gateway_proto import (
    AuthenticationFailedError,
    CloseCause,
    Closed,
    CloseInitiator,
    ConnectionState,
    DisallowedIntentsError,
    FatalCloseError,
    GatewayConnection,
    HandshakeError,
    InvalidApiVersionError,
    InvalidIntentsError,
    InvalidShardError,
    LocalProtocolError,
    ProtocolError,
    Session,
    ShardingRequiredError,
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
)

LIVE = Session(session_id="sess-1", sequence=1, resume_url=RESUME_URL)

FATAL: dict[int, type[FatalCloseError]] = {
    4004: AuthenticationFailedError,
    4010: InvalidShardError,
    4011: ShardingRequiredError,
    4012: InvalidApiVersionError,
    4013: InvalidIntentsError,
    4014: DisallowedIntentsError,
}
RESUME_CODES = [4000, 4001, 4002, 4005, 4006, 4008, 1000, 1001, 1011, 1012, 3000, 4999]
IDENTIFY_CODES = [4003, 4007, 4009]


@pytest.mark.parametrize("code", RESUME_CODES)
def test_server_close_that_keeps_the_session(code: int) -> None:
    conn, peer = ready_connection()
    closed = closed_event(feed(conn, peer.close(code, "bye"), 1.0))
    assert closed == Closed(
        code=code,
        reason="bye",
        initiator=CloseInitiator.PEER,
        cause=CloseCause.SERVER_CLOSED,
        can_reconnect=True,
        can_resume=True,
        session=LIVE,
    )
    drive(conn, peer)
    assert peer.closes == [(code, "bye")]  # the client echoed the close
    assert conn.state is ConnectionState.CLOSED


@pytest.mark.parametrize("code", IDENTIFY_CODES)
def test_server_close_that_needs_a_fresh_identify(code: int) -> None:
    conn, peer = ready_connection()
    closed = closed_event(feed(conn, peer.close(code), 1.0))
    assert closed.code == code
    assert closed.can_reconnect
    assert not closed.can_resume
    assert closed.session is None
    assert conn.session is None
    assert closed.error is None
    assert closed.reason  # the code's meaning when the server gave no reason


@pytest.mark.parametrize(("code", "error_type"), sorted(FATAL.items()))
def test_fatal_close_carries_a_typed_error(code: int, error_type: type[FatalCloseError]) -> None:
    conn, peer = ready_connection()
    closed = closed_event(feed(conn, peer.close(code, "nope"), 1.0))
    assert closed.code == code
    assert not closed.can_reconnect
    assert not closed.can_resume
    assert closed.session is None
    assert type(closed.error) is error_type
    assert isinstance(closed.error, FatalCloseError)
    assert closed.error.code == code
    assert closed.error.meaning
    assert closed.error.reason == "nope"
    assert str(code) in str(closed.error)


def test_close_frame_without_a_code_resumes() -> None:
    conn, peer = ready_connection()
    closed = closed_event(feed(conn, peer.close(None), 1.0))
    assert closed.code is None
    assert closed.can_resume


# -- closes this side starts ---------------------------------------------------------


@pytest.mark.parametrize(("code", "keeps"), [(1000, False), (1001, False), (4000, True)])
def test_caller_close_handshake(code: int, keeps: bool) -> None:
    conn, peer = ready_connection()
    conn.close(code, "restart", now=10.0)
    assert conn.state is ConnectionState.CLOSING
    assert (conn.session is not None) is keeps
    assert conn.next_deadline() == 15.0
    drive(conn, peer)
    assert peer.closes == [(code, "restart")]
    assert events(conn) == []
    closed = closed_event(feed(conn, peer.reply_close(), 10.5))
    assert closed == Closed(
        code=code,
        reason="restart",
        initiator=CloseInitiator.LOCAL,
        cause=CloseCause.REQUESTED,
        can_reconnect=False,
        can_resume=keeps,
        session=LIVE if keeps else None,
    )
    assert conn.next_deadline() is None
    assert drive(conn, peer) == []


def test_close_handshake_timeout() -> None:
    conn, _peer = ready_connection()
    conn.close(4000, now=10.0)
    conn.handle_timeout(14.9)
    assert events(conn) == []
    conn.handle_timeout(15.0)
    closed = closed_event(events(conn))
    assert closed.cause is CloseCause.TIMEOUT
    assert closed.initiator is CloseInitiator.TRANSPORT
    assert closed.code == 4000
    assert closed.can_resume
    assert not closed.can_reconnect  # it was the caller's close
    assert "timed out" in closed.reason


def test_eof_while_closing_finishes_the_close() -> None:
    conn, _peer = ready_connection()
    conn.close(now=1.0)
    closed = closed_event(feed(conn, b"", 2.0))
    assert closed.cause is CloseCause.REQUESTED
    assert closed.code == 1000
    assert closed.session is None


def test_close_before_the_websocket_opened() -> None:
    conn = GatewayConnection(make_config(), session=LIVE)
    conn.connect(0.0)
    conn.data_to_send()
    conn.close(4000, now=1.0)
    closed = closed_event(events(conn))
    assert closed.cause is CloseCause.REQUESTED
    assert closed.session == LIVE
    assert conn.data_to_send() == b""


def test_close_argument_and_state_errors() -> None:
    conn, _peer = ready_connection()
    for code in (999, 1004, 1005, 1006, 1015, 2000, 5000):
        with pytest.raises(LocalProtocolError):
            conn.close(code, now=0.0)
    with pytest.raises(LocalProtocolError):
        conn.close(4000, "x" * 124, now=0.0)
    assert conn.state is ConnectionState.ACTIVE
    conn.close(now=0.0)
    with pytest.raises(LocalProtocolError):
        conn.send(UpdatePresence(), 0.0)
    with pytest.raises(LocalProtocolError):  # a bad code is misuse in any state
        conn.close(1005, now=0.0)


@pytest.mark.parametrize("second", [1000, 4000])
def test_close_while_closing_is_a_no_op_and_the_first_close_stands(second: int) -> None:
    conn, peer = ready_connection()
    assert conn.close(4000, "restart", now=10.0) is True
    assert conn.close(second, "again", now=11.0) is False  # e.g. a stop() re-entered
    assert conn.state is ConnectionState.CLOSING
    assert conn.session == LIVE  # 4000 kept it; the second close changed nothing
    assert conn.next_deadline() == 15.0
    drive(conn, peer)
    assert peer.closes == [(4000, "restart")]  # one close frame
    closed = closed_event(feed(conn, peer.reply_close(), 11.5))
    assert (closed.code, closed.reason, closed.session) == (4000, "restart", LIVE)
    assert conn.close(second, now=12.0) is False  # and after Closed
    assert events(conn) == []
    assert conn.data_to_send() == b""


def test_close_is_a_no_op_once_the_peer_closed_even_undrained() -> None:
    conn, peer = ready_connection()
    conn.receive_data(peer.close(4000, "bye"), 1.0)
    assert conn.close(1000, now=2.0) is False  # the pending close frame is processed first
    closed = closed_event(events(conn))
    assert (closed.code, closed.cause) == (4000, CloseCause.SERVER_CLOSED)
    assert closed.session == LIVE  # our 1000 came too late to end the session


def test_everything_after_closed_is_ignored() -> None:
    conn, peer = ready_connection()
    closed_event(feed(conn, b"", 1.0))
    conn.receive_data(peer.dispatch("X", {}), 2.0)
    conn.receive_data(b"", 2.0)
    conn.handle_timeout(1000.0)
    assert events(conn) == []
    assert conn.next_event() is None
    assert conn.next_deadline() is None
    assert conn.close(now=3.0) is False  # closing what is closed: nothing to do
    assert events(conn) == []
    assert conn.data_to_send() == b""


# -- the transport ends or misbehaves ----------------------------------------------------


@pytest.mark.parametrize("live", [True, False])
def test_eof_without_a_close_frame(live: bool) -> None:
    if live:
        conn, _peer = ready_connection()
    else:
        conn, _peer = open_connection()
    closed = closed_event(feed(conn, b"", 1.0))
    assert closed.code is None
    assert closed.cause is CloseCause.CONNECTION_LOST
    assert closed.initiator is CloseInitiator.TRANSPORT
    assert closed.can_reconnect
    assert closed.can_resume is live
    assert closed.session == (LIVE if live else None)


def test_eof_during_the_handshake() -> None:
    conn = GatewayConnection(make_config())
    conn.connect(0.0)
    closed = closed_event(feed(conn, b"", 1.0))
    assert closed.cause is CloseCause.CONNECTION_LOST


def test_handshake_rejected() -> None:
    conn = GatewayConnection(make_config(), session=LIVE, rng=FixedRandom())
    conn.connect(0.0)
    peer = GatewayPeer()
    drive(conn, peer)
    closed = closed_event(feed(conn, peer.reject(503), 1.0))
    assert closed.cause is CloseCause.HANDSHAKE_FAILED
    assert isinstance(closed.error, HandshakeError)
    assert closed.error.status_code == 503
    assert "503" in closed.reason
    assert closed.can_reconnect
    assert closed.session == LIVE


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x82\x09hello\x00\x00\xff\xff",  # a zlib-stream message that is not zlib
        b"\x8f\x00",  # a reserved opcode
        b"\x81\x84abcd",  # a masked frame from the server
    ],
)
def test_malformed_input_closes_and_resumes(garbage: bytes) -> None:
    conn, peer = ready_connection()
    closed = closed_event(feed(conn, garbage, 1.0))
    assert closed.cause is CloseCause.PROTOCOL_ERROR
    assert isinstance(closed.error, ProtocolError)
    assert closed.can_reconnect
    assert closed.can_resume
    assert closed.session == LIVE
    assert closed.code not in (1000, 1001)
    drive(conn, peer)
    assert len(peer.closes) == 1
    assert peer.closes[0][0] not in (1000, 1001)
