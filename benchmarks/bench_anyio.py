"""Full-stack events/s of one ``gateway_anyio`` and one ``gateway_sync`` shard, next to floors.

What is measured: one shard (TCP, WebSocket, zlib-stream inflate, JSON decode, the
core's state machine, event delivery to a handler or an ``events()`` stream)
receiving the recorded session of ``gateway_testing.corpus.recorded_session()``
over loopback, on asyncio, on trio and on the blocking driver's threads, side by
side **in one run** with a bare ``websockets`` + ``zlib`` + ``orjson`` client and
a hand-written ``asyncio.Protocol`` frame reader, both reading the very same bytes,
and the in-memory floor (inflate + ``orjson.loads`` per message, no I/O). Our
shards inflate with zlib-ng where it is installed (the ``speed`` extra); the floor
inflates with stdlib zlib, as the peers do, and two more rows show the difference:
the floor with zlib-ng, and the anyio shard with stdlib zlib. Each row:
events/s, its ratio to the same round's floor (min / median / max over the rounds),
and this process's CPU per event.

How the bytes are produced and served: ``benchmarks/_replay.py`` (shared with
``bench_peers.py``) encodes the session once as Discord sends it with
``compress=zlib-stream`` and ``encoding=json`` (HELLO, READY, its GUILD_CREATEs and
the recorded events; one deflate context, one binary frame per message). A replay
server in a child process (so its cost never lands on the measured client's CPU,
and so encoding speed does not cap the rate) serves those exact bytes to every
contender: the 101 answer and HELLO, and after the client's IDENTIFY the rest in one
``sendall``. The clock runs from READY to the last dispatch, as seen by the client.

hikari's shard and discord.py's gateway layer run in the same rounds (their loopback
runners from ``benchmarks/peers/``: models stubbed out, see ``benchmarks/peers.md``)
when they are importable, that is in ``benchmarks/.venv-peers``; anywhere else, and
for any row whose library is missing (trio, say), the row prints ``n/a`` and why.
The order of the rows rotates every round, so that no one always runs first.

Run: ``.venv/bin/python benchmarks/bench_anyio.py [--events N] [--repeat R] [--only WORDS]``,
or ``scripts/bench.sh``, which runs it in the peers venv with everything else.
``--compression zstd-stream`` serves the same session with zstd-stream instead
(every contender, and the floors, then inflate with zstandard; the peers' rows,
which read zlib-stream only, print ``n/a``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import random
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, Stream, encode_stream, load_corpus
from _stack_floors import (
    TOKEN,
    Result,
    bare,
    bare_protocol,
    core_alone,
    floor,
)
from bench_peers import _version
from peers import Unavailable, loopback_discord_timed, loopback_hikari_timed
from peers._common import Tally

FLOOR = "floor: zlib + orjson in memory, no I/O"
HIKARI = "hikari 2.x GatewayShardImpl (asyncio)"
FLOOR_NG = "floor: zlib-ng + orjson in memory, no I/O"
STDLIB_ZLIB = "gateway_anyio Shard, stdlib zlib (asyncio)"
_DISTS = (
    "spectacles-gateway",
    "hikari",
    "discord.py",
    "anyio",
    "trio",
    "websockets",
    "orjson",
    "zlib-ng",
)


# -- contenders -----------------------------------------------------------------------------


def shard(
    url: str,
    total: int,
    names: list[str],
    *,
    backend: str,
    stream: bool,
    compression: str = "zlib-stream",
    zlib_ng: bool = True,
) -> Result:
    """One ``gateway_anyio`` shard; ``zlib_ng=False``: stdlib zlib, as without the extra."""
    import anyio

    from gateway_anyio import GatewayEvent, Shard
    from gateway_proto import compression as inflaters

    if not zlib_ng:
        with _stdlib_zlib(inflaters):
            return shard(url, total, names, backend=backend, stream=stream, compression=compression)

    async def session() -> Result:
        sh = Shard(
            TOKEN,
            intents=513,
            url=url,
            max_buffer=total + 100,
            rng=random.Random(0),
            compression=compression,  # type: ignore[arg-type]
        )
        done = anyio.Event()
        tally = Tally(total, done.set)
        hook: Callable[[GatewayEvent], None] = tally.hook

        async def consume() -> None:
            # The handler's work and nothing else (the stream ends when the shard
            # stops), so that the two rows differ only in how events arrive.
            async with sh.events(*names) as events:
                async for event in events:
                    hook(event)

        if not stream:
            for name in names:
                sh.on(name, hook)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                if stream:
                    tg.start_soon(consume)
                tg.start_soon(sh.connect)
                await done.wait()
                await sh.disconnect()
        return tally.result()

    result: Result = anyio.run(session, backend=backend)
    return result


def sync_shard(
    url: str,
    total: int,
    names: list[str],
    *,
    stream: bool,
    compression: str = "zlib-stream",
    inline: bool = False,
) -> Result:
    """One ``gateway_sync`` shard: its I/O thread, and a handler thread or an iterator.

    ``inline``: the handler runs on the I/O thread itself (``inline_handlers=True``).
    """
    import threading

    from gateway_sync import GatewayEvent, Shard

    sh = Shard(
        TOKEN,
        intents=513,
        url=url,
        max_buffer=total + 100,
        rng=random.Random(0),
        compression=compression,  # type: ignore[arg-type]
        inline_handlers=inline,
    )
    done = threading.Event()
    tally = Tally(total, done.set)
    hook: Callable[[GatewayEvent], None] = tally.hook
    if stream:
        events = sh.events(*names)
    else:
        for name in names:
            sh.on(name, hook)
    sh.start()
    try:
        if stream:
            with events:
                for event in events:
                    hook(event)
                    if done.is_set():
                        break
        if not done.wait(120):
            raise RuntimeError("the sync shard did not finish in 120 s")
    finally:
        sh.disconnect()
    return tally.result()


@contextlib.contextmanager
def _stdlib_zlib(inflaters: Any) -> Iterator[None]:
    # What a machine without the speed extra inflates with (compression.zlib_module).
    saved, inflaters._zlib_ng = inflaters._zlib_ng, None
    try:
        yield
    finally:
        inflaters._zlib_ng = saved


def _needs(*modules: str) -> None:
    """Raise :class:`Unavailable` unless every module imports (a row for another venv)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise Unavailable(f"{module} is not installed ({exc})") from None


def _unavailable(why: str) -> Callable[[], Callable[[], Result]]:
    def prepare() -> Callable[[], Result]:
        raise Unavailable(why)

    return prepare


def _ours(make: Callable[[], Result], *modules: str) -> Callable[[], Callable[[], Result]]:
    def prepare() -> Callable[[], Result]:
        _needs(*modules)
        return make

    return prepare


def contenders(
    stream: Stream, url: str, total: int, names: list[str]
) -> dict[str, Callable[[], Callable[[], Result]]]:
    """Every row, by name: a ``prepare()`` that returns the runner or raises Unavailable."""
    hello, rest, z = stream.hello_frame, stream.body, stream.compression
    peer_url = url.rstrip("/")

    Prepare = Callable[[], Callable[[], Result]]

    def peer(run: Callable[[Stream, str], Callable[[], Result]]) -> Prepare:
        def prepare() -> Callable[[], Result]:
            if z != "zlib-stream":
                raise Unavailable(f"reads zlib-stream only, not {z}")
            return run(stream, peer_url)

        return prepare

    return {
        FLOOR: _ours(lambda: floor(stream.messages, total, z), "orjson"),
        FLOOR_NG: _ours(lambda: floor(stream.messages, total, z, zlib_ng=True), "orjson", "zlib_ng")
        if z == "zlib-stream"
        else _unavailable(f"zlib-ng inflates zlib only, not {z}"),
        "core alone, no I/O (GatewayConnection)": _ours(lambda: core_alone(hello, rest, total, z)),
        "bare websockets + zlib + orjson (asyncio)": _ours(
            lambda: bare(url, total, names, z), "websockets", "orjson"
        ),
        "bare asyncio Protocol + zlib + orjson": _ours(
            lambda: bare_protocol(url, total, names, z), "orjson"
        ),
        "gateway_anyio Shard, handler (asyncio)": _ours(
            lambda: shard(url, total, names, backend="asyncio", stream=False, compression=z)
        ),
        STDLIB_ZLIB: _ours(
            lambda: shard(
                url, total, names, backend="asyncio", stream=False, compression=z, zlib_ng=False
            )
        )
        if z == "zlib-stream"
        else _unavailable(f"zlib-ng inflates zlib only, not {z}"),
        "gateway_anyio Shard, events() (asyncio)": _ours(
            lambda: shard(url, total, names, backend="asyncio", stream=True, compression=z)
        ),
        "gateway_anyio Shard, handler (trio)": _ours(
            lambda: shard(url, total, names, backend="trio", stream=False, compression=z), "trio"
        ),
        "gateway_sync Shard, handler (thread)": _ours(
            lambda: sync_shard(url, total, names, stream=False, compression=z)
        ),
        "gateway_sync Shard, inline handler (thread)": _ours(
            lambda: sync_shard(url, total, names, stream=False, compression=z, inline=True)
        ),
        "gateway_sync Shard, events() (thread)": _ours(
            lambda: sync_shard(url, total, names, stream=True, compression=z)
        ),
        HIKARI: peer(loopback_hikari_timed),
        "discord.py 2.x gateway layer (asyncio)": peer(loopback_discord_timed),
    }


def _spread(ratios: list[float]) -> str:
    ratios = sorted(ratios)
    return f"x{ratios[0]:.2f} / x{statistics.median(ratios):.2f} / x{ratios[-1]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="recorded events (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated words; run only the contenders whose names contain one "
        "(the floor always runs)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write every round's events/s and CPU/event here"
    )
    parser.add_argument(
        "--compression",
        choices=("zlib-stream", "zstd-stream"),
        default="zlib-stream",
        help="transport compression of the served stream (default zlib-stream)",
    )
    args = parser.parse_args(argv)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session, args.compression)
    total, names = len(stream.names), sorted(set(stream.names))
    unavailable: dict[str, str] = {}
    with ReplayServer(session, stream) as server:
        rows = contenders(stream, server.url + "/", total, names)
        words = [w for w in args.only.split(",") if w]
        if words:
            rows = {k: v for k, v in rows.items() if k == FLOOR or any(w in k for w in words)}
        runs: dict[str, Callable[[], Result]] = {}
        for name, prepare in rows.items():
            try:
                runs[name] = prepare()
            except Unavailable as exc:
                unavailable[name] = str(exc)
        rates: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for rep in range(args.repeat + 1):  # round 0 warms up and is not counted
            order = list(runs)
            shift = rep % len(order)
            for name in order[shift:] + order[:shift]:  # rotate: no one always goes first
                if name not in runs:
                    continue
                gc.collect()
                try:
                    seconds, count, cpu_seconds = runs[name]()
                except Exception as exc:
                    unavailable[name] = f"failed: {type(exc).__name__}: {exc}"
                    del runs[name]
                    continue
                if rep:
                    rates[name].append(count / seconds)
                    cpu[name].append(cpu_seconds / count * 1e6)
    size = len(stream.hello_frame) + len(stream.body)
    print(
        f"stream: {total} dispatches, {size / 1e6:.1f} MB {stream.compression} JSON, from {source} "
        f"(digest {stream.digest()})"
    )
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print("versions: " + ", ".join(f"{d} {_version(d)}" for d in _DISTS))
    print(
        f"{args.repeat} interleaved rounds (order rotated) after a warm-up, READY to the last "
        "dispatch: events/s (median); its ratio to the same round's in-memory floor and "
        "to the same round's hikari shard (min / median / max); CPU of this process per "
        "event, all threads (median, µs)"
    )
    if FLOOR not in runs:
        print(f"the floor could not run: {unavailable.get(FLOOR, '?')}")
        return 1
    head = f"  {'runner':45s} {'events/s':>9}   {'vs floor (min/med/max)':24}"
    print(f"{head}   {'vs hikari (min/med/max)':24}   CPU/event")
    for name in rows:
        if name not in runs:
            print(f"  {name:45s} {'n/a':>9}   {unavailable.get(name, '')}")
            continue
        values = rates[name]
        vs_floor = _spread([v / f for v, f in zip(values, rates[FLOOR], strict=True)])
        vs_hikari = (
            _spread([v / h for v, h in zip(values, rates[HIKARI], strict=True)])
            if HIKARI in runs
            else "n/a"
        )
        print(
            f"  {name:45s} {statistics.median(values):9,.0f}   {vs_floor:24}   {vs_hikari:24}"
            f"   {statistics.median(cpu[name]):5.1f} µs"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        rounds = {name: {"events_per_s": rates[name], "cpu_us": cpu[name]} for name in runs}
        out = {
            "floor": FLOOR,
            "floor_ng": FLOOR_NG,
            "stdlib_zlib": STDLIB_ZLIB,
            "hikari": HIKARI,
            "rounds": rounds,
            "unavailable": unavailable,
        }
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
