"""The CLI end to end, in-process and as a subprocess, against the fake gateway on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from gateway_cli.run import main
from gateway_testing import FakeGateway

from .conftest import ROOT, TIMEOUT, TOKEN, Result, clean_env, run_cli


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    status = main(argv)
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


# -- offline: the embedded fake gateway -------------------------------------------------


def test_offline_listen_prints_events_and_stops_at_duration() -> None:
    result = run_cli(["listen", "--shards", "1", "--duration", "2", "--rate", "40"])
    assert result.status == 0, result.err
    rows = [line.split("\t") for line in result.out.splitlines()]
    assert rows, "no events printed"
    assert all(len(row) == 4 for row in rows)  # shard, seq, NAME, summary
    assert rows[0][:3] == ["0", "1", "READY"]
    assert "GUILD_CREATE" in {row[2] for row in rows}
    assert result.err == ""  # a pipe gets data only


def test_offline_jsonl_lines_parse_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["listen", "--offline", "--shards", "1", "--duration", "2", "--rate", "40", "--jsonl"]
    result = run_main(argv, capsys)
    assert result.status == 0, result.err
    events = json_lines(result.out)
    assert events[0]["event"] == "READY"
    assert events[0]["seq"] == 1
    assert {"shard", "seq", "event", "data"} <= set(events[0])
    sequences = [event["seq"] for event in events]
    assert sequences == sorted(sequences)  # one shard: in order, none twice


def test_status_lines_go_to_stderr_when_forced(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["listen", "--offline", "--shards", "1", "--duration", "2", "--status", "on"]
    argv += ["--events", "READY"]
    result = run_main(argv, capsys)
    assert result.status == 0, result.err
    assert [line.split("\t")[2] for line in result.out.splitlines()] == ["READY"]
    assert "· connecting 1 shard to ws://127.0.0.1:" in result.err
    assert "(the embedded fake gateway, offline)" in result.err
    assert "· all 1 shard ready" in result.err
    assert "· stopped after 2 s;" in result.err


def test_sync_driver_offline() -> None:
    argv = ["listen", "--offline", "--driver", "sync", "--shards", "1", "--duration", "2"]
    result = run_cli([*argv, "--jsonl"])
    assert result.status == 0, result.err
    assert json_lines(result.out)[0]["event"] == "READY"


# -- against a running fake: --api-base ------------------------------------------------


def test_trio_etf_zstd_against_the_fake(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["listen", "--api-base", fake.api_base, "--token", TOKEN, "--duration", "2"]
    argv += ["--backend", "trio", "--encoding", "etf", "--compress", "zstd-stream", "--jsonl"]
    argv += ["--events", "ready,guild_create"]
    result = run_main(argv, capsys)
    assert result.status == 0, result.err
    events = json_lines(result.out)
    assert [e["event"] for e in events][:2] == ["READY", "GUILD_CREATE"]
    assert {e["event"] for e in events} <= {"READY", "GUILD_CREATE"}
    assert isinstance(events[1]["data"]["id"], str)  # ETF snowflakes still arrive as str


def test_bad_token_is_one_clear_line(fake: Any) -> None:
    result = run_cli(["listen", "--api-base", fake.api_base, "--token", "wrong", "--duration", "5"])
    assert result.status == 1
    assert result.err.count("\n") == 1, result.err
    assert "token" in result.err
    assert "Traceback" not in result.err


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--intents", "guilds,nope"], "unknown intent 'nope'"),
        (["--shards", "5-2/8"], "runs backwards"),
        (["--encoding", "yaml"], "invalid choice: 'yaml'"),
        (["--api-base", "http://127.0.0.1:9/api/v10"], "needs a token"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_cli(["listen", *args])
    assert result.status == 2
    assert result.out == ""
    assert result.err.count("\n") == 1, result.err
    assert message in result.err


# -- Ctrl-C and the fake subcommand -------------------------------------------------------


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=ROOT,
    )


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGINT) -> tuple[int, str, str]:
    proc.send_signal(signum)
    # Read through the text wrappers (not communicate(), which reads the raw pipes
    # and would skip what readline() already buffered). stderr is a few lines at most.
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stdout, proc.stderr:
        out, err = proc.stdout.read(), proc.stderr.read()
    return proc.wait(timeout=TIMEOUT), out, err


@pytest.mark.parametrize(
    ("driver", "signum"),
    [("anyio", signal.SIGINT), ("sync", signal.SIGINT), ("sync", signal.SIGTERM)],
)
def test_ctrl_c_closes_cleanly(driver: str, signum: signal.Signals) -> None:
    proc = start(["listen", "--shards", "1", "--duration", "0", "--jsonl", "--driver", driver])
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # the shard is live once READY arrived
    finally:
        status, out, err = stop(proc, signum)
    assert first["event"] == "READY"
    assert status == 130
    assert "Traceback" not in err
    assert err == ""  # a pipe stays quiet, even on the way out
    json_lines(out)  # every line complete: nothing was cut mid-write


def test_fake_subcommand_serves_a_bot() -> None:
    token = "fake-cmd-token"
    proc = start(["fake", "--port", "0", "--token", token, "--rate", "40"])
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        api_base = next(word for word in banner.split() if word.startswith("http://"))
        api_base = api_base.rstrip(",)")
        result = run_cli(
            ["listen", "--api-base", api_base, "--token", token, "--duration", "2", "--jsonl"]
        )
    finally:
        status, _, err = stop(proc)
    assert result.status == 0, result.err
    assert json_lines(result.out)[0]["event"] == "READY"
    assert status == 0  # Ctrl-C is how a fake gateway is meant to stop
    assert "Traceback" not in err


@pytest.mark.parametrize("driver", ["anyio", "sync"])
def test_disallowed_privileged_intents_are_named(driver: str) -> None:
    # A fake that lets the bot use no privileged intent: asking for one is a 4014.
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(FakeGateway(token=TOKEN, privileged_intents=0)) as fake,
    ):
        argv = ["listen", "--api-base", fake.api_base, "--token", TOKEN, "--duration", "20"]
        result = run_cli([*argv, "--intents", "guilds,message_content", "--driver", driver])
    assert result.status == 1
    assert result.err.count("\n") == 1, result.err
    assert "4014" in result.err
    assert "message_content" in result.err
    assert "Developer Portal" in result.err
