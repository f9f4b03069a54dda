"""The wiring's pure parts: error explanations, shard planning, event handling."""

from __future__ import annotations

import io

import pytest

from gateway_cli.args import ListenOptions, parse_args
from gateway_cli.display import Display
from gateway_cli.listen import _Listener, _plan
from gateway_cli.run import explain
from gateway_proto.driver_support import (
    CLOSE,
    DISCONNECT,
    IDENTIFY_WAIT,
    STATE,
    GatewayEvent,
    GatewayInfo,
    GatewayRequestError,
    IdentifyWait,
    InvalidTokenError,
    ShardState,
    StateChange,
    Stopped,
)
from gateway_proto.errors import fatal_error_for
from gateway_proto.events import CloseCause, Closed, CloseInitiator
from gateway_proto.identify import SessionStartLimit


def options(*argv: str) -> ListenOptions:
    parsed = parse_args(["listen", *argv], environ={})
    assert isinstance(parsed, ListenOptions)
    return parsed


INFO = GatewayInfo(
    url="ws://127.0.0.1:1/",
    shards=3,
    session_start_limit=SessionStartLimit(
        total=1000, remaining=999, reset_after=1.0, max_concurrency=1
    ),
)


def test_explain_names_the_privileged_intents_that_were_refused() -> None:
    error = fatal_error_for(4014, "disallowed intents")
    line = explain(error, options("--intents", "guilds,message_content,guild_members"))
    assert "4014" in line
    assert "guild_members, message_content" in line
    assert "Developer Portal" in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (fatal_error_for(4004, "authentication failed"), "check --token or DISCORD_TOKEN"),
        (InvalidTokenError("401", status_code=401), "HTTP 401"),
        (fatal_error_for(4013, "invalid intents"), "4013"),
        (fatal_error_for(4011, "sharding required"), "--shards auto"),
        (fatal_error_for(4010, "invalid shard"), "4010"),
        (fatal_error_for(4012, "invalid API version"), "for good"),
        (GatewayRequestError("boom"), "could not ask for the gateway URL"),
        (ConnectionRefusedError(111, "Connection refused"), "could not connect"),
        (RuntimeError("odd"), "RuntimeError: odd"),
    ],
)
def test_explain_is_one_meaningful_line(error: BaseException, needle: str) -> None:
    line = explain(error, options())
    assert needle in line
    assert "\n" not in line


def test_plan_uses_the_recommended_count_or_the_given_total() -> None:
    assert _plan(options(), INFO) == ([0, 1, 2], 3)
    assert _plan(options("--shards", "2"), INFO) == ([0, 1], 2)
    assert _plan(options("--shards", "4-5/16"), INFO) == ([4, 5], 16)


def make_listener(ids: list[int]) -> tuple[_Listener, Display]:
    display = Display(io.StringIO(), io.StringIO(), mode="plain", status=True)
    display.start(ids, 0.0, where="test")
    return _Listener(display, ids, lambda: 0.0), display


def test_listener_prints_dispatches_and_tracks_states() -> None:
    listener, display = make_listener([0, 1])
    listener.handle(GatewayEvent(STATE, 0, StateChange(ShardState.IDLE, ShardState.CONNECTING, "")))
    listener.handle(GatewayEvent(IDENTIFY_WAIT, 1, IdentifyWait(5.0, 0, False)))
    listener.handle(GatewayEvent("READY", 0, {"session_id": "s"}, 1))
    listener.handle(GatewayEvent("TYPING_START", 0, {"user_id": "7", "channel_id": "4"}, 2))
    assert isinstance(display.out, io.StringIO)
    assert display.out.getvalue().splitlines() == [
        "0\t1\tREADY\tas someone, 0 guilds, session s",
        "0\t2\tTYPING_START\tuser 7 typing in 4",
    ]
    assert display.board.view(1).identify_at == 5.0
    assert display.board.ready_count == 1
    assert not listener.all_stopped.is_set()


def test_listener_reports_closes_and_notices_when_every_shard_stopped() -> None:
    listener, display = make_listener([0, 1])
    closed = Closed(
        code=4004,
        reason="authentication failed",
        initiator=CloseInitiator.PEER,
        cause=CloseCause.SERVER_CLOSED,
        can_reconnect=False,
        can_resume=False,
        session=None,
    )
    error = fatal_error_for(4004, "authentication failed")
    listener.handle(GatewayEvent(CLOSE, 0, closed))
    listener.handle(GatewayEvent(DISCONNECT, 0, Stopped("fatal close", error=error)))
    assert not listener.all_stopped.is_set()
    listener.handle(GatewayEvent(DISCONNECT, 1, Stopped("fatal close", error=error)))
    assert listener.all_stopped.is_set()
    assert listener.outcome.errors == {0: error, 1: error}
    assert isinstance(display.err, io.StringIO)
    assert "shard 0: closed (code 4004, authentication failed); stopping" in display.err.getvalue()


def test_listener_warns_when_the_session_budget_is_spent() -> None:
    listener, display = make_listener([0])
    listener.handle(GatewayEvent(IDENTIFY_WAIT, 0, IdentifyWait(3600.0, 0, True)))
    assert isinstance(display.err, io.StringIO)
    assert "session start budget is spent" in display.err.getvalue()
