"""One gateway process of test_identify's multi-process proof: a Cluster with the Redis limiter.

Run as ``python tests/scaling/_identify_child.py DRIVER REDIS_URL API_BASE WINDOW
SHARD_COUNT SHARD_ID...`` with the token in ``SPECTACLES_TEST_TOKEN`` (never on a
command line). Prints one JSON line per event the test watches (``identify_wait``,
``connect``, ``error``) and runs until killed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import anyio
import redis
import redis.asyncio

import gateway_anyio
import gateway_sync
from gateway_proto.driver_support import GatewayEvent
from gateway_redis import RedisIdentifyLimiter, SyncRedisIdentifyLimiter

_print_lock = threading.Lock()


def report(event: GatewayEvent) -> None:
    """Print the event as one JSON line (handlers of the sync driver run on many threads)."""
    line: dict[str, Any] = {"event": event.name, "shard": event.shard_id}
    if event.name == "identify_wait":
        line["reset"] = event.data.waits_for_reset
    elif event.name == "error":
        line["error"] = repr(event.data)
    with _print_lock:
        print(json.dumps(line), flush=True)


async def run_anyio(url: str, api_base: str, window: float, count: int, ids: list[int]) -> None:
    """Run the shards on the anyio driver (asyncio backend) until killed."""
    token = os.environ["SPECTACLES_TEST_TOKEN"]
    client = redis.asyncio.Redis.from_url(url)
    limiter = RedisIdentifyLimiter(client, token, window=window)
    gateway = gateway_anyio.Gateway(token, api_base=api_base)
    async with gateway_anyio.Cluster(gateway, intents=513, identify_limiter=limiter) as cluster:
        for name in ("identify_wait", "connect", "error"):
            cluster.on(name, report)
        await cluster.spawn(ids, shard_count=count)
        await anyio.sleep_forever()


def run_sync(url: str, api_base: str, window: float, count: int, ids: list[int]) -> None:
    """Run the shards on the blocking driver until killed."""
    token = os.environ["SPECTACLES_TEST_TOKEN"]
    limiter = SyncRedisIdentifyLimiter(redis.Redis.from_url(url), token, window=window)
    gateway = gateway_sync.Gateway(token, api_base=api_base)
    with gateway_sync.Cluster(gateway, intents=513, identify_limiter=limiter) as cluster:
        for name in ("identify_wait", "connect", "error"):
            cluster.on(name, report)
        cluster.spawn(ids, shard_count=count)
        cluster.run()


def main() -> None:
    """Parse argv and run."""
    driver, url, api_base, window, count, *ids = sys.argv[1:]
    shard_ids = [int(i) for i in ids]
    if driver == "sync":
        run_sync(url, api_base, float(window), int(count), shard_ids)
    else:
        anyio.run(run_anyio, url, api_base, float(window), int(count), shard_ids)


if __name__ == "__main__":
    main()
