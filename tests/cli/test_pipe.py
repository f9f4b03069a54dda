"""A closed stdout (``spectacles-gateway listen | head -5``) ends the CLI quietly.

As ``cat`` does: no traceback, no message, exit status 141 (128 + SIGPIPE, what a
shell shows for ``cat`` killed by SIGPIPE). Real subprocesses whose stdout pipe the
test closes after the first lines, on every driver and backend.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway_cli.explain import _first_real_error
from gateway_cli.run import EXIT_PIPE_CLOSED

from ._pipe import first_line_then_close
from .conftest import ROOT, TIMEOUT, clean_env


@pytest.mark.parametrize(
    "how",
    [
        ["--driver", "anyio", "--backend", "asyncio"],
        ["--driver", "anyio", "--backend", "trio", "--jsonl"],
        ["--driver", "sync"],
    ],
    ids=["asyncio", "trio", "sync"],
)
def test_a_closed_stdout_ends_the_run_quietly(how: list[str]) -> None:
    argv = ["listen", "--duration", "30", "--rate", "200", *how]
    result = first_line_then_close(argv, env=clean_env(), timeout=TIMEOUT, cwd=ROOT)
    assert b"READY" in result.first
    assert result.err == ""
    assert result.status == EXIT_PIPE_CLOSED == 141


class _Group(Exception):
    """Shaped like an exception group (the tests run on Python 3.10 too)."""

    def __init__(self, *inner: BaseException) -> None:
        super().__init__("group")
        self.exceptions = inner


def test_the_last_resort_handler_works_after_the_event_loop_ended() -> None:
    # It runs outside any event loop (after anyio.run returned): asking anyio for the
    # cancellation class there raised, and one error became two tracebacks.
    pipe = BrokenPipeError(32, "Broken pipe")
    assert _first_real_error(_Group(asyncio.CancelledError(), _Group(pipe))) is pipe
    assert _first_real_error(_Group(KeyboardInterrupt())) is None
