"""Core throughput: server bytes -> decoded payloads / Dispatch events, next to the floor.

Run: ``python benchmarks/bench_core.py`` (``--help`` for the knobs). Prints one table.

The stream is the standard recorded session (``gateway_testing.corpus.recorded_session``:
READY, one large GUILD_CREATE per guild, then everyday events), encoded as Discord
sends it: HELLO, then one dispatch per WebSocket message, one deflate context for
the whole connection (``compress=zlib-stream``), each message ended by a
``Z_SYNC_FLUSH``, each message one unmasked binary frame. Frames are pre-built and
cut into ~64 KiB chunks, as a socket would hand them over. ``--compression``
(repeatable) runs the same rows over ``zstd-stream`` (one zstd context for the
connection, one flushed block per message, the frame never ended) or ``payload``
(IDENTIFY ``compress: true``: each message a standalone zlib stream; JSON only)
instead, or as well; those rows are labelled ``orjson/zstd-stream`` and so on.

Rows, per encoding (JSON with orjson, JSON with stdlib ``json``, ETF with erlpack):

Columns: events/s is the best of N rounds; "vs floor" compares best with best;
"paired" is the median over rounds of (this row / the same round's floor), which
cancels slow drift in the machine's speed and is the steadier of the two.

* ``floor``: a bare loop ``decompressobj().decompress(message)`` + ``loads`` over the
  same messages, no framing, nothing kept: the ceiling any client can reach
  (zstd-stream: zstandard's ``decompressobj``; payload: ``zlib.decompress`` per
  message, without the size cap a client needs).
* ``floor, results held``: the same loop, each chunk's results kept alive until the
  next chunk (what any eager ``receive(chunk)`` -> list design pays).
* ``floor with zlib-ng``: the floor inflating with zlib-ng, which the core uses when
  it is installed (the ``speed`` extra); the ratios are to the stdlib zlib floor.
* ``Wire.receive (eager)``: ``gateway_proto._wire.Wire.receive`` over the chunks
  (frames, inflate, decode, envelope, ``Dispatch``), a whole chunk at a time.
* ``GatewayConnection``: ``receive_data`` + ``events()``, counting ``Dispatch``
  events: what a driver gets. With the C hot path (``gateway_proto._speedups``)
  when it is built, and again without it (the pure-Python wire layer).
* ``EventDrain``: what both drivers run over the connection (``driver_support.EventDrain``,
  64 dispatches at a time, each a counted ``GatewayEvent``, batches dropped at once):
  runs of ordinary dispatches through ``take_dispatches`` (C), and again without the
  C hot path.

Repetitions are interleaved (floor, wire, connection, floor, ...) and the best of N
is kept, in CPU time (``time.process_time``): the machine is shared and noisy, and
the best run is the least disturbed. Ratios compare rows of one run only.
"""

from __future__ import annotations

import argparse
import gc
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _core_stream import SNOWFLAKE_MIN, Stream, _decompressor, load_session
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from gateway_proto import (
    Dispatch,
    GatewayConnection,
    IdentifyNeeded,
    Reconnector,
    ShardConfig,
    _wire,
)
from gateway_proto._wire import Wire
from gateway_proto.codecs import JsonCodec
from gateway_proto.compression import zlib_module
from gateway_proto.driver_support import (
    HAND_OVER_EVERY,
    ConnectionReactor,
    EventDrain,
    ShardCounters,
    UnsentCommands,
    shard_events,
)

#: Whether zlib-ng is installed: the core then inflates with it (gateway_proto.compression).
ZLIB_NG = zlib_module() is not zlib

TOKEN = "bench.token.value"
URL = "ws://127.0.0.1:9/"

Run = Callable[[], tuple[float, int]]

# CPU time of this process, not wall time: every row is single-threaded and CPU-bound,
# and on a shared machine wall time also counts what other tenants take from us
# (rows of one run then drift apart by 10-20 %; CPU time keeps them within a few %).
clock = time.process_time


def _accept(request: bytes) -> bytes:
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(request)
    for event in server.events():
        if isinstance(event, Request):
            return server.send(AcceptConnection())
    raise RuntimeError("no upgrade request")


def floor(stream: Stream, loads: Callable[[bytes], Any], *, zlib_ng: bool = False) -> Run:
    messages = stream.messages

    def run() -> tuple[float, int]:
        t0 = clock()
        decompress = _decompressor(stream.compression, zlib_ng=zlib_ng)
        n = 0
        for m in messages:
            loads(decompress(m))
            n += 1
        return clock() - t0, n - 1  # HELLO is not an event

    return run


def floor_held(stream: Stream, loads: Callable[[bytes], Any]) -> Run:
    """The floor, keeping each chunk's results alive until the next chunk, as eager parsing must."""
    messages = stream.messages
    per_chunk = max(1, round(stream.events / len(stream.chunks)))

    def run() -> tuple[float, int]:
        t0 = clock()
        decompress = _decompressor(stream.compression)
        held: list[Any] = []
        n = 0
        for m in messages:
            held.append(loads(decompress(m)))
            n += 1
            if n % per_chunk == 0:
                held = []
        return clock() - t0, n - 1

    return run


def _config(encoding: str, compression: str) -> ShardConfig:
    return ShardConfig(
        token=TOKEN,
        intents=513,
        url=URL,
        encoding="etf" if encoding == "etf" else "json",
        compression=compression,  # type: ignore[arg-type]
    )


def _configure(w: Wire, encoding: str, use_orjson: bool, c_path: bool) -> None:
    """Force orjson or stdlib json, and the C hot path on or off, in a fresh Wire.

    Private attributes: a benchmark-only knob (the scanner is made from the codec).
    """
    if encoding == "json":
        codec = JsonCodec(use_orjson)
        w._codec = codec
        w._loads = codec.loads
    saved = _wire.Scanner
    if not c_path:
        _wire.Scanner = None
    try:
        w._set_up_input()
    finally:
        _wire.Scanner = saved


def wire(stream: Stream, encoding: str, use_orjson: bool) -> Run:
    config = _config(encoding, stream.compression)

    def run() -> tuple[float, int]:
        out = bytearray()
        w = Wire(config, config.gateway_url(), out)
        _configure(w, encoding, use_orjson, c_path=True)
        w.initiate()
        w.receive(_accept(bytes(out)) + stream.hello_frame)
        receive = w.receive
        n = 0
        t0 = clock()
        for data in stream.chunks:
            for item in receive(data):
                if item.__class__ is Dispatch:
                    n += 1
        return clock() - t0, n

    return run


def _identified(
    stream: Stream, config: ShardConfig, encoding: str, use_orjson: bool, c_path: bool
) -> GatewayConnection:
    """A connection past HELLO and IDENTIFY, ready for the stream's chunks."""
    conn = GatewayConnection(config, rng=random.Random(0))
    _configure(conn._wire, encoding, use_orjson, c_path)
    conn.connect(0.0)
    conn.receive_data(_accept(conn.data_to_send()) + stream.hello_frame, 0.0)
    for event in conn.events():
        if isinstance(event, IdentifyNeeded):
            conn.identify(0.0)
    conn.data_to_send()
    return conn


def connection(stream: Stream, encoding: str, use_orjson: bool, c_path: bool = True) -> Run:
    config = _config(encoding, stream.compression)

    def run() -> tuple[float, int]:
        conn = _identified(stream, config, encoding, use_orjson, c_path)
        receive, events, data_to_send = conn.receive_data, conn.events, conn.data_to_send
        n = 0
        t0 = clock()
        for data in stream.chunks:
            receive(data, 1.0)
            for event in events():
                if event.__class__ is Dispatch:
                    n += 1
            data_to_send()
        return clock() - t0, n

    return run


def drained(stream: Stream, encoding: str, use_orjson: bool, c_path: bool = True) -> Run:
    """What the drivers run: ``EventDrain`` (64 at a time) over the connection."""
    config = _config(encoding, stream.compression)

    def run() -> tuple[float, int]:
        conn = _identified(stream, config, encoding, use_orjson, c_path)
        # A shard's event maker to match (the Python one without the C hot path).
        saved = getattr(shard_events, "SlotMaker")  # noqa: B009 (not exported)
        if not c_path:
            setattr(shard_events, "SlotMaker", None)  # noqa: B010
        try:
            drain = EventDrain(
                shard=None,
                shard_id=0,
                counters=(counters := ShardCounters()),
                reconnector=Reconnector(config),
                reactor=ConnectionReactor(conn, ready_timeout=60.0),
                unsent=UnsentCommands(),
                hand_over=lambda batch: None,  # a consumer that is done with them at once
                wants=lambda name: False,
                on_reaction=lambda reaction: None,
                on_counts=lambda: None,
                clock=time.perf_counter,
            )
        finally:
            setattr(shard_events, "SlotMaker", saved)  # noqa: B010
        receive, data_to_send, step = conn.receive_data, conn.data_to_send, drain.drain
        t0 = clock()
        for data in stream.chunks:
            receive(data, 1.0)
            while step(conn, HAND_OVER_EVERY):
                pass
            data_to_send()
        return clock() - t0, counters.dispatches

    return run


def _walk(value: Any, atom: type) -> Any:
    """erlpack's output normalised to the JSON-equal values (the alternative we measured)."""
    cls = value.__class__
    if cls is dict:
        return {
            (k.decode() if k.__class__ is bytes else _walk(k, atom)): _walk(v, atom)
            for k, v in value.items()
        }
    if cls is bytes:
        return value.decode()
    if cls is int:
        return str(value) if value > SNOWFLAKE_MIN - 1 else value
    if cls is list or cls is tuple:
        return [_walk(v, atom) for v in value]
    if isinstance(value, atom):
        return str(value)
    return value


def etf_decoders(stream: Stream, repeat: int) -> list[tuple[str, float]]:
    """Payloads/s of: bare erlpack.unpack; erlpack + normalising walk; our pure-Python decoder."""
    import erlpack

    from gateway_proto import _etf

    inflate = _decompressor(stream.compression)
    raws = [inflate(m) for m in stream.messages]
    atom = erlpack.Atom

    def bare() -> None:
        for r in raws:
            erlpack.unpack(r)

    def walk() -> None:
        for r in raws:
            _walk(erlpack.unpack(r), atom)

    def pure() -> None:
        for r in raws:
            _etf.decode(r, 1 << 26)

    assert all(_walk(erlpack.unpack(r), atom) == _etf.decode(r, 1 << 26) for r in raws[:500])
    cases = [
        ("erlpack.unpack alone (not normalised)", bare),
        ("erlpack.unpack + normalising walk", walk),
        ("gateway_proto._etf.decode (pure Python)", pure),
    ]
    best = dict.fromkeys(range(len(cases)), float("inf"))
    for _ in range(repeat):
        for i, (_, fn) in enumerate(cases):
            gc.collect()
            t0 = clock()
            fn()
            best[i] = min(best[i], clock() - t0)
    return [(label, len(raws) / best[i]) for i, (label, _) in enumerate(cases)]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, nproc={os.cpu_count()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=20)
    parser.add_argument("--members", type=int, default=200, help="members per guild")
    parser.add_argument("--events", type=int, default=20000, help="everyday events after READY")
    parser.add_argument("--chunk", type=int, default=65536, help="bytes per receive call")
    parser.add_argument("--repeat", type=int, default=7, help="best of N, interleaved")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC in runs")
    parser.add_argument(
        "--only", choices=("orjson", "json", "etf"), action="append", help="variants to run"
    )
    parser.add_argument(
        "--compression",
        choices=("zlib-stream", "zstd-stream", "payload"),
        action="append",
        help="transport/payload compression of the stream (repeatable; default zlib-stream)",
    )
    args = parser.parse_args()

    import orjson

    # Only the ETF rows need erlpack (the peers venv, which scripts/bench.sh uses, has none).
    erlpack: Any = None
    if "etf" in (args.only or ["etf"]):
        erlpack = importlib.import_module("erlpack")

    c_path = _wire.Scanner is not None
    if not c_path:
        print("note: gateway_proto._speedups is not built; the pure-Python wire layer runs\n")
    session, source = load_session(args.guilds, args.members, args.events)
    variants = args.only or ["orjson", "json", "etf"]
    compressions = args.compression or ["zlib-stream"]
    rows: list[tuple[str, str, Run]] = []
    streams: dict[str, Stream] = {}
    for compression, codec in [(c, v) for c in compressions for v in variants]:
        encoding = "etf" if codec == "etf" else "json"
        if compression == "payload" and encoding == "etf":
            continue  # payload compression is JSON-only
        key = encoding if compression == "zlib-stream" else f"{encoding}/{compression}"
        if key not in streams:
            streams[key] = Stream(session, encoding, args.chunk, compression)
        stream = streams[key]
        variant = codec if compression == "zlib-stream" else f"{codec}/{compression}"
        loads: Callable[[bytes], Any] = orjson.loads
        if codec != "orjson":
            loads = erlpack.unpack if codec == "etf" else json.loads
        rows.append((variant, "floor (decompress + loads)", floor(stream, loads)))
        rows.append((variant, "floor, results held per chunk", floor_held(stream, loads)))
        if compression != "zstd-stream" and ZLIB_NG:
            # What the core inflates with when the speed extra is installed.
            rows.append((variant, "floor with zlib-ng", floor(stream, loads, zlib_ng=True)))
        use_orjson = codec == "orjson"
        rows.append((variant, "Wire.receive (eager)", wire(stream, encoding, use_orjson)))
        rows.append(
            (variant, "GatewayConnection -> Dispatch", connection(stream, encoding, use_orjson))
        )
        if c_path:
            rows.append(
                (
                    variant,
                    "  ...without the C hot path",
                    connection(stream, encoding, use_orjson, c_path=False),
                )
            )
        rows.append((variant, "EventDrain -> GatewayEvent", drained(stream, encoding, use_orjson)))
        if c_path:
            rows.append(
                (
                    variant,
                    "  ...without the C hot path",
                    drained(stream, encoding, use_orjson, c_path=False),
                )
            )

    counts: dict[int, int] = {}
    best: dict[int, float] = {}
    times: dict[int, list[float]] = {i: [] for i in range(len(rows))}
    for _ in range(args.repeat):
        for i, (_, _, run) in enumerate(rows):
            gc.collect()  # start clean; the collector stays on, as in a real process
            if args.no_gc:
                gc.disable()
            try:
                seconds, n = run()
            finally:
                gc.enable()
            best[i] = min(best.get(i, float("inf")), seconds)
            times[i].append(seconds)
            counts[i] = n

    any_stream = next(iter(streams.values()))
    print(f"machine : {machine()}")
    print(
        f"stream  : {source}; {any_stream.events} events, "
        f"{args.guilds} guilds x {args.members} members; chunks of {args.chunk} bytes; "
        f"best of {args.repeat}, interleaved"
    )
    for encoding, stream in streams.items():
        print(
            f"  {encoding}: {stream.raw_bytes / 1e6:.1f} MB raw, "
            f"{sum(map(len, stream.messages)) / 1e6:.1f} MB on the wire"
        )
    print()
    width = max(8, *(len(variant) for variant, _, _ in rows))
    print(
        f"{'codec':<{width}} {'path':<32} {'events':>8} {'events/s':>11} {'vs floor':>9} "
        f"{'paired':>7} {'vs held':>8}"
    )
    rates = [counts[i] / best[i] for i in range(len(rows))]
    floor_rows = {v: i for i, (v, label, _) in enumerate(rows) if label.startswith("floor (")}
    floors = {v: rates[i] for v, i in floor_rows.items()}
    helds = {v: rates[i] for i, (v, label, _) in enumerate(rows) if label.startswith("floor,")}
    for i, (variant, label, _) in enumerate(rows):
        rate, floor_rate, held_rate = rates[i], floors[variant], helds[variant]
        # The median of per-round ratios: each round's floor ran moments before
        # this row, so slow drift in the machine's speed cancels out.
        floor_row = floor_rows[variant]
        paired = statistics.median(
            (counts[i] / mine) / (counts[floor_row] / base)
            for mine, base in zip(times[i], times[floor_row], strict=True)
        )
        print(
            f"{variant:<{width}} {label:<32} {counts[i]:>8} {rate:>11,.0f} "
            f"{rate / floor_rate:>8.2f}x "
            f"{paired:>6.2f}x {rate / held_rate if held_rate else 1.0:>7.2f}x"
        )
    if "etf" in streams:
        print()
        print("ETF decoders, payloads/s (same stream, inflated beforehand):")
        for label, rate in etf_decoders(streams["etf"], args.repeat):
            print(f"  {label:<42} {rate:>11,.0f}")


if __name__ == "__main__":
    main()
