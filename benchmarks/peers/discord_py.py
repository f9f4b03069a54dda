"""discord.py's runners for ``bench_peers.py`` (and ``bench_anyio.py``'s discord.py row).

``decode_discord`` feeds ``DiscordWebSocket.received_message`` each message (its
zlib context, JSON, sequence and keep-alive bookkeeping) with every parser
replaced by a counter; ``loopback_discord_timed`` runs discord.py's gateway layer
over loopback, REST answered in-process, parsers stubbed.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from typing import Any

from _replay import Stream

from ._common import (
    _ZERO,
    TIMEOUT,
    TOKEN,
    Run,
    Timed,
    Unavailable,
    _import,
    _now,
    _timed_span,
    _wall,
)


class _Counter:
    """A parser/consumer stub: counts calls, builds nothing."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *args: Any) -> None:
        self.n += 1


def _discord_api() -> Any:
    discord = _import("discord", "discord.py is not installed")
    utils = importlib.import_module("discord.utils")
    kind = utils._ActiveDecompressionContext.COMPRESSION_TYPE
    if kind != "zlib-stream":
        raise Unavailable(
            f"discord.py would negotiate {kind} (zstandard is importable); the shared "
            "stream is zlib-stream: use a venv without zstandard (see peers.md)"
        )
    return discord


def decode_discord(stream: Stream) -> Run:
    discord = _discord_api()
    gateway = importlib.import_module("discord.gateway")
    hello, messages = stream.messages[0], stream.messages[1:]
    names = set(stream.names)

    async def session() -> tuple[float, int]:
        client = discord.Client(intents=discord.Intents.default())
        ws = gateway.DiscordWebSocket(None, loop=asyncio.get_running_loop())
        counter = _Counter()
        # What from_client() wires up, with every parser replaced by the counter.
        ws.token = TOKEN
        ws._connection = client._connection
        ws._discord_parsers = dict.fromkeys(names, counter)
        ws._dispatch = client.dispatch
        ws.call_hooks = client._connection.call_hooks
        ws._initial_identify = True
        ws.shard_id = None
        ws.shard_count = None
        ws._max_heartbeat_timeout = 60.0
        # HELLO goes through the same inflate context; the keep-alive thread it
        # would start is built but not started (received_message ticks it).
        ws._decompressor.decompress(hello)
        ws._keep_alive = gateway.KeepAliveHandler(ws=ws, interval=45.0, shard_id=None)
        received = ws.received_message
        t0 = time.perf_counter()
        for message in messages:
            await received(message)
        return time.perf_counter() - t0, counter.n

    def run() -> tuple[float, int]:
        return asyncio.run(session())

    return run


def loopback_discord(stream: Stream, url: str) -> Run:
    return _wall(loopback_discord_timed(stream, url))


def loopback_discord_timed(stream: Stream, url: str) -> Callable[[], Timed]:
    """discord.py's gateway layer over loopback; raises :class:`Unavailable` if it can't run."""
    discord = _discord_api()
    gateway = importlib.import_module("discord.gateway")
    yarl = importlib.import_module("yarl")
    total = len(stream.names)
    names = set(stream.names)

    async def session() -> Timed:
        client = discord.Client(intents=discord.Intents.default())
        n, t_ready, t_last = 0, _ZERO, _ZERO
        done = asyncio.Event()

        def parser(data: Any) -> None:
            nonlocal n, t_ready, t_last
            n += 1
            if n == 1:
                t_ready = _now()
            if n == total:
                t_last = _now()
                done.set()

        async def no_rest(route: Any, **kwargs: Any) -> dict[str, Any]:
            return {"id": "1", "username": "bench", "discriminator": "0", "avatar": None}

        # Client.login without REST: static_login builds discord.py's own aiohttp
        # session (and websocket response class); GET /users/@me is answered here.
        client.http.request = no_rest
        await client._async_setup_hook()
        await client.http.static_login(TOKEN)
        client._connection.parsers = dict.fromkeys(names, parser)
        ws = None
        try:
            ws = await gateway.DiscordWebSocket.from_client(
                client, initial=True, gateway=yarl.URL(url + "/")
            )
            while not done.is_set():
                await ws.poll_event()
        finally:
            if ws is not None:
                await ws.close(code=1000)
            await client.http.close()
        return _timed_span(t_ready, t_last, n, total)

    def run() -> Timed:
        return asyncio.run(asyncio.wait_for(session(), TIMEOUT))

    return run
