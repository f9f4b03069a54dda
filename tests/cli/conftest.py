"""Fixtures of the CLI and example tests: a fake gateway on loopback, and a runner.

The fake runs on an event loop in a thread of its own (an anyio blocking portal),
so the tests themselves stay synchronous: they run the CLI in-process (it calls
``anyio.run`` itself) or as a subprocess, against the same fake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from gateway_testing import FakeGateway

#: The token the test fake accepts (shaped like a real one, so redaction is exercised).
TOKEN = "cli-test-token.abcdef.0123456789"  # not a secret: a fake's token
#: Seconds any subprocess may take before the test fails (no test waits this long
#: when things work; it only turns a hang into a failure).
TIMEOUT = 45.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    """What a CLI run returned."""

    status: int
    out: str
    err: str


@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    """A lively fake gateway (one shard recommended) on 127.0.0.1, shared by a module.

    Its identify window is short: every run here identifies shard 0 (bucket 0), and
    with Discord's 5 s window each run would wait for the previous one's slot.
    """
    fake = FakeGateway(
        token=TOKEN, shards=1, event_rate=40.0, heartbeat_interval=2.0, identify_window=0.05
    )
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(fake) as running:
        yield running


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess: no DISCORD_TOKEN leaking in, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EXAMPLE_"))}
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None) -> Result:
    """Run ``python -m gateway_cli ARGS`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "gateway_cli", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=clean_env(env),
        cwd=ROOT,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
