"""Gateway throughput side by side: spectacles-gateway, discord.py and hikari.

One run, one recorded zlib-stream JSON stream (HELLO, READY, large GUILD_CREATEs,
tens of thousands of everyday dispatches), every library fed the same bytes;
results are events/s and ratios (this machine is shared and noisy, so absolute
numbers drift; ratios measured in one interleaved run are what to compare).

Levels:

decode    no sockets. Each library's own receive path gets the stream's WebSocket
          messages; model building (discord.py's parsers, hikari's event manager)
          is stubbed out, so gateway layers are compared, not object models.
          * floor: one ``zlib.decompressobj()``, ``decompress`` + ``orjson.loads``
            per message; nothing else.
          * spectacles: ``GatewayConnection.receive_data`` over the raw frame bytes
            in socket-sized chunks, draining ``events()`` (WebSocket framing
            included: the core owns it).
          * discord.py: ``DiscordWebSocket.received_message`` per message (its
            zlib context, ``utils._from_json``, sequence/keep-alive bookkeeping,
            ``Client.dispatch('socket_event_type')``), parsers stubbed.
          * hikari: ``GatewayShardImpl._poll_events`` over its zlib-stream
            transport (``_receive_and_check`` + loads) fed by a stub aiohttp
            socket; ``EventManager.consume_raw_event`` stubbed.
loopback  ws:// on 127.0.0.1 against a replay gateway in another process (HELLO,
          wait for IDENTIFY, then READY and the stream as fast as TCP allows):
          time from READY to the last event seen by each library's dispatch
          hook. Adds a bare ``websockets`` + zlib + orjson client for reference.

Peers are imported only if installed (see ``benchmarks/peers.md`` for the venv);
anything missing prints ``n/a`` with the reason.

This script runs the contenders and prints the table; each library's runners are in
``benchmarks/peers/`` (one module per library: ``floor``, ``spectacles``,
``discord_py``, ``hikari``, ``frames``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, encode_stream, load_corpus
from peers import (
    Run,
    Unavailable,
    decode_discord,
    decode_floor,
    decode_hikari,
    decode_spectacles,
    frames_aiohttp,
    frames_wsproto,
    loopback_bare,
    loopback_discord,
    loopback_hikari,
    loopback_spectacles,
)
from peers._common import _loads


@dataclass
class Contender:
    level: str
    name: str
    seam: str
    make: Callable[[], Run]
    run: Run | None = None
    reason: str = ""
    times: list[float] = field(default_factory=list)
    events: int = 0

    def prepare(self) -> None:
        try:
            self.run = self.make()
        except Unavailable as exc:
            self.reason = str(exc)
        except Exception as exc:
            self.reason = f"{type(exc).__name__}: {exc}"

    @property
    def best(self) -> float | None:
        return min(self.times) if self.times else None

    @property
    def rate(self) -> float | None:
        best = self.best
        return None if best is None else self.events / best


# -- the run ------------------------------------------------------------------------------


def _measure(contenders: list[Contender], repeat: int, expected: int) -> None:
    """Run every available contender ``repeat`` times, interleaved; each must see every event."""
    live = [c for c in contenders if c.run is not None]
    for rep in range(repeat):
        shift = rep % len(live) if live else 0
        for c in live[shift:] + live[:shift]:  # rotate, so no one always goes first
            if c.run is None:
                continue
            gc.collect()
            try:
                seconds, events = c.run()
                if events != expected:
                    raise RuntimeError(f"counted {events:,} events, expected {expected:,}")
            except Exception as exc:
                c.reason = f"failed: {type(exc).__name__}: {exc}"
                c.run = None
                c.times.clear()
                continue
            c.times.append(seconds)
            c.events = events


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_details() -> list[str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    dists = [
        "spectacles-gateway",
        "discord.py",
        "hikari",
        "aiohttp",
        "websockets",
        "wsproto",
        "anyio",
        "orjson",
        "zlib-ng",
        "zstandard",
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, "
        f"nproc {os.cpu_count()} (usable {affinity}), CPU {_cpu_model()}",
        f"python: {platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable}); zlib {zlib.ZLIB_RUNTIME_VERSION}",
        "versions: " + ", ".join(f"{d} {_version(d)}" for d in dists),
        f"load average at start: {load}",
    ]


def _fmt_rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def report(contenders: list[Contender]) -> list[str]:
    floor = next((c.rate for c in contenders if c.name.startswith("floor")), None)
    dpy = {c.level: c.rate for c in contenders if c.name.startswith("discord.py")}
    lines = [
        "| level | contender | seam | events/s (best) | median | runs | vs floor | vs discord.py |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for c in contenders:
        median = f"{c.events / statistics.median(c.times):,.0f}" if c.times and c.events else "n/a"
        lines.append(
            f"| {c.level} | {c.name} | `{c.seam}` | {_fmt_rate(c.rate)} | {median} "
            f"| {len(c.times)} | {_ratio(c.rate, floor)} | {_ratio(c.rate, dpy.get(c.level))} |"
        )
        if c.reason:
            notes.append(f"- {c.level} / {c.name}: n/a: {c.reason}")
    return lines + (["", *notes] if notes else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Run it in the peer venv (benchmarks/peers.md) to get the peers' columns.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=20_000, help="everyday dispatches")
    parser.add_argument("--guilds", type=int, default=20, help="GUILD_CREATEs after READY")
    parser.add_argument("--members", type=int, default=200, help="members per guild")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument(
        "--repeat", type=int, default=7, help="decode-level repetitions (best of N)"
    )
    parser.add_argument(
        "--loopback-repeat", type=int, default=7, help="loopback repetitions (best of N)"
    )
    parser.add_argument(
        "--levels",
        default="decode,frames,loopback",
        help="comma-separated: decode, frames (WebSocket framing alone, for context), loopback",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=65_536,
        help="bytes per receive_data()/feed_data() call at the decode and frames levels",
    )
    args = parser.parse_args(argv)
    levels = {x.strip() for x in args.levels.split(",") if x.strip()}
    unknown = levels - {"decode", "frames", "loopback"}
    if unknown:
        parser.error(f"unknown level(s): {', '.join(sorted(unknown))}")

    print("\n".join(machine_details()))
    t_start = time.perf_counter()
    session, source = load_corpus(
        seed=args.seed, guilds=args.guilds, members_per_guild=args.members, events=args.events
    )
    stream = encode_stream(session)
    compressed = sum(len(m) for m in stream.messages[1:])
    counts = collections.Counter(stream.names)
    mix = ", ".join(f"{name} {count:,}" for name, count in counts.most_common())
    print(
        f"stream: {len(stream.names):,} events from {source} "
        f"(--guilds {args.guilds} --members {args.members} --events {args.events} "
        f"--seed {args.seed}): {mix}"
    )
    print(
        f"stream bytes: {stream.payload_bytes / 1e6:.1f} MB JSON, "
        f"{compressed / 1e6:.1f} MB zlib-stream in {len(stream.frames) - 1:,} binary frames; "
        f"digest {stream.digest()}"
    )
    _, json_name = _loads()
    print(f"JSON parser for the floor and bare client: {json_name}")

    contenders: list[Contender] = []
    if "decode" in levels:
        decode = [
            Contender(
                "decode", "floor: zlib + orjson", "decompress+loads", lambda: decode_floor(stream)
            ),
            Contender(
                "decode",
                "spectacles GatewayConnection",
                "receive_data+events",
                lambda: decode_spectacles(stream, args.chunk),
            ),
            Contender(
                "decode",
                "discord.py DiscordWebSocket",
                "received_message",
                lambda: decode_discord(stream),
            ),
            Contender(
                "decode", "hikari GatewayShardImpl", "_poll_events", lambda: decode_hikari(stream)
            ),
        ]
        for c in decode:
            c.prepare()
        _measure(decode, args.repeat, len(stream.names))
        contenders += decode
    if "frames" in levels:
        frames = [
            Contender(
                "frames",
                "aiohttp WebSocketReader (discord.py, hikari)",
                "feed_data",
                lambda: frames_aiohttp(stream, args.chunk),
            ),
            Contender(
                "frames",
                "wsproto WSConnection",
                "receive_data+events",
                lambda: frames_wsproto(stream, args.chunk),
            ),
        ]
        for c in frames:
            c.prepare()
        _measure(frames, args.repeat, len(stream.names))
        contenders += frames
    if "loopback" in levels:
        server = ReplayServer(session, stream)
        try:
            loop = [
                Contender(
                    "loopback",
                    "bare websockets + zlib + orjson",
                    "recv+decompress+loads",
                    lambda: loopback_bare(stream, server.url),
                ),
                Contender(
                    "loopback",
                    "spectacles anyio Shard",
                    "Shard.on handler",
                    lambda: loopback_spectacles(stream, server.url),
                ),
                Contender(
                    "loopback",
                    "discord.py DiscordWebSocket",
                    "poll_event -> parser stub",
                    lambda: loopback_discord(stream, server.url),
                ),
                Contender(
                    "loopback",
                    "hikari GatewayShardImpl",
                    "consume_raw_event stub",
                    lambda: loopback_hikari(stream, server.url),
                ),
            ]
            for c in loop:
                c.prepare()
            _measure(loop, args.loopback_repeat, len(stream.names) - 1)
        finally:
            server.close()
        contenders += loop

    print()
    print("\n".join(report(contenders)))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at end: {load}; wall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
