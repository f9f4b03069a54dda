"""``spectacles-gateway run | head -1``: a closed stdout ends the process quietly (141).

As ``listen`` does (tests/cli/test_pipe.py): the process stops cleanly (sessions
saved, leases released), prints nothing, and exits 128 + SIGPIPE, as ``cat`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys

from gateway_testing import FakeGateway

from ._gateways import SRC, TOKEN

TIMEOUT = 45.0


def test_run_ends_quietly_when_its_stdout_closes(redis_url: str) -> None:
    fake = FakeGateway(token=TOKEN, shards=1, event_rate=200.0, identify_window=0.05)
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1"}
    env.pop("DISCORD_TOKEN", None)
    with fake.run_in_thread() as running:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gateway_cli", "run", "--redis", redis_url,
                "--api-base", running.api_base, "--token", TOKEN, "--jsonl",
                "--count", "1", "--shard-count", "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            first = proc.stdout.readline()
            proc.stdout.close()  # what `head -1` does once it has its line
            status = proc.wait(timeout=TIMEOUT)
            err = proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()
    assert b'"event":"READY"' in first.replace(b" ", b"")
    assert err == ""
    assert status == 141
