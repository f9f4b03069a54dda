"""What the CLI says must be true: readiness, unknown --events, 4002 loops, the URL, --duration.

Each test here failed before its fix (issue 11, trap 7).
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys

import pytest
from anyio.from_thread import start_blocking_portal

from gateway_cli.args import unknown_event_warnings
from gateway_cli.display import Display, EventRecord
from gateway_cli.run import EXIT_FAILURE, EXIT_OK, main
from gateway_testing import FakeGateway

from .conftest import TOKEN

DRIVERS = ["anyio", "sync"]


def test_a_reconnecting_shard_is_not_counted_as_ready() -> None:
    err = io.StringIO()
    display = Display(io.StringIO(), err, mode="plain", status=True, status_interval=1)
    display.start([0, 1], 0.0, where="test")
    display.event(EventRecord(0, "READY", {}, 1), 0.1)
    display.event(EventRecord(1, "READY", {}, 1), 0.2)
    display.shard_state(1, "reconnecting", 0.5)
    display.tick(1.5)
    assert display.board.ready_count == 1
    lines = err.getvalue().splitlines()
    assert lines.count("· all 2 shards ready") == 1  # said once, when it was true
    assert "1/2" in lines[-1], lines
    assert "2/2" not in lines[-1], lines
    display.shard_state(1, "resuming", 2.0)
    display.event(EventRecord(1, "RESUMED", None, 5), 2.1)
    assert display.board.all_ready
    assert err.getvalue().splitlines()[-1] == "· all 2 shards ready"


def test_unknown_event_names_are_warned_about_with_a_suggestion() -> None:
    warnings = unknown_event_warnings(frozenset({"FOO", "MESAGE_CREATE", "READY", "GUILD_CREATE"}))
    assert len(warnings) == 2
    assert any("'FOO'" in w and "no event" in w for w in warnings)
    assert any("'MESAGE_CREATE'" in w and "did you mean MESSAGE_CREATE" in w for w in warnings)
    assert unknown_event_warnings(None) == []


def test_every_event_the_payload_types_know_is_known_to_events() -> None:
    # One list: the payload types' (it had CHANNEL_INFO and the voice channel
    # events of 2026-04, the CLI's own copy did not).
    from gateway_proto.payloads import DISPATCH_EVENTS

    assert unknown_event_warnings(frozenset(DISPATCH_EVENTS)) == []
    assert unknown_event_warnings(frozenset({"CHANNEL_INFO"})) == []


def test_the_cli_does_not_load_the_payload_types_to_start() -> None:
    # They are only needed to check --events names: `--help` stays quick.
    code = "import sys, gateway_cli.args; print('gateway_proto.payloads' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_listen_with_an_unknown_event_name_says_so(
    fake: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["listen", "--api-base", fake.api_base, "--token", TOKEN, "--duration", "1"]
    status = main([*argv, "--events", "foo", "--jsonl"])
    captured = capsys.readouterr()
    assert status == EXIT_OK
    assert captured.out == ""
    assert "warning: --events: 'FOO' is no event Discord documents" in captured.err


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_that_cannot_decode_json_ends_the_run_with_the_reason(
    driver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # ETF only: every JSON connection is closed with 4002 before HELLO. --duration 0
    # runs forever: only giving up on the repeated 4002 ends this run.
    fake = FakeGateway(token=TOKEN, encodings=("etf",), heartbeat_interval=1.0)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(fake) as running:
        argv = ["listen", "--api-base", running.api_base, "--token", TOKEN, "--driver", driver]
        status = main([*argv, "--duration", "0"])
    err = capsys.readouterr().err
    assert status == EXIT_FAILURE, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: no shard became ready"), err
    assert "4002" in last
    assert "--encoding etf" in last
    assert "Traceback" not in err


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_first_line_names_the_gateway_url(
    driver: str, fake: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["listen", "--api-base", fake.api_base, "--token", TOKEN, "--duration", "1"]
    status = main([*argv, "--status", "on", "--jsonl", "--driver", driver])
    err = capsys.readouterr().err
    assert status == EXIT_OK, err
    first = err.splitlines()[0]
    assert first.startswith("· connecting 1 shard to ws://127.0.0.1:"), first
    assert fake.gateway_url.rstrip("/") in first


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: every connection is refused


@pytest.mark.parametrize("driver", DRIVERS)
def test_duration_bounds_the_rest_retries(driver: str, capsys: pytest.CaptureFixture[str]) -> None:
    api_base = f"http://127.0.0.1:{_closed_port()}/api/v10"
    argv = ["listen", "--api-base", api_base, "--token", TOKEN, "--duration", "1"]
    status = main([*argv, "--driver", driver])
    err = capsys.readouterr().err
    assert status == EXIT_FAILURE, err
    assert err.count("\n") == 1, err
    assert "within --duration 1 s" in err
    assert "GET /gateway/bot" in err
