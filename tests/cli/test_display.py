"""What the CLI prints: summaries, the three output modes, progress and status lines."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gateway_cli.display import Display, EventRecord, Mode, StatusBoard, summarize


class TtyIO(io.StringIO):
    def isatty(self) -> bool:
        return True


MESSAGE = {
    "id": "1",
    "channel_id": "42",
    "author": {"id": "7", "username": "ada", "global_name": None},
    "content": "hello\nworld " + "x" * 100,
}


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "READY",
            {"user": {"username": "bot"}, "guilds": [{"id": "1"}] * 3, "session_id": "s1"},
            "as bot, 3 guilds, session s1",
        ),
        ("RESUMED", None, "session resumed"),
        ("GUILD_CREATE", {"id": "9", "name": "Cafe", "member_count": 12}, "Cafe, 12 members"),
        ("GUILD_DELETE", {"id": "9", "unavailable": True}, "guild 9 (unavailable)"),
        ("TYPING_START", {"user_id": "7", "channel_id": "42"}, "user 7 typing in 42"),
        ("PRESENCE_UPDATE", {"user": {"id": "7"}, "status": "idle"}, "user 7 is idle"),
        (
            "MESSAGE_REACTION_ADD",
            {"emoji": {"name": "👍"}, "user_id": "7", "message_id": "1"},
            "👍 by user 7 on 1",
        ),
        ("GUILD_MEMBER_ADD", {"user": {"username": "bo"}, "guild_id": "9"}, "bo in guild 9"),
        ("VOICE_STATE_UPDATE", {"user_id": "7", "channel_id": "5"}, "user 7 in voice 5"),
        ("VOICE_STATE_UPDATE", {"user_id": "7", "channel_id": None}, "user 7 left voice"),
        (
            "INTERACTION_CREATE",
            {"type": 2, "data": {"name": "ping"}, "member": {"user": {"username": "bo"}}},
            "/ping by bo",
        ),
        ("SOMETHING_NEW", {"a": 1, "b": "x", "c": [1]}, "a=1 b=x"),
        ("SOMETHING_NEW", [1, 2], "[1, 2]"),
    ],
)
def test_summarize(name: str, data: Any, expected: str) -> None:
    assert summarize(name, data) == expected


def test_message_summary_is_one_short_line() -> None:
    line = summarize("MESSAGE_CREATE", MESSAGE)
    assert line.startswith("ada in 42: hello world x")
    assert "\n" not in line
    assert line.endswith("…")
    assert len(line) < 100


def make(mode: Mode, *, status: bool = False, events: frozenset[str] | None = None) -> Display:
    return Display(io.StringIO(), io.StringIO(), mode=mode, status=status, events=events)


def output(display: Display) -> str:
    assert isinstance(display.out, io.StringIO)
    return display.out.getvalue()


def errors(display: Display) -> str:
    assert isinstance(display.err, io.StringIO)
    return display.err.getvalue()


def test_jsonl_mode_writes_one_parseable_object_per_event() -> None:
    display = make("jsonl")
    display.event(EventRecord(0, "MESSAGE_CREATE", MESSAGE, 5), 0.0)
    display.event(EventRecord(1, "TYPING_START", {"user_id": "7"}, 6), 0.1)
    lines = output(display).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"shard": 0, "seq": 5, "event": "MESSAGE_CREATE", "data": MESSAGE},
        {"shard": 1, "seq": 6, "event": "TYPING_START", "data": {"user_id": "7"}},
    ]
    assert errors(display) == ""


def test_plain_mode_is_tab_separated_and_quiet() -> None:
    display = make("plain")
    display.start([0], 0.0, where="somewhere")
    display.event(EventRecord(0, "TYPING_START", {"user_id": "7", "channel_id": "4"}, 3), 0.0)
    display.tick(100.0)
    assert output(display) == "0\t3\tTYPING_START\tuser 7 typing in 4\n"
    assert errors(display) == ""


def test_human_mode_colours_only_when_asked() -> None:
    plain = make("human")
    plain.event(EventRecord(2, "RESUMED", None, 9), 0.0)
    assert output(plain) == f"[2]     #9 {'RESUMED':<22} session resumed\n"
    coloured = Display(io.StringIO(), io.StringIO(), mode="human", status=False, color=True)
    coloured.event(EventRecord(2, "RESUMED", None, 9), 0.0)
    assert "\x1b[" in output(coloured)


def test_event_filter_counts_but_hides_other_events() -> None:
    display = make("jsonl", events=frozenset({"MESSAGE_CREATE"}))
    display.event(EventRecord(0, "READY", {}, 1), 0.0)
    display.event(EventRecord(0, "MESSAGE_CREATE", MESSAGE, 2), 0.0)
    assert [json.loads(line)["event"] for line in output(display).splitlines()] == [
        "MESSAGE_CREATE"
    ]
    assert display.board.events == 2
    assert display.shown == 1
    assert display.board.all_ready  # READY still counts though it is hidden


def test_for_streams_picks_modes_from_terminals() -> None:
    pipe = Display.for_streams(io.StringIO(), TtyIO(), jsonl=False, status="auto")
    assert (pipe.mode, pipe.status, pipe.color) == ("plain", False, False)
    tty = Display.for_streams(TtyIO(), TtyIO(), jsonl=False, status="auto")
    assert (tty.mode, tty.status) == ("human", True)
    jsonl = Display.for_streams(TtyIO(), TtyIO(), jsonl=True, status="off")
    assert (jsonl.mode, jsonl.status, jsonl.color) == ("jsonl", False, False)
    forced = Display.for_streams(io.StringIO(), io.StringIO(), jsonl=True, status="on")
    assert forced.status


def test_progress_shows_ready_count_and_bucket_wait_then_status() -> None:
    display = make("plain", status=True)
    display.start([0, 1, 2], 0.0, where="the fake gateway")
    display.shard_state(0, "identifying", 0.0)
    display.identify_wait(1, 5.0, 0.0)
    display.identify_wait(2, 10.0, 0.0)
    display.event(EventRecord(0, "READY", {}, 1), 0.5)
    display.latency(0, 0.012)
    display.tick(5.0)  # status interval (5 s) reached while still identifying
    display.shard_ready(1, 5.5)
    display.shard_ready(2, 10.5)
    for shard_id in (1, 2):
        display.latency(shard_id, 0.02)
    display.event(EventRecord(1, "TYPING_START", {}, 2), 11.0)
    display.tick(11.0)  # due: the previous line was at 5.0, the interval is 5 s
    display.finish(12.0, reason="stopped after 12 s")
    lines = errors(display).splitlines()
    assert lines[0] == "· connecting 3 shards to the fake gateway"
    assert "identifying: 0/3 shards ready" in lines[1]
    assert any("1 waiting for identify buckets (next: shard 1 in 5.0 s)" in x for x in lines)
    assert any("2 waiting for identify buckets" in x for x in lines)
    assert any(x.startswith("· identifying: 1/3 shards ready") for x in lines)
    assert "· all 3 shards ready" in lines
    status = [x for x in lines if "ready ·" in x]
    assert len(status) == 1
    assert "3/3 ready" in status[0]
    assert "#0 ready 12 ms · #1 ready 20 ms · #2 ready 20 ms" in status[0]
    assert lines[-1] == "· stopped after 12 s; 2 events received"


def test_status_board_rate_and_summary_for_many_shards() -> None:
    board = StatusBoard.for_shards(range(10))
    for shard_id in range(10):
        view = board.view(shard_id)
        view.ready, view.state, view.latency = True, "active", 0.01 * (shard_id + 1)
    board.view(9).state = "resuming"
    for i in range(20):
        board.count_event(float(i) / 10)  # 20 events between t=0.0 and t=1.9
    assert board.take_rate(2.0) == pytest.approx(10.0)
    assert board.take_rate(2.0) == 0.0  # nothing since
    line = board.status_line(3.0)
    assert line == (
        "10/10 ready · 0.0 events/s · 9 active, 1 resuming · latency median 60 ms, max 100 ms"
    )


def test_warnings_and_errors_always_reach_stderr() -> None:
    display = make("jsonl")
    display.warning("slow")
    display.error("bad")
    display.notice("hidden")
    assert errors(display) == "warning: slow\nerror: bad\n"
