"""What the status server costs: a scrape of 1,000 shards, and events/s with it on (a report).

Scrape: builds 1,000 anyio shards (not connected) whose counters look like a busy
day's (20 dispatch names, 3 reconnect causes and codes, traffic counters each), then times the
collector and the text exposition as a scrape does, in the event loop. The shards
pay nothing between scrapes: the collector only runs when asked.

Events/s: one anyio shard (asyncio) receives the recorded session of
``bench_anyio.py`` (the same replay server, in a child process) with the status
server off, and on, serving in the shard's event loop and scraped (``/metrics``,
``/readyz`` and ``/status.json``) every ``--scrape-interval`` seconds by a raw
loopback client, far more often than Prometheus (15 s) or the page (1 s) does.
Interleaved rounds; the result is the ratio on / off.

    PYTHONPATH=src python benchmarks/bench_status.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from pathlib import Path

import anyio
from prometheus_client import generate_latest

from gateway_anyio import Cluster, Gateway, Shard
from gateway_status import StatusApp, anyio_source, serve_status

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, encode_stream, load_corpus
from peers._common import Tally

SHARDS = 1000
NAMES = ["MESSAGE_CREATE", "TYPING_START", "PRESENCE_UPDATE", "GUILD_CREATE", "X_UNKNOWN"]


async def scrape_cost() -> None:
    """Print the time one /metrics exposition of 1,000 busy shards takes."""
    gateway = Gateway("bench-token")
    cluster = Cluster(gateway, intents=513)
    for sid in range(SHARDS):
        shard = Shard(gateway, sid, shard_count=SHARDS, intents=513, url="ws://127.0.0.1:9/")
        c = shard.counters
        c.dispatches = 100_000
        c.dispatch_names = {f"{n}_{i}" if i else n: 5000 for n in NAMES for i in range(4)}
        c.reconnects = {"zombie": 3, "connection_lost": 2, "reconnect_requested": 9}
        c.reconnect_codes = {("zombie", 4000): 3, ("connection_lost", 0): 2}
        c.reconnect_codes[("reconnect_requested", 4000)] = 9
        c.bytes_received, c.payload_bytes, c.messages_decoded = 10**9, 8 * 10**9, 10**6
        c.commands_refused, c.rate_limit_wait, c.decode_seconds = 1, 2.5, 30.0
        c.closes = {0: 2, 4000: 9, 1006: 3}
        c.identifies, c.resumes, c.connections = 2, 12, 14
        cluster.shards[sid] = shard
    app = StatusApp(anyio_source(cluster))
    times = []
    for _ in range(15):
        start = time.perf_counter()
        body = generate_latest(app.registry)
        times.append(time.perf_counter() - start)
    lines = body.count(b"\n")
    print(
        f"scrape of {SHARDS} shards: median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, {len(body) / 1024:.0f} KiB, "
        f"{lines} lines"
    )


# -- events/s with the status server on and off -----------------------------------------

_PATHS = (b"/metrics", b"/readyz", b"/status.json")


async def _scrape(port: int, interval: float, count: list[int]) -> None:
    """GET the server's routes in turn, every ``interval`` s, over a raw loopback socket."""
    turn = 0
    while True:
        await anyio.sleep(interval)
        path = _PATHS[turn % len(_PATHS)]
        turn += 1
        async with await anyio.connect_tcp("127.0.0.1", port) as sock:
            await sock.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with anyio.move_on_after(5), contextlib.suppress(anyio.EndOfStream):
                while await sock.receive():
                    pass
        count[0] += 1


async def _shard_run(url: str, total: int, names: list[str], interval: float | None) -> float:
    """Events/s of one shard from READY to the last dispatch (status server on if ``interval``)."""
    shard = Shard("bench-token", intents=513, url=url, max_buffer=total + 100, rng=random.Random(0))
    done = anyio.Event()
    tally = Tally(total, done.set)
    for name in names:
        shard.on(name, tally.hook)
    scrapes = [0]
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            if interval is not None:
                page = await tg.start(serve_status, shard, "127.0.0.1", 0)
                tg.start_soon(_scrape, int(page.rsplit(":", 1)[1].rstrip("/")), interval, scrapes)
            tg.start_soon(shard.connect)
            await done.wait()
            await shard.disconnect()
            tg.cancel_scope.cancel()
    if tally.n != total:
        raise RuntimeError(f"received {tally.n} of {total} dispatches")
    if interval is not None and not scrapes[0]:
        raise RuntimeError("no scrape happened during the run: lower --scrape-interval")
    return (total - 1) / (tally.last[0] - tally.ready[0])


def events_per_second(events: int, repeat: int, interval: float) -> None:
    """Print events/s through one anyio shard with the status server off and on."""
    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=events)
    stream = encode_stream(session)
    total, names = len(stream.names), sorted(set(stream.names))
    rates: dict[str, list[float]] = {"off": [], "on": []}
    with ReplayServer(session, stream) as server:
        url = server.url + "/"
        for label in ("off", "on"):  # warm-up round, not counted
            anyio.run(_shard_run, url, total, names, None if label == "off" else interval)
        for _ in range(repeat):
            for label in ("off", "on"):
                wait = None if label == "off" else interval
                rates[label].append(anyio.run(_shard_run, url, total, names, wait))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"stream: {total} dispatches from {source}; median of {repeat} interleaved rounds")
    print(f"  status server off                   {off:10,.0f} events/s")
    print(f"  on, scraped every {interval:g} s (3 routes) {on:10,.0f} events/s")
    print(f"  on / off: x{on / off:.3f}")
    print(f"  rounds off: {_list(rates['off'])}; on: {_list(rates['on'])}")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    """Run both reports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50000, help="recorded events (50000)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--scrape-interval", type=float, default=0.1, help="seconds between scrapes (0.1)"
    )
    args = parser.parse_args(argv)
    anyio.run(scrape_cost)
    events_per_second(args.events, args.repeat, args.scrape_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
