"""Scenarios: commands wait for the session, the rate limiter and its heartbeat reserve."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from gateway_proto import (
    Activity,
    Command,
    ConnectionState,
    GatewayConnection,
    InvalidCommandError,
    LocalProtocolError,
    Opcode,
    PayloadSent,
    RequestGuildMembers,
    Session,
    UpdatePresence,
    UpdateVoiceState,
)

from .helpers import (
    RESUME_URL,
    FixedRandom,
    drive,
    events,
    make_config,
    open_connection,
    ready_connection,
)

PRESENCE = UpdatePresence(status="idle")


def test_command_sent_before_ready_waits_for_it() -> None:
    conn, peer = open_connection()
    conn.send(PRESENCE, 0.0)  # even before HELLO
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.5)
    conn.send(UpdateVoiceState(guild_id=1, channel_id=None), 1.0)
    assert [p["op"] for p in drive(conn, peer)] == [2]  # only IDENTIFY
    assert conn.pending_commands == (PRESENCE, UpdateVoiceState(guild_id=1, channel_id=None))
    assert conn.next_deadline() == 20.0  # the heartbeat; no permit timer before READY
    events(conn)
    conn.receive_data(peer.ready(), 2.0)
    assert [p["op"] for p in drive(conn, peer)] == [3, 4]
    assert [type(e).__name__ for e in events(conn)] == ["Dispatch", "PayloadSent", "PayloadSent"]
    assert len(conn.pending_commands) == 0


def test_commands_wait_for_resumed() -> None:
    session = Session(session_id="s", sequence=3, resume_url=RESUME_URL)
    conn, peer = open_connection(session=session)
    conn.receive_data(peer.hello(), 0.0)
    conn.send(PRESENCE, 0.0)
    assert [p["op"] for p in drive(conn, peer)] == [6]
    conn.receive_data(peer.dispatch("MESSAGE_CREATE", {}, s=4), 1.0)
    assert drive(conn, peer) == []
    conn.receive_data(peer.dispatch("RESUMED", None, s=5), 1.0)
    assert drive(conn, peer) == [{"op": 3, "d": PRESENCE.to_payload()}]


def test_rate_limit_defers_commands_and_heartbeats_bypass_it() -> None:
    conn, peer = ready_connection(now=0.0)  # IDENTIFY at 0.0; 40 s heartbeats from 20.0
    # 120 per 60 s, minus ceil(60 / 40) + 1 = 3 kept for heartbeats, minus IDENTIFY.
    assert conn.rate_limit_available(0.0) == 116
    for _ in range(116):
        conn.send(PRESENCE, 1.0)
    assert len(drive(conn, peer)) == 116
    events(conn)
    conn.send(UpdatePresence(status="dnd"), 2.0)
    assert drive(conn, peer) == []
    assert conn.rate_limit_available(2.0) == 0
    assert conn.next_deadline() == 20.0  # the heartbeat comes before the permit (60.0)

    conn.handle_timeout(20.0)
    assert drive(conn, peer) == [{"op": 1, "d": 1}]  # the heartbeat went out anyway
    conn.receive_data(peer.ack(), 20.5)
    # Log: IDENTIFY 0.0, 116 x 1.0 (periodic heartbeats live in the reserve, not the
    # log): the command needs the IDENTIFY to leave the window -> 60.0, with the
    # next heartbeat.
    assert conn.next_deadline() == 60.0
    conn.handle_timeout(59.999)
    assert drive(conn, peer) == []
    conn.handle_timeout(60.0)
    assert drive(conn, peer) == [
        {"op": 1, "d": 1},
        {"op": 3, "d": UpdatePresence(status="dnd").to_payload()},
    ]
    assert conn.next_deadline() == 100.0  # nothing waits: back to heartbeats only
    assert conn.rate_limit_available(61.0) == 116  # only the command at 60.0 is logged


def test_permit_before_the_next_heartbeat() -> None:
    conn, peer = ready_connection(now=0.0, rng=FixedRandom(0.9), interval_ms=100_000)
    # Reserve ceil(60 / 100) + 1 = 2: 118 for commands, IDENTIFY took one.
    for _ in range(118):
        conn.send(PRESENCE, 1.0)
    assert len(drive(conn, peer)) == 117
    assert len(conn.pending_commands) == 1
    assert conn.next_deadline() == 60.0  # the IDENTIFY leaves the window; heartbeat at 90.0
    conn.handle_timeout(60.0)
    assert [p["op"] for p in drive(conn, peer)] == [3]
    assert conn.next_deadline() == 90.0


def test_oversize_command_is_refused_at_once() -> None:
    conn, peer = ready_connection()
    huge = UpdatePresence(activities=[Activity(name="x" * 5000)])
    with pytest.raises(InvalidCommandError, match="4096"):
        conn.send(huge, 1.0)
    assert conn.pending_commands == ()
    assert drive(conn, peer) == []
    assert events(conn) == []


def test_oversize_identify_is_refused_and_the_state_stays() -> None:
    presence = UpdatePresence(activities=[Activity(name="y" * 5000)])
    conn, peer = open_connection(config=make_config(presence=presence))
    conn.receive_data(peer.hello(), 0.0)
    events(conn)
    with pytest.raises(InvalidCommandError, match="4096"):
        conn.identify(0.0)
    assert conn.state is ConnectionState.AWAITING_IDENTIFY
    assert drive(conn, peer) == []


def test_pending_commands_are_bounded() -> None:
    conn, _peer = open_connection(config=make_config(max_pending_commands=2))
    conn.send(PRESENCE, 0.0)
    conn.send(PRESENCE, 0.0)
    with pytest.raises(LocalProtocolError, match="max_pending_commands"):
        conn.send(PRESENCE, 0.0)
    assert len(conn.pending_commands) == 2


@dataclass(frozen=True)
class _SneakyHeartbeat(Command):
    opcode: ClassVar[Opcode] = Opcode.HEARTBEAT

    def to_payload(self) -> Any:
        return None


def test_send_refuses_what_is_not_a_user_command() -> None:
    conn, _peer = ready_connection()
    with pytest.raises(InvalidCommandError):
        conn.send(_SneakyHeartbeat(), 0.0)
    with pytest.raises(InvalidCommandError):
        conn.send({"op": 3, "d": {}}, 0.0)  # type: ignore[arg-type]


def test_queued_commands_are_dropped_at_close() -> None:
    conn, peer = open_connection()
    conn.send(RequestGuildMembers(guild_id=1, query="", limit=0), 0.0)
    conn.receive_data(peer.reconnect(), 1.0)
    assert [type(e).__name__ for e in events(conn)] == ["ReconnectRequested"]
    assert conn.pending_commands == ()  # (properties reflect what was drained)


def test_payload_sent_reports_every_payload() -> None:
    conn, peer = ready_connection()
    conn.send(PRESENCE, 1.0)
    conn.handle_timeout(20.0)
    assert events(conn) == [PayloadSent(3, PRESENCE.to_payload()), PayloadSent(1, 1)]
    assert len(drive(conn, peer)) == 2


def test_rate_limiter_is_per_connection() -> None:
    GatewayConnection(make_config())  # a fresh one starts with a full window
    conn, _peer = ready_connection(now=0.0)
    assert conn.rate_limit_available(0.0) == 116


@pytest.mark.parametrize("interval_ms", [200, 500, 1000])
def test_short_heartbeat_intervals_leave_commands_room(interval_ms: int) -> None:
    # The fakes of README.md (0.2 s) and docs/testing.md (0.5 s): two minutes of
    # heartbeats, every one ACKed, and a command still leaves the moment it is sent.
    conn, peer = ready_connection(now=0.0, rng=FixedRandom(0.0), interval_ms=interval_ms)
    interval = interval_ms / 1000
    now = 0.0
    beats = 0
    while now < 120.0:
        deadline = conn.next_deadline()
        assert deadline is not None
        now = deadline
        conn.handle_timeout(now)
        sent = drive(conn, peer)
        beats += sum(p["op"] == 1 for p in sent)
        conn.receive_data(peer.ack(), now)
    assert beats >= 120.0 / interval - 1
    assert conn.rate_limit_available(now) > 0
    for n in range(10):
        conn.send(UpdatePresence(status="dnd", since=n), now)
    assert [p["op"] for p in drive(conn, peer)] == [3] * 10


def test_heartbeats_are_not_counted_twice() -> None:
    conn, peer = ready_connection(now=0.0, rng=FixedRandom(0.0), interval_ms=1000)
    # Reserve ceil(60 / 1) + 1 = 61, capped at half the budget (60); IDENTIFY took one.
    assert conn.rate_limit_available(0.0) == 59
    for now in (1.0, 2.0, 3.0):
        conn.handle_timeout(now)
        assert [p["op"] for p in drive(conn, peer)] == [1]
        conn.receive_data(peer.ack(), now)
    # The periodic heartbeats live in the reserve; they take nothing more.
    assert conn.rate_limit_available(3.0) == 59
    # One the server asks for (op 1) is beyond the schedule: it takes a permit.
    conn.receive_data(peer.heartbeat_request(), 3.5)
    assert [p["op"] for p in drive(conn, peer)] == [1]
    assert conn.rate_limit_available(3.5) == 58


def test_a_command_held_back_by_the_limit_is_reported_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, peer = ready_connection(now=0.0)
    caplog.set_level(logging.WARNING, logger="gateway_proto.connection")
    for n in range(116):
        conn.send(UpdatePresence(status="dnd", since=n), 1.0)
    assert caplog.records == []
    conn.send(PRESENCE, 1.0)
    conn.send(PRESENCE, 1.0)
    # One warning, when the first command is held, saying why and for how long.
    [record] = caplog.records
    assert "rate limit" in record.getMessage()
    assert "59.0 s" in record.getMessage()  # the IDENTIFY at 0.0 leaves the window at 60.0
    assert len(drive(conn, peer)) == 116
    conn.handle_timeout(60.0)
    assert [p["op"] for p in drive(conn, peer)] == [1, 3]  # the heartbeat, then one command
