"""What every runner of ``bench_peers.py`` shares: the run's shape, its clocks, imports.

A runner is built by a ``make`` function (one per library and level, in the sibling
modules) that returns a :data:`Run`, or raises :class:`Unavailable` when its
library cannot run here; a loopback run counts from READY to the last event.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from typing import Any

TOKEN = "bench.token.not-a-real-one"
INTENTS = (1 << 0) | (1 << 9)  # GUILDS | GUILD_MESSAGES (the replay server ignores intents)
TIMEOUT = 120.0  # seconds for one loopback run before it counts as failed

# A run returns (seconds, events): the timed span and how many events it covered.
Run = Callable[[], tuple[float, int]]
#: A loopback run's (wall seconds, events, CPU seconds of this process, every thread)
#: from READY to the last event: what ``bench_anyio.py`` interleaves with its own rows.
Timed = tuple[float, int, float]
#: A point in time on both clocks: (``perf_counter``, ``process_time``).
Instant = tuple[float, float]
_ZERO: Instant = (0.0, 0.0)


def _now() -> Instant:
    return time.perf_counter(), time.process_time()


class Unavailable(Exception):
    """This contender cannot run here (library missing, API changed, ...)."""


def _import(name: str, why: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"{why} ({exc.__class__.__name__}: {exc})") from None


def _loads() -> tuple[Callable[[bytes | str], Any], str]:
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return json.loads, "json"
    return orjson.loads, "orjson"


def _span(t_ready: float, t_last: float, n: int, total: int) -> tuple[float, int]:
    if n != total or not t_last:
        raise RuntimeError(f"received {n} of {total} events")
    return t_last - t_ready, total - 1  # READY starts the clock: the rest are timed


def _timed_span(t_ready: Instant, t_last: Instant, n: int, total: int) -> Timed:
    seconds, events = _span(t_ready[0], t_last[0], n, total)
    return seconds, events, t_last[1] - t_ready[1]


class Tally:
    """Counts a run's events and marks the first (READY) and the last; calls ``done``.

    Its :meth:`hook` is the handler every loopback run of our shard registers.
    """

    def __init__(self, total: int, done: Callable[[], object]) -> None:
        self.total, self.done = total, done
        self.n, self.ready, self.last = 0, _ZERO, _ZERO

    def hook(self, event: object) -> None:
        """Count one event."""
        self.n += 1
        if self.n == 1:
            self.ready = _now()
        if self.n == self.total:
            self.last = _now()
            self.done()

    def result(self) -> Timed:
        """From READY to the last event: wall seconds, events timed, CPU seconds."""
        return _timed_span(self.ready, self.last, self.n, self.total)


def _wall(timed: Callable[[], Timed]) -> Run:
    """``timed`` as this script's runs: (seconds, events), CPU time dropped."""

    def run() -> tuple[float, int]:
        seconds, events, _ = timed()
        return seconds, events

    return run
