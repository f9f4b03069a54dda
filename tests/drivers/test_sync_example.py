"""``examples/threaded_bot.py`` end to end, offline against the fake gateway.

Run as a real process, so Ctrl-C is a real SIGINT and "no traceback spam" is what a
user would see on the terminal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "threaded_bot.py"


def start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EXAMPLE_"))}
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_example_prints_events_and_exits_cleanly() -> None:
    proc = start("--max-events", "3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    # Either shard may identify first (both race for the one identify bucket).
    assert any(line in ("shard 0 identified", "shard 1 identified") for line in lines), out + err
    assert len([line for line in lines if line.startswith("[")]) == 3
    assert "Traceback" not in err


def test_ctrl_c_stops_the_example_without_a_traceback() -> None:
    proc = start("--max-events", "1000000")
    assert proc.stdout is not None
    # Wait until the bot is live and events flow, then press Ctrl-C.
    while True:
        line = proc.stdout.readline()
        assert line, "the example ended before printing an event"
        if line.startswith("["):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "interrupted: closing" in err
    assert "closed in" in err
    assert "Traceback" not in err
