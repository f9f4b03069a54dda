"""Every file in examples/ runs against the fake gateway, so none can rot.

Each example reads the same environment: ``DISCORD_TOKEN``, ``DISCORD_API_BASE``
(the fake's REST base), ``EXAMPLE_MAX_EVENTS`` (stop after that many events) and
``EXAMPLE_DURATION`` (stop after that many seconds at the latest). A new example
is picked up automatically; it passes when it exits 0 and printed something.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, TIMEOUT, TOKEN, clean_env

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"anyio_bot.py", "trio_bot.py", "asyncio_protocol.py"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs_against_the_fake(path: Path, fake: Any) -> None:
    env = clean_env(
        {
            "DISCORD_TOKEN": TOKEN,
            "DISCORD_API_BASE": fake.api_base,
            "EXAMPLE_MAX_EVENTS": "5",
            "EXAMPLE_DURATION": "8",
        }
    )
    proc = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{path.name} printed nothing:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr  # examples must not print the token


#: A line an example prints for a dispatch of the lively stream (not READY or a
#: GUILD_CREATE of the handshake): ``#12 MESSAGE_CREATE ...`` or ``[0] author: text``.
_LIVELY_LINE = re.compile(r"^(#\d+ (?!READY|GUILD_CREATE|RESUMED)[A-Z_]+|\[\d+\] \S)", re.M)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_shows_events_within_two_seconds_offline(path: Path) -> None:
    # Without a token every example starts its own fake gateway; that fake must stream
    # events (event_rate), or a new user watches a silent terminal for 30 s.
    env = clean_env({"EXAMPLE_DURATION": "2", "EXAMPLE_MAX_EVENTS": "10"})
    proc = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert _LIVELY_LINE.search(proc.stdout), (
        f"{path.name} showed no event in 2 s offline:\n{proc.stdout}\n{proc.stderr}"
    )
