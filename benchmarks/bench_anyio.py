"""Full-stack events/s of one ``gateway_anyio`` shard, next to a bare client.

What is measured: one shard (TCP, WebSocket, zlib-stream inflate, JSON decode, the
core's state machine, event delivery to a handler or an ``events()`` stream)
receiving the recorded session of ``gateway_testing.corpus.recorded_session()``
over loopback, on asyncio and on trio, side by side **in one run** with a bare
``websockets`` + ``zlib`` + ``orjson`` client reading the very same bytes. The
result is the ratio shard / bare.

How the bytes are produced and served: ``benchmarks/_replay.py`` (shared with
``bench_peers.py``) encodes the session once as Discord sends it with
``compress=zlib-stream`` and ``encoding=json`` (HELLO, READY, its GUILD_CREATEs and
the recorded events; one deflate context, one binary frame per message). A replay
server in a child process (so its cost never lands on the measured client's CPU,
and so encoding speed does not cap the rate) serves those exact bytes to every
contender: the 101 answer and HELLO, and after the client's IDENTIFY the rest in one
``sendall``. The clock runs from READY to the last dispatch, as seen by the client.

Run: ``.venv/bin/python benchmarks/bench_anyio.py [--events N] [--repeat R]``.
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


# -- contenders -----------------------------------------------------------------------------

Result = tuple[float, int]  # seconds from READY to the last dispatch, dispatches timed


def _span(t_ready: float, t_last: float, n: int, total: int) -> Result:
    if n != total:
        raise RuntimeError(f"received {n} of {total} dispatches")
    return t_last - t_ready, total - 1


def bare(url: str, total: int, names: list[str]) -> Result:
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    identify = json.dumps({"op": 2, "d": {"token": TOKEN, "intents": 513, "properties": {}}})

    async def session() -> Result:
        async with connect(url, compression=None, max_size=None) as ws:
            decompress = zlib.decompressobj().decompress
            buffer = b""
            n, t_ready, t_last = 0, 0.0, 0.0
            hello = await ws.recv()
            assert isinstance(hello, bytes)
            orjson.loads(decompress(hello))
            await ws.send(identify)
            while n < total:
                message = await ws.recv()
                assert isinstance(message, bytes)
                buffer += message
                if not buffer.endswith(_SYNC):
                    continue
                payload = orjson.loads(decompress(buffer))
                buffer = b""
                if payload["op"] == 0:
                    n += 1
                    if n == 1:
                        t_ready = time.perf_counter()
            t_last = time.perf_counter()
        return _span(t_ready, t_last, n, total)

    return asyncio.run(session())


def shard(url: str, total: int, names: list[str], *, backend: str, stream: bool) -> Result:
    import anyio

    from gateway_anyio import GatewayEvent, Shard

    async def session() -> Result:
        sh = Shard(TOKEN, intents=513, url=url, max_buffer=total + 100, rng=random.Random(0))
        done = anyio.Event()
        state = {"n": 0, "t_ready": 0.0, "t_last": 0.0}

        def hook(event: GatewayEvent) -> None:
            state["n"] += 1
            if state["n"] == 1:
                state["t_ready"] = time.perf_counter()
            if state["n"] == total:
                state["t_last"] = time.perf_counter()
                done.set()

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
        return _span(state["t_ready"], state["t_last"], int(state["n"]), total)

    result: Result = anyio.run(session, backend=backend)
    return result


def core_alone(hello: bytes, rest: bytes, total: int) -> Result:
    """The same bytes fed to ``GatewayConnection`` in 64 KiB reads: no sockets, no loop."""
    from gateway_proto.config import ShardConfig
    from gateway_proto.connection import GatewayConnection
    from gateway_proto.events import Dispatch, IdentifyNeeded

    config = ShardConfig(token=TOKEN, intents=513, url="ws://127.0.0.1/")
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
    n, t_ready = 0, 0.0
    for i in range(0, len(rest), 65536):
        conn.receive_data(rest[i : i + 65536], 1.0)
        for event in conn.events():
            if type(event) is Dispatch:
                n += 1
                if n == 1:
                    t_ready = time.perf_counter()
    return _span(t_ready, time.perf_counter(), n, total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="recorded events (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)

    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session)
    hello, rest = stream.hello_frame, stream.body
    total, names = len(stream.names), sorted(set(stream.names))
    with ReplayServer(session, stream) as server:
        url = server.url + "/"
        contenders: dict[str, Callable[[], Result]] = {
            "core alone, no I/O (GatewayConnection)": lambda: core_alone(hello, rest, total),
            "bare websockets + zlib + orjson (asyncio)": lambda: bare(url, total, names),
            "gateway_anyio Shard, handler (asyncio)": lambda: shard(
                url, total, names, backend="asyncio", stream=False
            ),
            "gateway_anyio Shard, events() (asyncio)": lambda: shard(
                url, total, names, backend="asyncio", stream=True
            ),
            "gateway_anyio Shard, handler (trio)": lambda: shard(
                url, total, names, backend="trio", stream=False
            ),
        }
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for run in contenders.values():  # warm-up round, not counted
            run()
        for _ in range(args.repeat):
            for name, run in contenders.items():
                seconds, count = run()
                rates[name].append(count / seconds)
    size = len(hello) + len(rest)
    print(
        f"stream: {total} dispatches, {size / 1e6:.1f} MB zlib-stream JSON, from {source} "
        f"(digest {stream.digest()})"
    )
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"median of {args.repeat} interleaved rounds (events/s, READY to last dispatch)")
    floor = statistics.median(rates["bare websockets + zlib + orjson (asyncio)"])
    core = statistics.median(rates["core alone, no I/O (GatewayConnection)"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"  {name:45s} {median:10,.0f}   x{median / floor:.2f} of bare"
            f"   x{median / core:.2f} of core alone"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
