"""``--status [HOST:]PORT``: the CLI serves the status page, scraped over real loopback HTTP.

``listen`` runs as a subprocess (offline, the embedded fake gateway) on both
drivers; the test reads the page's URL from stderr and scrapes ``/readyz`` and
``/metrics`` while the shards run. Bad addresses get the CLI's one-line error.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_cli.args import STATUS_DEFAULT_HOST, parse_args, parse_status_address
from gateway_cli.run import main

from .conftest import ROOT, TIMEOUT, clean_env


def _metric(text: str, name: str) -> dict[str, float]:
    """The samples of one metric, by their ``shard`` (and ``state``) labels."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels["shard"]
                if "state" in sample.labels:
                    key += "/" + sample.labels["state"]
                out[key] = sample.value
    return out


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``listen`` and return it with the status page's URL, read from its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_cli", "listen", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=ROOT,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the first line: it is printed before any shard starts
    if not line.startswith("status page: http://"):
        proc.kill()
        pytest.fail(f"no status page URL, got {line!r} {proc.communicate(timeout=TIMEOUT)}")
    return proc, line.split(": ", 1)[1].strip()


def _wait_ready(client: httpx.Client, url: str) -> httpx.Response:
    """Poll ``/readyz`` until every shard is READY (none merely within its grace)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = client.get(url + "readyz")
        settled = answer.status_code == 200 and not answer.json()["recovering"]
        if settled or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.mark.parametrize("driver", ["anyio", "sync"])
def test_listen_serves_readyz_and_metrics_of_its_shards(driver: str) -> None:
    argv = ["--shards", "2", "--duration", "0", "--driver", driver, "--status", "0"]
    proc, url = _start([*argv, "--rate", "40"])
    try:
        assert url.startswith(f"http://{STATUS_DEFAULT_HOST}:")  # loopback by default
        with httpx.Client(timeout=5.0) as client:
            ready = _wait_ready(client, url)
            assert ready.status_code == 200, ready.text
            assert ready.json()["shards"] == 2
            metrics = client.get(url + "metrics")
            assert metrics.status_code == 200
            states = _metric(metrics.text, "gateway_shard_state")
            assert states["0/ready"] == states["1/ready"] == 1.0
            identifies = _metric(metrics.text, "gateway_identifies_total")
            assert identifies == {"0": 1.0, "1": 1.0}
            page = client.get(url)
            assert page.status_code == 200
            shown = client.get(url + "status.json").json()
            assert shown["process"] == "spectacles-gateway listen"
            assert [shard["id"] for shard in shown["shards"]] == [0, 1]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


@pytest.mark.parametrize("driver", ["anyio", "sync"])
def test_a_port_in_use_is_one_line_and_exit_1(
    driver: str, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["listen", "--offline", "--shards", "1", "--duration", "5", "--jsonl"]
    status = main([*argv, "--driver", driver, "--status", f"127.0.0.1:{taken_port}"])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err == (
        f"error: cannot serve the status page on 127.0.0.1:{taken_port}: Address already in use\n"
    )
    assert captured.out == ""  # no shard ran: not one event


def test_an_address_the_machine_does_not_have_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["listen", "--offline", "--shards", "1", "--duration", "5", "--jsonl"]
    status = main([*argv, "--status", "192.0.2.1:8080"])  # TEST-NET-1: never local
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("error: cannot serve the status page on 192.0.2.1:8080: ")
    assert captured.err.count("\n") == 1
    assert captured.out == ""


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (":0", ("127.0.0.1", 0)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("[::1]:8080", ("::1", 8080)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_status_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_status_address(text) == address


def test_display_mode_and_address_go_together() -> None:
    options = parse_args(["listen", "--status", "off", "--status", "8081"], environ={})
    assert (options.status, options.status_address) == ("off", ("127.0.0.1", 8081))  # type: ignore[union-attr]
    options = parse_args(["listen", "--status", "on"], environ={})
    assert (options.status, options.status_address) == ("on", None)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["listen", "--status", "8080x"], "expected auto, on, off or a status page address"),
        (["listen", "--status", "70000"], "port must be 0-65535"),
        (["listen", "--status", "[::1:80"], "expected auto, on, off"),
        (["listen", "--status", "on", "--status", "off"], "contradict"),
        (["listen", "--status", "1", "--status", "2"], "two status page addresses"),
        (["run", "--redis", "redis://x", "--count", "1", "--status", "a:b"], "expected auto"),
    ],
)
def test_bad_status_values_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv, environ={"DISCORD_TOKEN": "t"})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
