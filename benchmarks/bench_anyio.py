"""Full-stack events/s of one ``gateway_anyio`` and one ``gateway_sync`` shard, next to floors.

What is measured: one shard (TCP, WebSocket, zlib-stream inflate, JSON decode, the
core's state machine, event delivery to a handler or an ``events()`` stream)
receiving the recorded session of ``gateway_testing.corpus.recorded_session()``
over loopback, on asyncio, on trio and on the blocking driver's threads, side by
side **in one run** with a bare ``websockets`` + ``zlib`` + ``orjson`` client and
a hand-written ``asyncio.Protocol`` frame reader, both reading the very same bytes,
and the in-memory floor (inflate + ``orjson.loads`` per message, no I/O). Each row:
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
runners from ``bench_peers.py``: models stubbed out, see ``benchmarks/peers.md``)
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
import base64
import gc
import hashlib
import importlib
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

from _replay import ReplayServer, Stream, encode_stream, load_corpus
from bench_peers import Unavailable, _version, loopback_discord_timed, loopback_hikari_timed

TOKEN = "bench-token"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SYNC = b"\x00\x00\xff\xff"
FLOOR = "floor: zlib + orjson in memory, no I/O"
HIKARI = "hikari 2.x GatewayShardImpl (asyncio)"
_DISTS = ("spectacles-gateway", "hikari", "discord.py", "anyio", "trio", "websockets", "orjson")


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


def _decompressor(compression: str) -> Callable[[bytes | bytearray], bytes]:
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


def bare_protocol(
    url: str, total: int, names: list[str], compression: str = "zlib-stream"
) -> Result:
    """A hand-written frame reader in an ``asyncio.Protocol``: the floor for a driver over asyncio.

    No streams, no tasks per read: ``data_received`` parses the server's unmasked
    frames out of a ``bytearray``, inflates and ``orjson.loads`` each message. It
    handles only what the replay server sends (unfragmented binary frames); the
    IDENTIFY goes out as one masked text frame (mask key 0, so the payload is as is).
    """
    import asyncio

    import orjson

    host, port = url.split("//", 1)[1].strip("/").rsplit(":", 1)
    identify = json.dumps({"op": 2, "d": {"token": TOKEN, "intents": 513, "properties": {}}})
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()

    class Reader(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[Result]) -> None:
            self.done, self.buffer, self.upgraded = done, bytearray(), False
            self.decompress, self.loads = _decompressor(compression), orjson.loads
            self.n, self.t_ready = 0, _ZERO
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            transport.write(request)

        def data_received(self, data: bytes) -> None:
            buf = self.buffer
            buf += data
            if not self.upgraded:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                del buf[: end + 4]
                self.upgraded = True
            pos, size = 0, len(buf)
            while size - pos >= 2:
                length, start = buf[pos + 1] & 0x7F, pos + 2
                if length == 126:
                    length, start = int.from_bytes(buf[start : start + 2], "big"), start + 2
                elif length == 127:
                    length, start = int.from_bytes(buf[start : start + 8], "big"), start + 8
                if start + length > size:
                    break
                payload = self.loads(self.decompress(buf[start : start + length]))
                pos = start + length
                if payload["op"] == 10:
                    text = identify.encode()
                    assert self.transport is not None
                    self.transport.write(bytes((0x81, 0x80 | len(text))) + b"\0\0\0\0" + text)
                elif payload["op"] == 0:
                    self.n += 1
                    if self.n == 1:
                        self.t_ready = _now()
                    elif self.n == total:
                        self.done.set_result(_span(self.t_ready, _now(), self.n, total))
            del buf[:pos]

    async def session() -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Reader(done), host, int(port))
        try:
            return await asyncio.wait_for(done, 120)
        finally:
            transport.close()

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


def _needs(*modules: str) -> None:
    """Raise :class:`Unavailable` unless every module imports (a row for another venv)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise Unavailable(f"{module} is not installed ({exc})") from None


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
        "gateway_anyio Shard, events() (asyncio)": _ours(
            lambda: shard(url, total, names, backend="asyncio", stream=True, compression=z)
        ),
        "gateway_anyio Shard, handler (trio)": _ours(
            lambda: shard(url, total, names, backend="trio", stream=False, compression=z), "trio"
        ),
        "gateway_sync Shard, handler (thread)": _ours(
            lambda: sync_shard(url, total, names, stream=False, compression=z)
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
        out = {"floor": FLOOR, "hikari": HIKARI, "rounds": rounds, "unavailable": unavailable}
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
