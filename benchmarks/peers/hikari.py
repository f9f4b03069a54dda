"""hikari's runners for ``bench_peers.py`` (and ``bench_anyio.py``'s hikari row).

``decode_hikari`` runs ``GatewayShardImpl._poll_events`` over its zlib-stream
transport fed by a stub aiohttp socket; ``loopback_hikari_timed`` starts a real
``GatewayShardImpl`` against the replay gateway. Both replace the event manager
and factory with :class:`_HikariSink`, which only counts raw dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class _EndOfStream(Exception):
    """The stub socket has nothing more to give."""


def _hikari_api() -> tuple[Any, Any, Any]:
    hikari = _import("hikari", "hikari is not installed")
    shard_impl = importlib.import_module("hikari.impl.shard")
    hconfig = importlib.import_module("hikari.impl.config")
    for attr in ("_GatewayZlibStreamTransport", "GatewayShardImpl", "_log_filterer"):
        if not hasattr(shard_impl, attr):
            raise Unavailable(f"hikari.impl.shard.{attr} is gone (hikari internals changed)")
    return hikari, shard_impl, hconfig


class _HikariSink:
    """Stands in for hikari's EventManager and EventFactory; counts raw dispatches."""

    def __init__(self, total: int) -> None:
        self.n = 0
        self.total = total
        self.t_ready = _ZERO
        self.t_last = _ZERO
        self.done: asyncio.Event | None = None

    def consume_raw_event(self, name: str, shard: Any, payload: Any) -> None:
        self.n += 1
        if self.n == 1:
            self.t_ready = _now()
        if self.n == self.total:
            self.t_last = _now()
            if self.done is not None:
                self.done.set()

    async def dispatch(self, event: Any, **kwargs: Any) -> list[Any]:
        return []

    def deserialize_connected_event(self, shard: Any) -> None:
        return None

    def deserialize_disconnected_event(self, shard: Any) -> None:
        return None


def _hikari_shard(
    hikari: Any,
    shard_impl: Any,
    hconfig: Any,
    sink: _HikariSink,
    url: str,
    *,
    shard_id: int = 0,
    shard_count: int = 1,
    token: str = TOKEN,
) -> Any:
    api_shard = importlib.import_module("hikari.api.shard")
    return shard_impl.GatewayShardImpl(
        shard_id=shard_id,
        shard_count=shard_count,
        token=token,
        url=url,
        event_manager=sink,
        event_factory=sink,
        intents=hikari.Intents.ALL_UNPRIVILEGED,
        http_settings=hconfig.HTTPSettings(),
        proxy_settings=hconfig.ProxySettings(),
        compression=api_shard.GatewayCompression.TRANSPORT_ZLIB_STREAM,
    )


class _StubAiohttpSocket:
    """What hikari's transport awaits ``receive()`` on, pre-filled with WSMessages."""

    def __init__(self, messages: list[Any]) -> None:
        self._next = iter(messages).__next__

    async def receive(self) -> Any:
        try:
            return self._next()
        except StopIteration:
            raise _EndOfStream from None


def decode_hikari(stream: Stream) -> Run:
    hikari, shard_impl, hconfig = _hikari_api()
    aiohttp = importlib.import_module("aiohttp")
    data_binding = importlib.import_module("hikari.internal.data_binding")
    binary = aiohttp.WSMsgType.BINARY
    frames = [aiohttp.WSMessage(binary, m, None) for m in stream.messages]

    async def session() -> tuple[float, int]:
        sink = _HikariSink(len(stream.names))
        shard = _hikari_shard(hikari, shard_impl, hconfig, sink, "ws://127.0.0.1:9")
        transport = shard_impl._GatewayZlibStreamTransport(
            ws=_StubAiohttpSocket(frames),
            exit_stack=contextlib.AsyncExitStack(),
            logger=shard._logger,
            log_filterer=shard_impl._log_filterer(TOKEN.encode()),
            dumps=data_binding.default_json_dumps,
            loads=data_binding.default_json_loads,
        )
        shard._ws = transport
        shard._handshake_event = asyncio.Event()
        await transport.receive_json()  # HELLO, as GatewayShardImpl._connect reads it
        t0 = time.perf_counter()
        with contextlib.suppress(_EndOfStream):
            await shard._poll_events()
        elapsed = time.perf_counter() - t0
        shard._ws = None
        return elapsed, sink.n

    def run() -> tuple[float, int]:
        return asyncio.run(session())

    return run


def _quiet_hikari_teardown(hikari: Any) -> None:
    """Drop the "Task exception was never retrieved" hikari's poll task leaves on close."""
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), hikari.errors.GatewayConnectionError):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def loopback_hikari(stream: Stream, url: str) -> Run:
    return _wall(loopback_hikari_timed(stream, url))


def loopback_hikari_timed(stream: Stream, url: str) -> Callable[[], Timed]:
    """hikari's shard over loopback; raises :class:`Unavailable` if it can't run."""
    hikari, shard_impl, hconfig = _hikari_api()
    total = len(stream.names)

    async def session() -> Timed:
        _quiet_hikari_teardown(hikari)
        sink = _HikariSink(total)
        sink.done = asyncio.Event()
        shard = _hikari_shard(hikari, shard_impl, hconfig, sink, url)
        await shard.start()
        try:
            await sink.done.wait()
        finally:
            await shard.close()
        return _timed_span(sink.t_ready, sink.t_last, sink.n, total)

    def run() -> Timed:
        return asyncio.run(asyncio.wait_for(session(), TIMEOUT))

    return run
