"""Scrape cost of the status server's /metrics for 1,000 shards (a report, not a gate).

Builds 1,000 anyio shards (not connected) whose counters look like a busy day's
(20 dispatch names, 3 reconnect causes and codes, traffic counters each), then times the
collector and the text exposition as a scrape does, in the event loop. The shards
pay nothing between scrapes: the collector only runs when asked.

    PYTHONPATH=src python benchmarks/bench_status.py
"""

from __future__ import annotations

import statistics
import time

import anyio
from prometheus_client import generate_latest

from gateway_anyio import Cluster, Gateway, Shard
from gateway_status import StatusApp, anyio_source

SHARDS = 1000
NAMES = ["MESSAGE_CREATE", "TYPING_START", "PRESENCE_UPDATE", "GUILD_CREATE", "X_UNKNOWN"]


async def main() -> None:
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


if __name__ == "__main__":
    anyio.run(main)
