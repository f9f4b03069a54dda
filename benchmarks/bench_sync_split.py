"""Where the blocking driver's time goes: CPU per event, thread by thread, next to anyio's.

Runs over the recorded stream and replay server of ``bench_anyio.py``, in
interleaved rounds:

* ``anyio``: one ``gateway_anyio`` shard on asyncio with a handler (one thread);
* ``sync``: one ``gateway_sync`` shard with the same handler, on its handler thread;
* ``sync, inline handler``: the same shard with ``inline_handlers=True``: the
  handler runs on the I/O thread itself, with no second thread.

Each row: events/s (median), its ratio to the same round's anyio shard (min /
median / max), and the CPU per event of each thread (``pthread_getcpuclockid``)
from READY to the last dispatch, medians over the rounds.

    python benchmarks/bench_sync_split.py [--events 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, encode_stream, load_corpus
from bench_anyio import shard, sync_shard
from peers import _common

ANYIO, SYNC, INLINE = "anyio", "sync", "sync, inline handler"


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread, by role: main, I/O, handler."""
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            spent = time.clock_gettime(clock)
        except OSError:  # ended meanwhile
            continue
        role = (
            "handler" if "handler" in thread.name else "I/O" if "shard" in thread.name else "main"
        )
        seconds[role] = seconds.get(role, 0.0) + spent
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="recorded events (default 20000)")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args(argv)

    session, _ = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session, "zlib-stream")
    total, names = len(stream.names), sorted(set(stream.names))
    marks: dict[str, dict[str, float]] = {}
    plain_hook = _common.Tally.hook

    def hook(tally: _common.Tally, event: object) -> None:
        plain_hook(tally, event)
        if tally.n == 1:
            marks["ready"] = _thread_cpu()
        if tally.n == tally.total:
            marks["last"] = _thread_cpu()

    rows = [ANYIO, SYNC, INLINE]
    rates: dict[str, list[float]] = {row: [] for row in rows}
    cpu: dict[str, dict[str, list[float]]] = {row: {} for row in rows}
    _common.Tally.hook = hook  # type: ignore[method-assign,assignment]
    try:
        with ReplayServer(session, stream) as server:
            url = server.url + "/"
            runs: dict[str, Callable[[], Any]] = {
                ANYIO: lambda: shard(url, total, names, backend="asyncio", stream=False),
                SYNC: lambda: sync_shard(url, total, names, stream=False),
                INLINE: lambda: sync_shard(url, total, names, stream=False, inline=True),
            }
            for round_ in range(args.repeat + 1):  # round 0 warms up
                for row in rows[round_ % 3 :] + rows[: round_ % 3]:
                    gc.collect()
                    seconds, n, _ = runs[row]()
                    if not round_:
                        continue
                    rates[row].append(n / seconds)
                    for role, spent in marks["last"].items():
                        used = spent - marks["ready"].get(role, 0.0)
                        cpu[row].setdefault(role, []).append(used / n * 1e6)
    finally:
        _common.Tally.hook = plain_hook  # type: ignore[method-assign]

    print(f"{total} dispatches, {args.repeat} interleaved rounds after a warm-up")
    print(f"{'runner':<24} {'events/s':>9}  {'vs anyio (min/med/max)':<24} CPU µs/event by thread")
    for row in rows:
        ratios = sorted(a / b for a, b in zip(rates[row], rates[ANYIO], strict=True))
        spread = f"x{ratios[0]:.2f} / x{statistics.median(ratios):.2f} / x{ratios[-1]:.2f}"
        threads = ", ".join(
            f"{role} {statistics.median(values):.2f}"
            for role, values in sorted(cpu[row].items())
            if statistics.median(values) >= 0.005
        )
        print(f"{row:<24} {statistics.median(rates[row]):>9,.0f}  {spread:<24} {threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
