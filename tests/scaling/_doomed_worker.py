"""A worker process for test_worker: reads a batch, reports it, and hangs before acking.

Run as ``python tests/scaling/_doomed_worker.py REDIS_URL KEY_PREFIX``; the test
kills it with SIGKILL.
"""

from __future__ import annotations

import sys

import anyio

from gateway_redis._keys import Keys
from gateway_redis.worker import StreamEvent, Worker


async def main(url: str, prefix: str) -> None:
    worker = Worker(url, Keys(prefix), group="g", consumer="doomed", start="0", count=10)

    async def handle(event: StreamEvent) -> None:
        print(f"handling {event.sequence}", flush=True)
        await anyio.sleep_forever()  # never returns: the batch is never acknowledged

    await worker.run(handle)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
