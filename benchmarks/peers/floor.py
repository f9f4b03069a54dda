"""The floors of ``bench_peers.py``: what reading the stream costs with nothing else.

``decode_floor``: one ``zlib.decompressobj()``, ``decompress`` + ``loads`` per
message, in memory. ``loopback_bare``: a bare ``websockets`` client with zlib and
orjson, over loopback against the replay gateway.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib

from _replay import Stream

from ._common import INTENTS, TIMEOUT, TOKEN, Run, _import, _loads, _span


def decode_floor(stream: Stream) -> Run:
    loads, _ = _loads()
    hello, messages = stream.messages[0], stream.messages[1:]

    def run() -> tuple[float, int]:
        inflate = zlib.decompressobj()
        loads(inflate.decompress(hello))
        decompress = inflate.decompress
        n = 0
        t0 = time.perf_counter()
        for message in messages:
            loads(decompress(message))
            n += 1
        return time.perf_counter() - t0, n

    return run


def loopback_bare(stream: Stream, url: str) -> Run:
    client = _import("websockets.asyncio.client", "websockets (>= 13) is not installed")
    loads, _ = _loads()
    total = len(stream.names)
    identify = json.dumps(
        {"op": 2, "d": {"token": TOKEN, "intents": INTENTS, "properties": {"os": "linux"}}}
    )

    async def session() -> tuple[float, int]:
        query = "/?v=10&encoding=json&compress=zlib-stream"
        async with client.connect(url + query, compression=None, max_size=None) as ws:
            inflate = zlib.decompressobj()
            decompress = inflate.decompress
            loads(decompress(await ws.recv()))  # HELLO
            await ws.send(identify)
            recv = ws.recv
            n, t_ready, t_last = 0, 0.0, 0.0
            while n < total:
                payload = loads(decompress(await recv()))
                if payload["op"] == 0:
                    n += 1
                    if n == 1:
                        t_ready = time.perf_counter()
            t_last = time.perf_counter()
        return _span(t_ready, t_last, n, total)

    def run() -> tuple[float, int]:
        return asyncio.run(asyncio.wait_for(session(), TIMEOUT))

    return run
