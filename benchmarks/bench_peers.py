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
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, Stream, encode_stream, iter_chunks, load_corpus

TOKEN = "bench.token.not-a-real-one"
INTENTS = (1 << 0) | (1 << 9)  # GUILDS | GUILD_MESSAGES (the replay server ignores intents)
TIMEOUT = 120.0  # seconds for one loopback run before it counts as failed

# A run returns (seconds, events): the timed span and how many events it covered.
Run = Callable[[], tuple[float, int]]
#: A loopback run's (wall seconds, events, CPU seconds of this process, every thread)
#: from READY to the last event: what ``bench_anyio.py`` interleaves with its own rows.
Timed = tuple[float, int, float]
#: A point in time on both clocks: (``perf_counter``, ``process_time``).
Instant = tuple[float, float]
_ZERO: Instant = (0.0, 0.0)


def _now() -> Instant:
    return time.perf_counter(), time.process_time()


class Unavailable(Exception):
    """This contender cannot run here (library missing, API changed, ...)."""


class _EndOfStream(Exception):
    """The stub socket has nothing more to give."""


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


def _import(name: str, why: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"{why} ({exc.__class__.__name__}: {exc})") from None


def _loads() -> tuple[Callable[[bytes | str], Any], str]:
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return json.loads, "json"
    return orjson.loads, "orjson"


# -- decode level ---------------------------------------------------------------------


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


def _core_api() -> tuple[Any, Any, Any, Any]:
    proto = _import("gateway_proto", "gateway_proto does not import")
    conn_mod = proto
    if importlib.util.find_spec("gateway_proto.connection") is not None:
        conn_mod = _import("gateway_proto.connection", "gateway_proto.connection does not import")
    connection = getattr(conn_mod, "GatewayConnection", None)
    if connection is None:
        raise Unavailable("gateway_proto.GatewayConnection is not there yet")
    events = _import("gateway_proto.events", "gateway_proto.events missing")
    config = _import("gateway_proto.config", "gateway_proto.config missing")
    return connection, config.ShardConfig, events.Dispatch, events.IdentifyNeeded


def decode_spectacles(stream: Stream, chunk: int) -> Run:
    connection_cls, config_cls, dispatch_cls, identify_needed = _core_api()
    wsproto = _import("wsproto", "wsproto missing")
    wse = _import("wsproto.events", "wsproto missing")
    chunks = list(iter_chunks(stream.body, chunk))
    config = config_cls(token=TOKEN, intents=INTENTS, url="ws://127.0.0.1:9/")

    def open_connection() -> Any:
        conn = connection_cls(config, rng=random.Random(0))
        conn.connect(0.0)
        server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        server.receive_data(conn.data_to_send())
        response = b""
        for event in server.events():
            if isinstance(event, wse.Request):
                response = server.send(wse.AcceptConnection())
        conn.receive_data(response + stream.hello_frame, 0.0)
        for event in conn.events():
            if isinstance(event, identify_needed):
                conn.identify(0.0)
        conn.data_to_send()
        return conn

    def run() -> tuple[float, int]:
        conn = open_connection()
        receive, events, data_to_send = conn.receive_data, conn.events, conn.data_to_send
        clock = time.perf_counter
        n = 0
        t0 = time.perf_counter()
        for data in chunks:
            receive(data, clock() - t0)
            for event in events():
                if type(event) is dispatch_cls:
                    n += 1
            data_to_send()
        return time.perf_counter() - t0, n

    run()  # fail here, not in the middle of the table, if the core can't take the stream
    return run


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


def _hikari_shard(hikari: Any, shard_impl: Any, hconfig: Any, sink: _HikariSink, url: str) -> Any:
    api_shard = importlib.import_module("hikari.api.shard")
    return shard_impl.GatewayShardImpl(
        token=TOKEN,
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


# -- frames level (context) -------------------------------------------------------------


class _StubProtocol:
    """The bits of aiohttp's BaseProtocol that its WebSocketDataQueue touches."""

    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


def frames_aiohttp(stream: Stream, chunk: int) -> Run:
    _import("aiohttp", "aiohttp is not installed")
    reader = _import("aiohttp._websocket.reader", "aiohttp's WebSocket reader moved")
    chunks = list(iter_chunks(stream.body, chunk))

    async def session() -> tuple[float, int]:
        queue = reader.WebSocketDataQueue(_StubProtocol(), 1 << 30, loop=asyncio.get_running_loop())
        parser = reader.WebSocketReader(queue, 0, compress=False, decode_text=False)
        feed, buffer = parser.feed_data, queue._buffer
        n = 0
        t0 = time.perf_counter()
        for data in chunks:
            feed(data)
            n += len(buffer)
            buffer.clear()
        return time.perf_counter() - t0, n

    def run() -> tuple[float, int]:
        return asyncio.run(session())

    return run


def frames_wsproto(stream: Stream, chunk: int) -> Run:
    wsproto = _import("wsproto", "wsproto is not installed")
    wse = _import("wsproto.events", "wsproto is not installed")
    chunks = list(iter_chunks(stream.body, chunk))
    message_cls = wse.BytesMessage

    def run() -> tuple[float, int]:
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        server.receive_data(client.send(wse.Request(host="127.0.0.1", target="/")))
        for event in server.events():
            if isinstance(event, wse.Request):
                client.receive_data(server.send(wse.AcceptConnection()))
        for _ in client.events():
            pass
        receive, events = client.receive_data, client.events
        n = 0
        t0 = time.perf_counter()
        for data in chunks:
            receive(data)
            for event in events():
                if type(event) is message_cls and event.message_finished:
                    n += 1
        return time.perf_counter() - t0, n

    return run


# -- loopback level ---------------------------------------------------------------------


def _span(t_ready: float, t_last: float, n: int, total: int) -> tuple[float, int]:
    if n != total or not t_last:
        raise RuntimeError(f"received {n} of {total} events")
    return t_last - t_ready, total - 1  # READY starts the clock: the rest are timed


def _timed_span(t_ready: Instant, t_last: Instant, n: int, total: int) -> Timed:
    seconds, events = _span(t_ready[0], t_last[0], n, total)
    return seconds, events, t_last[1] - t_ready[1]


def _wall(timed: Callable[[], Timed]) -> Run:
    """``timed`` as this script's runs: (seconds, events), CPU time dropped."""

    def run() -> tuple[float, int]:
        seconds, events, _ = timed()
        return seconds, events

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


def loopback_spectacles(stream: Stream, url: str) -> Run:
    _core_api()  # n/a until the core lands
    gateway_anyio = _import("gateway_anyio", "gateway_anyio is not importable")
    anyio = _import("anyio", "anyio is not installed")
    names = sorted(set(stream.names))
    total = len(stream.names)

    async def session() -> tuple[float, int]:
        shard = gateway_anyio.Shard(
            TOKEN,
            intents=INTENTS,
            url=url + "/",
            max_buffer=total + 1000,
            rng=random.Random(0),
        )
        done = anyio.Event()
        state = {"n": 0, "t_ready": 0.0, "t_last": 0.0}

        def hook(event: Any) -> None:
            state["n"] += 1
            if state["n"] == 1:
                state["t_ready"] = time.perf_counter()
            if state["n"] == total:
                state["t_last"] = time.perf_counter()
                done.set()

        for name in names:
            shard.on(name, hook)
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(shard.connect)
                await done.wait()
                await shard.disconnect()
        return _span(state["t_ready"], state["t_last"], int(state["n"]), total)

    def run() -> tuple[float, int]:
        result: tuple[float, int] = anyio.run(session, backend="asyncio")
        return result

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
