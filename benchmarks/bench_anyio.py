"""Full-stack events/s of one ``gateway_anyio`` and one ``gateway_sync`` shard, next to floors.

What is measured: one shard (TCP, WebSocket, zlib-stream inflate, JSON decode, the
core's state machine, event delivery to a handler or an ``events()`` stream)
receiving the recorded session of ``gateway_testing.corpus.recorded_session()``
over loopback, on asyncio, on trio and on the blocking driver's threads, side by
side **in one run** with a bare ``websockets`` + ``zlib`` + ``orjson`` client
reading the very same bytes and the in-memory floor (inflate + ``orjson.loads``
per message, no I/O). Each row: events/s, its ratio to the same round's floor
(min / median / max over the rounds), and this process's CPU per event.

How the bytes are produced and served: ``benchmarks/_replay.py`` (shared with
``bench_peers.py``) encodes the session once as Discord sends it with
``compress=zlib-stream`` and ``encoding=json`` (HELLO, READY, its GUILD_CREATEs and
the recorded events; one deflate context, one binary frame per message). A replay
server in a child process (so its cost never lands on the measured client's CPU,
and so encoding speed does not cap the rate) serves those exact bytes to every
contender: the 101 answer and HELLO, and after the client's IDENTIFY the rest in one
``sendall``. The clock runs from READY to the last dispatch, as seen by the client.

Run: ``.venv/bin/python benchmarks/bench_anyio.py [--events N] [--repeat R] [--only WORDS]``.
``--compression zstd-stream`` serves the same session with zstd-stream instead
(every contender, and the floors, then inflate with zstandard).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, encode_stream, load_corpus

TOKEN = "bench-token"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SYNC = b"\x00\x00\xff\xff"
FLOOR = "floor: zlib + orjson in memory, no I/O"


# -- contenders -----------------------------------------------------------------------------

#: From READY to the last dispatch: wall seconds, dispatches timed, CPU seconds of
#: this process (every thread; the replay server is another process).
Result = tuple[float, int, float]
Instant = tuple[float, float]  # (perf_counter, process_time)
_ZERO: Instant = (0.0, 0.0)


def _now() -> Instant:
    return time.perf_counter(), time.process_time()


def _span(t_ready: Instant, t_last: Instant, n: int, total: int) -> Result:
    if n != total:
        raise RuntimeError(f"received {n} of {total} dispatches")
    return t_last[0] - t_ready[0], total - 1, t_last[1] - t_ready[1]


class _Tally:
    """Counts a contender's dispatches and marks the first and the last; calls ``done``."""

    def __init__(self, total: int, done: Callable[[], object]) -> None:
        self.total, self.done = total, done
        self.n, self.ready, self.last = 0, _ZERO, _ZERO

    def hook(self, event: object) -> None:
        self.n += 1
        if self.n == 1:
            self.ready = _now()
        if self.n == self.total:
            self.last = _now()
            self.done()

    def result(self) -> Result:
        return _span(self.ready, self.last, self.n, self.total)


def _decompressor(compression: str) -> Callable[[bytes], bytes]:
    """A fresh inflate context's ``decompress`` for one connection's messages."""
    if compression == "zstd-stream":
        import zstandard

        decompressobj = zstandard.ZstdDecompressor().decompressobj
        return decompressobj(read_across_frames=True).decompress
    return zlib.decompressobj().decompress


def bare(url: str, total: int, names: list[str], compression: str = "zlib-stream") -> Result:
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    identify = json.dumps({"op": 2, "d": {"token": TOKEN, "intents": 513, "properties": {}}})

    async def session() -> Result:
        async with connect(url, compression=None, max_size=None) as ws:
            decompress = _decompressor(compression)
            # zstd-stream: every message is one whole payload (no suffix to wait for).
            suffix = b"" if compression == "zstd-stream" else _SYNC
            buffer = b""
            n, t_ready, t_last = 0, _ZERO, _ZERO
            hello = await ws.recv()
            assert isinstance(hello, bytes)
            orjson.loads(decompress(hello))
            await ws.send(identify)
            while n < total:
                message = await ws.recv()
                assert isinstance(message, bytes)
                buffer += message
                if not buffer.endswith(suffix):
                    continue
                payload = orjson.loads(decompress(buffer))
                buffer = b""
                if payload["op"] == 0:
                    n += 1
                    if n == 1:
                        t_ready = _now()
            t_last = _now()
        return _span(t_ready, t_last, n, total)

    return asyncio.run(session())


def shard(
    url: str,
    total: int,
    names: list[str],
    *,
    backend: str,
    stream: bool,
    compression: str = "zlib-stream",
) -> Result:
    import anyio

    from gateway_anyio import GatewayEvent, Shard

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
        tally = _Tally(total, done.set)
        hook: Callable[[GatewayEvent], None] = tally.hook

        async def consume() -> None:
            async with sh.events(*names) as events:
                async for event in events:
                    hook(event)
                    if done.is_set():
                        return

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
    url: str, total: int, names: list[str], *, stream: bool, compression: str = "zlib-stream"
) -> Result:
    """One ``gateway_sync`` shard: its I/O thread, and a handler thread or an iterator."""
    import threading

    from gateway_sync import GatewayEvent, Shard

    sh = Shard(
        TOKEN,
        intents=513,
        url=url,
        max_buffer=total + 100,
        rng=random.Random(0),
        compression=compression,  # type: ignore[arg-type]
    )
    done = threading.Event()
    tally = _Tally(total, done.set)
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


def floor(messages: list[bytes], total: int, compression: str = "zlib-stream") -> Result:
    """The in-memory floor: inflate + ``orjson.loads`` per message, nothing else."""
    import orjson

    decompress = _decompressor(compression)
    loads = orjson.loads
    loads(decompress(messages[0]))  # HELLO, before the clock as for the others
    n, t_ready = 0, _ZERO
    for message in messages[1:]:
        if loads(decompress(message))["op"] == 0:
            n += 1
            if n == 1:
                t_ready = _now()
    return _span(t_ready, _now(), n, total)


def core_alone(hello: bytes, rest: bytes, total: int, compression: str = "zlib-stream") -> Result:
    """The same bytes fed to ``GatewayConnection`` in 64 KiB reads: no sockets, no loop."""
    from gateway_proto.config import ShardConfig
    from gateway_proto.connection import GatewayConnection
    from gateway_proto.events import Dispatch, IdentifyNeeded

    config = ShardConfig(
        token=TOKEN,
        intents=513,
        url="ws://127.0.0.1/",
        compression=compression,  # type: ignore[arg-type]
    )
    conn = GatewayConnection(config, rng=random.Random(0))
    conn.connect(0.0)
    request = conn.data_to_send()
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + hello,
        0.0,
    )
    if any(isinstance(e, IdentifyNeeded) for e in conn.events()):
        conn.identify(0.0)
    conn.data_to_send()
    n, t_ready = 0, _ZERO
    for i in range(0, len(rest), 65536):
        conn.receive_data(rest[i : i + 65536], 1.0)
        for event in conn.events():
            if type(event) is Dispatch:
                n += 1
                if n == 1:
                    t_ready = _now()
    return _span(t_ready, _now(), n, total)


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
        "--compression",
        choices=("zlib-stream", "zstd-stream"),
        default="zlib-stream",
        help="transport compression of the served stream (default zlib-stream)",
    )
    args = parser.parse_args(argv)
    z = args.compression

    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session, z)
    hello, rest = stream.hello_frame, stream.body
    total, names = len(stream.names), sorted(set(stream.names))
    with ReplayServer(session, stream) as server:
        url = server.url + "/"
        contenders: dict[str, Callable[[], Result]] = {
            FLOOR: lambda: floor(stream.messages, total, z),
            "core alone, no I/O (GatewayConnection)": lambda: core_alone(hello, rest, total, z),
            "bare websockets + zlib + orjson (asyncio)": lambda: bare(url, total, names, z),
            "gateway_anyio Shard, handler (asyncio)": lambda: shard(
                url, total, names, backend="asyncio", stream=False, compression=z
            ),
            "gateway_anyio Shard, events() (asyncio)": lambda: shard(
                url, total, names, backend="asyncio", stream=True, compression=z
            ),
            "gateway_anyio Shard, handler (trio)": lambda: shard(
                url, total, names, backend="trio", stream=False, compression=z
            ),
            "gateway_sync Shard, handler (thread)": lambda: sync_shard(
                url, total, names, stream=False, compression=z
            ),
            "gateway_sync Shard, events() (thread)": lambda: sync_shard(
                url, total, names, stream=True, compression=z
            ),
        }
        words = [w for w in args.only.split(",") if w]
        if words:
            contenders = {
                k: v for k, v in contenders.items() if k == FLOOR or any(w in k for w in words)
            }
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for run in contenders.values():  # warm-up round, not counted
            run()
        for _ in range(args.repeat):
            for name, run in contenders.items():
                seconds, count, cpu_seconds = run()
                rates[name].append(count / seconds)
                cpu[name].append(cpu_seconds / count * 1e6)
    size = len(hello) + len(rest)
    print(
        f"stream: {total} dispatches, {size / 1e6:.1f} MB {z} JSON, from {source} "
        f"(digest {stream.digest()})"
    )
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"{args.repeat} interleaved rounds after a warm-up, READY to the last dispatch: "
        "events/s (median); its ratio to the same round's in-memory floor (min / median / "
        "max); CPU of this process per event, all threads (median, µs)"
    )
    for name, values in rates.items():
        ratios = sorted(v / f for v, f in zip(values, rates[FLOOR], strict=True))
        print(
            f"  {name:45s} {statistics.median(values):9,.0f}   x{ratios[0]:.2f}"
            f" / x{statistics.median(ratios):.2f} / x{ratios[-1]:.2f} of floor"
            f"   {statistics.median(cpu[name]):5.1f} µs CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
