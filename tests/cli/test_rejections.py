"""The CLI against a server that refuses every connection before READY, and the User-Agent.

``listen`` must not exit 0 after ``--duration`` with nothing ever connected: the
status line says ``rejected: <reason>``, and the run ends with one line saying
why and a non-zero status. ``--user-agent`` reaches both the upgrade and REST.
"""

from __future__ import annotations

import io

import pytest
from anyio.from_thread import start_blocking_portal

from gateway_cli.display import Display, EventRecord
from gateway_cli.listen import _Listener
from gateway_cli.run import EXIT_FAILURE, main
from gateway_proto import CloseCause
from gateway_proto.driver_support import (
    CONNECT,
    ERROR,
    Connected,
    ConnectionRejectedError,
    GatewayEvent,
)
from gateway_testing import FakeGateway

from .conftest import TOKEN

REFUSAL = ConnectionRejectedError(
    4002, "User-Agent header is required", CloseCause.SERVER_CLOSED, 3
)


@pytest.mark.parametrize("driver", ["anyio", "sync"])
def test_listen_fails_when_no_shard_ever_became_ready(
    driver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # This server serves ETF only: every JSON connection is closed 4002 before HELLO.
    fake = FakeGateway(token=TOKEN, encodings=("etf",), heartbeat_interval=1.0)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(fake) as running:
        argv = ["listen", "--api-base", running.api_base, "--token", TOKEN, "--driver", driver]
        argv += ["--duration", "3", "--status", "on", "--status-interval", "0.5"]
        status = main(argv)
        connections = len(running.connections)
    err = capsys.readouterr().err
    assert connections >= 2, err
    assert status == EXIT_FAILURE, err
    assert "rejected: 4002 encoding 'json' is not served here" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: no shard became ready"), err
    assert "4002 encoding 'json' is not served here" in last
    assert "Traceback" not in err


def test_the_user_agent_option_reaches_the_upgrade_and_rest(
    fake: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = "CliBot (https://cli.example.test, 0.9)"
    argv = ["listen", "--api-base", fake.api_base, "--token", TOKEN, "--duration", "2"]
    status = main([*argv, "--user-agent", agent, "--events", "ready", "--jsonl"])
    assert status == 0, capsys.readouterr().err
    assert fake.connections[-1].user_agent == agent
    assert fake.http_requests[-1].user_agent == agent


def test_a_user_agent_that_cannot_be_a_header_is_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["listen", "--offline", "--user-agent", "a\nb"]) == 2
    assert "--user-agent" in capsys.readouterr().err


def test_the_status_line_says_rejected_until_the_shard_is_ready() -> None:
    display = Display(io.StringIO(), io.StringIO(), mode="plain", status=True)
    display.start([0, 1], 0.0, where="test")
    listener = _Listener(display, [0, 1], lambda: 0.0)
    listener.handle(GatewayEvent(ERROR, 1, REFUSAL))
    assert "shard 1 rejected: 4002 User-Agent header is required" in (
        display.board.progress_line(0.0)
    )
    assert not listener.outcome.ever_ready
    assert listener.outcome.rejections == {1: "4002 User-Agent header is required"}
    listener.handle(GatewayEvent(CONNECT, 1, Connected(False, None)))
    display.event(EventRecord(1, "READY", {}, 1), 0.1)
    assert listener.outcome.ever_ready
    assert "rejected" not in display.board.progress_line(0.2)
