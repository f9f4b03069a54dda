"""Idle shards: what N connected shards that receive nothing but heartbeat ACKs cost.

N shards of one driver (``anyio`` on asyncio, ``trio``: anyio on trio, ``sync``:
``gateway_sync``) in one ``Cluster`` in one process, against a fake gateway in a
child process (``_idle_fake.py``: 41.25 s heartbeats, ``max_concurrency`` = N, so
identify is not the limit). ``hikari``: N of hikari's ``GatewayShardImpl`` on one
asyncio loop against the same fake (zlib-stream, as ``peers/hikari.py`` builds one;
needs hikari, i.e. the peers venv, else its row is n/a with the reason). ``floor``:
bare asyncio (below). Each driver runs in a process of its own, so that RSS and CPU
are its alone. Reported per driver:

* time from ``spawn`` to every shard READY;
* RSS per shard: the process's RSS once every shard is READY and the READY burst has
  settled (5 s), less its RSS before ``spawn``, divided by N;
* CPU, % of one core: the process's user + system time (``getrusage``) over windows
  of ``--window`` seconds, nothing instrumented;
* OS wake-ups per shard per minute, in the same windows: the voluntary context
  switches of every thread of the process (``/proc/self/task/*/status``), i.e. how
  often a thread blocked and was woken again. Costs nothing to count;
* what woke, in a separate instrumented window after each plain one (its CPU is not
  reported): on asyncio every callback the loop runs (``Handle._run``; a task's
  resumption is one) and every loop iteration; on trio every task step and every I/O
  wait (a trio instrument); for ``sync``, every return of the I/O threads' ``select``,
  timed out or not (that wrapper is installed from the start, and counts only
  then). Per shard per minute, by task (coroutine) or callback.

An idle shard should wake for its heartbeat (every 41.25 s: ~1.45 per minute) and
for the ACK that answers it, and for nothing else. Our drivers start each shard's
heartbeats at a random phase, then put them on the core's heartbeat grid (2.5 s by
default; ``--heartbeat-grid S`` sets it, 0 turns it off, and gives the floor's timers
the same grid); hikari's shards beat at once on HELLO, so 1,000 of them started
together beat in a burst every 41.25 s: against hikari, make ``--window`` a multiple
of 41.25 s, or a window's CPU depends on whether the burst fell into it.

Run: ``.venv/bin/python benchmarks/bench_idle.py [--driver all|anyio,hikari,...]
[--shards N] [--window S] [--rounds R] [--alternate] [--heartbeat-grid S]
[--json FILE]`` (default: every
driver, 1,000 shards, 500 for sync, one 60 s window each). ``--alternate`` runs one
child per driver per round, the drivers in turn, so that their windows interleave in
time (what ``bench_all.py`` does for anyio against hikari). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _idle_fake import HEARTBEAT_INTERVAL, TOKEN, IdleFake
from _idle_measure import SelectCounter, Windows, count_asyncio, count_trio, process_rss

DRIVERS = ("anyio", "trio", "sync", "floor", "hikari")
#: Seconds between READY and the first window: the READY/GUILD_CREATE burst settles.
SETTLE = 5.0


def run_async(
    backend: str,
    fake: IdleFake,
    shards: int,
    window: float,
    rounds: int,
    *,
    options: dict[str, Any],
) -> Any:
    import anyio

    from gateway_anyio import Cluster, Gateway
    from gateway_proto.driver_support import ShardState

    windows = Windows(shards)
    count = count_asyncio if backend == "asyncio" else count_trio

    async def main() -> dict[str, Any]:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        async with Cluster(gateway, intents=513, identify_window=0.05, **options) as cluster:
            rss = process_rss()
            start = time.monotonic()
            await cluster.spawn(shards)
            with anyio.fail_after(600):
                while any(s.state is not ShardState.READY for s in cluster.shards.values()):
                    await anyio.sleep(0.02)
            ready = time.monotonic() - start
            print(f"    {shards} shards READY in {ready:.2f} s", flush=True)
            await anyio.sleep(SETTLE)
            rss_per_shard = (process_rss() - rss) / shards
            await windows.run_async(count, window, rounds)
            reconnects = sum(sum(s.counters.reconnects.values()) for s in cluster.shards.values())
            await cluster.aclose()
        return windows.result(ready, rss_per_shard, {"reconnects": reconnects, "threads": 1})

    result: dict[str, Any] = anyio.run(main, backend=backend)
    return result


def run_sync(
    fake: IdleFake, shards: int, window: float, rounds: int, *, options: dict[str, Any]
) -> Any:
    from gateway_proto.driver_support import ShardState
    from gateway_sync import Cluster, Gateway

    windows = Windows(shards)
    count_selects = SelectCounter()
    gateway = Gateway(TOKEN, api_base=fake.api_base)
    with Cluster(gateway, intents=513, identify_window=0.05, **options) as cluster:
        rss = process_rss()
        start = time.monotonic()
        cluster.spawn(shards)
        deadline = start + 600
        while any(s.state is not ShardState.READY for s in cluster.shards.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("shards not READY after 600 s")
            time.sleep(0.02)
        ready = time.monotonic() - start
        print(f"    {shards} shards READY in {ready:.2f} s", flush=True)
        time.sleep(SETTLE)
        rss_per_shard = (process_rss() - rss) / shards
        threads = threading.active_count()
        for _ in range(rounds):
            begun = windows.begin()
            time.sleep(window)
            windows.end(begun)
            counts: collections.Counter[str] = collections.Counter()
            with count_selects(counts):
                time.sleep(window)
            windows.record(counts, window)
        reconnects = sum(sum(s.counters.reconnects.values()) for s in cluster.shards.values())
    return windows.result(ready, rss_per_shard, {"reconnects": reconnects, "threads": threads})


def run_hikari(fake: IdleFake, shards: int, window: float, rounds: int, stagger: bool) -> Any:
    """hikari's ``GatewayShardImpl`` x ``shards`` on one asyncio loop, as ``GatewayBot`` runs them.

    Each shard is built as ``peers/hikari.py`` builds one (zlib-stream transport, the
    event manager and factory stubbed to a counter), with its shard id and count, and
    given the fake's WebSocket URL directly (``GatewayBot`` would ask REST for it once).
    All are started at once: the fake's ``max_concurrency`` is N; as hikari sends its
    first heartbeat on HELLO, their heartbeats then come in one burst per interval.
    With ``stagger`` each starts after a random delay of up to one heartbeat
    interval instead, so that their heartbeats are spread as our drivers' are. Raises
    ``peers.Unavailable`` when hikari is not installed (the project's ``.venv``).
    """
    import asyncio
    import random

    from peers.hikari import _hikari_api, _hikari_shard, _HikariSink, _quiet_hikari_teardown

    hikari, shard_impl, hconfig = _hikari_api()
    windows = Windows(shards)

    class Sink(_HikariSink):
        """Counts connections too: hikari keeps no reconnect counter."""

        connects = 0

        def deserialize_connected_event(self, shard: Any) -> None:
            self.connects += 1

    async def main() -> dict[str, Any]:
        _quiet_hikari_teardown(hikari)
        sink = Sink(0)
        url = f"ws://127.0.0.1:{fake.port}/"
        rss = process_rss()
        start = time.monotonic()
        group = [
            _hikari_shard(
                hikari, shard_impl, hconfig, sink, url, shard_id=i, shard_count=shards, token=TOKEN
            )
            for i in range(shards)
        ]

        async def start_one(shard: Any) -> None:
            if stagger:
                await asyncio.sleep(random.uniform(0, HEARTBEAT_INTERVAL))
            await shard.start()

        await asyncio.wait_for(asyncio.gather(*(start_one(shard) for shard in group)), 600)
        ready = time.monotonic() - start
        print(f"    {shards} shards READY in {ready:.2f} s", flush=True)
        await asyncio.sleep(SETTLE)
        rss_per_shard = (process_rss() - rss) / shards
        await windows.run_async(count_asyncio, window, rounds)
        reconnects = sink.connects - shards
        await asyncio.gather(*(shard.close() for shard in group))
        extra = {"reconnects": reconnects, "threads": threading.active_count()}
        return windows.result(ready, rss_per_shard, extra)

    return asyncio.run(main())


def echo_main() -> None:
    """Child: echo every byte on every connection; prints its port; stops on stdin EOF."""
    import asyncio

    async def serve() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(4096):
                writer.write(data)

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(serve())


def run_floor(shards: int, window: float, rounds: int, grid: float | None) -> Any:
    """The floor: bare asyncio, one ``Protocol`` per connection, no gateway at all.

    Each connection writes 16 bytes every heartbeat interval (a timer of its own, at a
    random phase) and the echo child sends them back: the least an event loop can do
    for N idle shards (a timer, a write, a read per heartbeat). With ``grid`` each
    beat moves back to a multiple of it, as the library's ``heartbeat_grid`` does.
    """
    import asyncio
    import random

    windows = Windows(shards)
    echo = subprocess.Popen(
        [sys.executable, __file__, "--echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert echo.stdin is not None
    assert echo.stdout is not None
    port = int(echo.stdout.readline())

    def on_grid(when: float) -> float:
        return when - when % grid if grid else when

    class Beat(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            loop = asyncio.get_running_loop()
            loop.call_at(on_grid(loop.time() + random.uniform(0, HEARTBEAT_INTERVAL)), self.beat)

        def beat(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(b"0123456789abcdef")  # type: ignore[attr-defined]
                loop = asyncio.get_running_loop()
                loop.call_at(on_grid(loop.time() + HEARTBEAT_INTERVAL), self.beat)

        def data_received(self, data: bytes) -> None:
            pass

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        rss, start = process_rss(), time.monotonic()
        transports = [
            (await loop.create_connection(Beat, "127.0.0.1", port))[0] for _ in range(shards)
        ]
        ready = time.monotonic() - start
        await asyncio.sleep(SETTLE)
        rss_per_shard = (process_rss() - rss) / shards
        await windows.run_async(count_asyncio, window, rounds)
        for transport in transports:
            transport.close()
        return windows.result(ready, rss_per_shard, {"reconnects": 0, "threads": 1})

    try:
        result = asyncio.run(main())
    finally:
        echo.stdin.close()
        echo.wait(timeout=30)
        echo.stdout.close()
    return result


def child(
    driver: str,
    shards: int,
    window: float,
    rounds: int,
    *,
    stagger: bool = False,
    grid: float | None = None,
) -> None:
    """Run one driver with a fake of its own; print its result as the last line (JSON)."""
    options = {} if grid is None else {"heartbeat_grid": grid}
    if driver == "floor":
        print(json.dumps(run_floor(shards, window, rounds, grid)), flush=True)
        return
    if driver == "hikari":
        from peers import Unavailable

        try:
            with IdleFake(shards) as fake:
                result = run_hikari(fake, shards, window, rounds, stagger)
        except Unavailable as e:
            result = {"unavailable": str(e)}
        print(json.dumps(result), flush=True)
        return
    with IdleFake(shards) as fake:
        if driver == "sync":
            result = run_sync(fake, shards, window, rounds, options=options)
        else:
            backend = "asyncio" if driver == "anyio" else "trio"
            result = run_async(backend, fake, shards, window, rounds, options=options)
    print(json.dumps(result), flush=True)


# -- the table ------------------------------------------------------------------------------


def _drivers(text: str) -> tuple[str, ...]:
    names = DRIVERS if text == "all" else tuple(w.strip() for w in text.split(",") if w.strip())
    unknown = [n for n in names if n not in DRIVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 'all' or a comma-separated list of {', '.join(DRIVERS)}"
        )
    return names


def _run_child(
    driver: str, shards: int, window: float, rounds: int, *, stagger: bool, grid: float | None
) -> dict[str, Any]:
    grid_args = [] if grid is None else ["--heartbeat-grid", str(grid)]
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--driver", driver, "--shards", str(shards),
         "--window", str(window), "--rounds", str(rounds), *["--stagger"] * stagger,
         *grid_args],
        stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    lines = out.stdout.splitlines()
    print("\n".join(lines[:-1]), flush=True)
    result: dict[str, Any] = json.loads(lines[-1])
    if "unavailable" in result:
        print(f"    n/a: {result['unavailable']}", flush=True)
    return result


def _merge(into: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any]:
    """One driver's result over several children (``--alternate``): windows appended."""
    if "unavailable" in result:
        return result
    result = {**result, "ready": [result["ready"]], "rss_per_shard": [result["rss_per_shard"]]}
    if into is None:
        return result
    for key in ("ready", "rss_per_shard", "cpu", "wakeups", "counted"):
        into[key] = into[key] + result[key]
    into["reconnects"] += result["reconnects"]
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--driver",
        type=_drivers,
        default=DRIVERS,
        help=f"'all' (default) or some of {', '.join(DRIVERS)}, comma-separated",
    )
    parser.add_argument(
        "--shards", type=int, default=None, help="shards (default 1000; 500 for sync)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--rounds", type=int, default=1, help="windows of each kind (default 1)")
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="one child per driver per round, the drivers in turn (default: one child per "
        "driver for all its rounds): the drivers' windows interleave in time",
    )
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="hikari: start each shard after a random delay of up to one heartbeat interval, "
        "so that its heartbeats are spread like ours (default: all at once, as GatewayBot "
        "starts one max_concurrency bucket)",
    )
    parser.add_argument(
        "--heartbeat-grid",
        type=float,
        default=None,
        metavar="S",
        help="our drivers: ShardConfig.heartbeat_grid (default: the library's; 0 beats each "
        "shard exactly on its own schedule); floor: the same grid for its timers (default none)",
    )
    parser.add_argument("--json", help="write the results here too (JSON, by driver)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo:
        echo_main()
        return 0
    drivers: tuple[str, ...] = args.driver
    if args.child:
        child(
            drivers[0],
            args.shards,
            args.window,
            args.rounds,
            stagger=args.stagger,
            grid=args.heartbeat_grid,
        )
        return 0
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"heartbeat interval {HEARTBEAT_INTERVAL} s, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    beats = args.window / HEARTBEAT_INTERVAL
    if "hikari" in drivers and abs(beats - round(beats)) > 0.01:
        print(
            f"  note: hikari's shards heartbeat in step (the first beat at once, no jitter), so a "
            f"{args.window:g} s window catches some or none of their beats; give a multiple of "
            f"{HEARTBEAT_INTERVAL} s to compare CPU with hikari",
            flush=True,
        )
    results: dict[str, dict[str, Any]] = {}
    passes = args.rounds if args.alternate else 1
    for _ in range(passes):
        for driver in drivers:
            shards = args.shards or (500 if driver == "sync" else 1000)
            if "unavailable" in results.get(driver, {}):
                continue
            print(f"  {driver}: {shards} shards", flush=True)
            rounds = 1 if args.alternate else args.rounds
            result = _run_child(
                driver, shards, args.window, rounds, stagger=args.stagger, grid=args.heartbeat_grid
            )
            results[driver] = _merge(results.get(driver), result)
    print(f"idle shards, {args.rounds} window(s) of {args.window:g} s each; load average "
          f"{os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    print("| driver | shards | READY in | RSS/shard | CPU, % of a core | OS wake-ups/shard/min |")
    print("|---|---:|---:|---:|---:|---:|")
    for driver, r in results.items():
        if "unavailable" in r:
            print(f"| {driver} | n/a: {r['unavailable']} | | | | |")
            continue
        ready = " / ".join(f"{x:.1f}" for x in r["ready"])
        rss = " / ".join(f"{x / 1024:.0f}" for x in r["rss_per_shard"])
        cpu = " / ".join(f"{c * 100:.2f}" for c in r["cpu"])
        wake = " / ".join(f"{w:.2f}" for w in r["wakeups"])
        print(f"| {driver} | {r['shards']} | {ready} s | {rss} KB | {cpu} | {wake} |")
    for driver, r in results.items():
        if "unavailable" not in r:
            print(f"{driver}: {r['threads']} threads, {r['reconnects']} reconnects")
    if args.json:
        Path(args.json).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
