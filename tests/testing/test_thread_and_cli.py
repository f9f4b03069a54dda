"""The fake from synchronous code (a background thread) and from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from websockets.sync.client import connect

from gateway_testing import FakeGateway
from gateway_testing._cli import parse_args

PROPS = {"os": "linux", "browser": "t", "device": "t"}


def test_run_in_thread_with_a_blocking_client() -> None:
    with FakeGateway(token="sync-token", heartbeat_interval=1.0).run_in_thread() as fake:
        with urllib.request.urlopen(f"{fake.api_base}/gateway") as response:
            url = json.load(response)["url"]
        with connect(f"{url}/?v=10&encoding=json", compression=None) as ws:
            assert json.loads(ws.recv())["op"] == 10
            conn = fake.next_connection()
            ws.send(
                json.dumps(
                    {"op": 2, "d": {"token": "sync-token", "intents": 1, "properties": PROPS}}
                )
            )
            session = conn.wait_identified()
            assert json.loads(ws.recv())["t"] == "READY"
            for _ in session.guild_ids:
                json.loads(ws.recv())
            fake.dispatch("MESSAGE_CREATE", {"guild_id": session.guild_ids[0], "content": "hi"})
            message = json.loads(ws.recv())
            assert message["d"]["content"] == "hi"
            assert message["s"] == 5
            ws.send(json.dumps({"op": 1, "d": 5}))
            assert conn.wait_for_op(1).d == 5
            assert json.loads(ws.recv())["op"] == 11
            conn.reconnect()
            assert json.loads(ws.recv())["op"] == 7
            conn.close(4000)
        assert conn.server_close_code == 4000
        assert [c.path for c in fake.connections] == ["/"]


def test_cli_arguments() -> None:
    args = parse_args(["--port", "0", "--shards", "3", "--rate", "12.5", "--encoding", "etf"])
    assert (args.port, args.shards, args.rate, args.encoding) == (0, 3, 12.5, "etf")
    with pytest.raises(SystemExit):
        parse_args(["--rate", "0"])


def test_cli_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway_testing",
            "--port",
            "0",
            "--rate",
            "50",
            "--heartbeat-interval",
            "5",
            "--token",
            "cli-token",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake gateway listening: ws://127.0.0.1:")
        url = line.split()[3]
        with connect(f"{url}?v=10&encoding=json", compression=None) as ws:
            assert json.loads(ws.recv())["op"] == 10
            ws.send(
                json.dumps(
                    {"op": 2, "d": {"token": "cli-token", "intents": 513, "properties": PROPS}}
                )
            )
            names = [json.loads(ws.recv(timeout=10))["t"] for _ in range(8)]
        assert names[:4] == ["READY", "GUILD_CREATE", "GUILD_CREATE", "GUILD_CREATE"]
        assert all(n is not None for n in names[4:])  # the lively stream
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
