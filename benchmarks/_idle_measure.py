"""How an idle process is measured, for bench_idle.py: CPU, RSS, wake-ups, what woke.

Each driver's child of ``bench_idle.py`` runs its shards, then measures plain
windows (CPU by ``getrusage``, OS wake-ups as voluntary context switches of all its
threads) and one instrumented window that counts what woke it: asyncio loop
callbacks, trio task steps, or the sync driver's ``select`` returns.
"""

from __future__ import annotations

import collections
import os
import re
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

#: Wake-ups counted by what woke: the most frequent this many are printed.
TOP = 8
#: Counts what wakes, by name, into the counter it is given, while entered.
Counting = Callable[[collections.Counter[str]], AbstractContextManager[None]]


# -- what the process uses ------------------------------------------------------------


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def process_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _switches() -> int:
    """Voluntary context switches of every live thread of this process."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
                        break
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return total


class Windows:
    """The per-window results of one driver's run."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.cpu: list[float] = []
        self.wakeups: list[float] = []
        self.counted: list[dict[str, float]] = []

    def per_shard_minute(self, count: float, seconds: float) -> float:
        return count / self.shards / seconds * 60

    @staticmethod
    def begin() -> tuple[int, float, float]:
        """Start a plain window: wake-ups, CPU and the clock, in that order."""
        return _switches(), _cpu(), time.monotonic()

    def end(self, begun: tuple[int, float, float]) -> None:
        """End the plain window ``begun`` (read in the opposite order) and print it."""
        elapsed = time.monotonic() - begun[2]
        cpu = _cpu() - begun[1]
        switches = _switches() - begun[0]
        self.cpu.append(cpu / elapsed)
        self.wakeups.append(self.per_shard_minute(switches, elapsed))
        print(
            f"    window: {cpu / elapsed * 100:.3f} % of a core, "
            f"{self.wakeups[-1]:.2f} OS wake-ups per shard per minute "
            f"(load average {os.getloadavg()[0]:.2f})",
            flush=True,
        )

    async def run_async(self, count: Counting, window: float, rounds: int) -> None:
        """``rounds`` times: a plain window, then one counted by ``count`` (event loop)."""
        import anyio

        for _ in range(rounds):
            begun = self.begin()
            await anyio.sleep(window)
            self.end(begun)
            counts: collections.Counter[str] = collections.Counter()
            with count(counts):
                await anyio.sleep(window)
            self.record(counts, window)

    def record(self, counts: collections.Counter[str], seconds: float) -> None:
        per = {k: self.per_shard_minute(v, seconds) for k, v in counts.most_common()}
        self.counted.append(per)
        for name, rate in list(per.items())[:TOP]:
            print(f"      {rate:8.3f} /shard/min  {name}", flush=True)

    def result(self, ready: float, rss: float, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "ready": ready,
            "rss_per_shard": rss,
            "cpu": self.cpu,
            "wakeups": self.wakeups,
            "counted": self.counted,
            **extra,
        }


# -- counting what wakes (instrumented windows) ------------------------------------------


def _callback_name(key: Any) -> str:
    get_name = getattr(key, "get_name", None)
    if get_name is not None:
        # A task: anyio names it after its coroutine, hikari after its job and shard
        # ("heartbeat (shard 12)"): numbers go, so that one name counts every shard's.
        return f"task {re.sub(r'[0-9]+', 'N', get_name())}"
    return f"callback {getattr(key, '__qualname__', type(key).__name__)}"


@contextmanager
def count_asyncio(counts: collections.Counter[str]) -> Iterator[None]:
    import asyncio
    import asyncio.events

    Task = asyncio.Task
    loop = asyncio.get_running_loop()
    by_key: collections.Counter[Any] = collections.Counter()
    original = asyncio.events.Handle._run
    run_once = loop._run_once  # type: ignore[attr-defined]

    def counted_run(handle: asyncio.events.Handle) -> None:
        callback = handle._callback  # type: ignore[attr-defined]
        owner = getattr(callback, "__self__", None)
        by_key[owner if isinstance(owner, Task) else getattr(callback, "__func__", callback)] += 1
        original(handle)

    def counted_run_once() -> None:
        counts["loop iterations (selector returns)"] += 1
        run_once()

    asyncio.events.Handle._run = counted_run  # type: ignore[method-assign,assignment]
    loop._run_once = counted_run_once  # type: ignore[attr-defined]
    try:
        yield
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
        del loop._run_once  # type: ignore[attr-defined]
    for key, n in by_key.items():
        counts[_callback_name(key)] += n
        counts["all callbacks"] += n


@contextmanager
def count_trio(counts: collections.Counter[str]) -> Iterator[None]:
    import trio

    class Counting(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            counts[f"task {'.'.join(task.name.rsplit('.', 2)[-2:])}"] += 1
            counts["all task steps"] += 1

        def after_io_wait(self, timeout: float) -> None:
            counts["loop iterations (I/O waits)"] += 1

    instrument = Counting()
    trio.lowlevel.add_instrument(instrument)
    try:
        yield
    finally:
        trio.lowlevel.remove_instrument(instrument)


class SelectCounter:
    """Counts the returns of every ``selectors.DefaultSelector.select`` while counting.

    Installed before the shards start: a ``select`` that began before a window and
    returns inside it must go through the wrapper to be counted. Outside a counted
    window the wrapper costs one call per return and counts nothing.
    """

    def __init__(self) -> None:
        import selectors

        self._counts: collections.Counter[str] | None = None
        self._lock = threading.Lock()
        selector_class: Any = selectors.DefaultSelector
        original = selector_class.select

        def counted(selector: selectors.BaseSelector, timeout: float | None = None) -> Any:
            ready = original(selector, timeout)
            counts = self._counts
            if counts is not None:
                name = threading.current_thread().name.rstrip("0123456789")
                why = "socket or waker ready" if ready else "timed out (a deadline)"
                with self._lock:
                    counts[f"select returns, {name}*: {why}"] += 1
                    counts["all select returns"] += 1
            return ready

        selector_class.select = counted

    @contextmanager
    def __call__(self, counts: collections.Counter[str]) -> Iterator[None]:
        self._counts = counts
        try:
            yield
        finally:
            self._counts = None


# -- the drivers --------------------------------------------------------------------------
