"""Run the CLI as a subprocess and close its stdout after the first line, as ``| head -1`` does.

Shared by the closed-stdout tests of every command (``listen`` here, ``run`` and
``worker`` in tests/scaling/test_run_pipe.py): each must end quietly, with 141.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PipeResult", "first_line_then_close"]


@dataclass(frozen=True)
class PipeResult:
    """What the command did once its reader went away."""

    #: The first line it printed on stdout (``b""``: none before it ended).
    first: bytes
    #: Everything it wrote to stderr.
    err: str
    #: Its exit status.
    status: int


def first_line_then_close(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> PipeResult:
    """Run ``python -m gateway_cli ARGV``, read one stdout line, close stdout, wait for the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # what `head -1` does once it has its line
        status = proc.wait(timeout=timeout)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    return PipeResult(first, err, status)
