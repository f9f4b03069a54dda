"""Event delivery in one process: a handler against an ``events()`` stream, no I/O.

A producer task hands ``gateway_anyio``'s emitter batches of 64 events and yields
between them, as a shard's reader does; the consumer is a handler (run by its
worker task) or ``async for`` over a stream, doing the same work per event. The
rounds alternate the two; the figure is CPU per event and the stream's CPU over the
handler's, paired round by round (min / median / max). Without sockets or decoding,
this resolves differences of tens of nanoseconds per event that the full-stack run
(``bench_anyio.py``) cannot on a shared machine.

    python benchmarks/bench_delivery.py [--events 100000] [--rounds 7] [--backend asyncio]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

import anyio

from gateway_anyio import GatewayEvent
from gateway_anyio._events import Emitter
from gateway_proto.driver_support import HAND_OVER_EVERY


async def _deliver(events: list[GatewayEvent], stream: bool) -> float:
    """CPU seconds to deliver ``events`` to a handler or a stream, first to last."""
    total = len(events)
    emitter = Emitter(logging.getLogger("bench_delivery"), max_pending=total + 1)
    seen = 0

    def hook(event: GatewayEvent) -> None:
        nonlocal seen
        seen += 1

    async with anyio.create_task_group() as tg:
        emitter.attach(tg)
        if stream:
            events_stream = emitter.events(max_buffer=total + 1)

            async def consume() -> None:
                async for event in events_stream:
                    hook(event)

            tg.start_soon(consume)
        else:
            emitter.on("*", hook)
        await anyio.sleep(0)
        start = time.process_time()
        for i in range(0, total, HAND_OVER_EVERY):
            emitter.emit_batch(events[i : i + HAND_OVER_EVERY])
            await anyio.sleep(0)
        while seen < total:
            await anyio.sleep(0)
        spent = time.process_time() - start
        emitter.close()
    return spent


def _stream_base() -> str:
    # What EventStream's __anext__ comes from (this script also runs on older code).
    base = Emitter(logging.getLogger("bench_delivery")).events().__class__.__mro__[1]
    return f"{base.__module__}.{base.__qualname__}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    events = [GatewayEvent("MESSAGE_CREATE", 0, n, n) for n in range(args.events)]
    load_before = _load()
    handler: list[float] = []
    stream: list[float] = []
    for _ in range(args.rounds):
        handler.append(anyio.run(_deliver, events, False, backend=args.backend))
        stream.append(anyio.run(_deliver, events, True, backend=args.backend))
    ratios = sorted(s / h for h, s in zip(handler, stream, strict=True))
    print(
        f"{args.backend}, {args.events:,} events, {args.rounds} rounds; stream base: "
        f"{_stream_base()}"
    )
    for name, spent in (("handler", handler), ("events() stream", stream)):
        print(f"  {name:16s} {statistics.median(spent) / args.events * 1e9:6.0f} ns CPU/event")
    print(
        f"  stream / handler CPU: x{ratios[0]:.2f} / x{statistics.median(ratios):.2f} / "
        f"x{ratios[-1]:.2f} (min / median / max)"
    )
    print(f"load average at start: {load_before}; at end: {_load()}")


if __name__ == "__main__":
    main()
