"""Events through Redis Streams: gateway process -> Redis -> worker, next to in-process.

Three runs (``--only throughput``, ``--only drain`` or ``--only idle`` picks one):

**throughput**: the recorded session of ``gateway_testing.corpus.recorded_session()``,
encoded and served by ``benchmarks/_replay.py``'s replay server (the bytes of
``bench_anyio.py``), read by a one-shard ``gateway_anyio`` Cluster on asyncio in
this process. Two contenders, interleaved round by round:

* *in-process*: a task consumes ``cluster.events()`` (what an application in the
  gateway process does); clock from READY to the last dispatch consumed;
* *broker*: ``publish_cluster`` publishes every dispatch (as received: the
  cluster has ``keep_raw``, as ``spectacles-gateway run`` does) to a ``redis-server``
  started for the run, and a ``Worker`` in another process (a consumer group,
  ``XREADGROUP``, JSON decode of each event, ``XACK``) receives them; clock from
  READY at the gateway to the last event handled by the worker (both read
  ``CLOCK_MONOTONIC``);
* *broker, N per entry* (``--events-per-entry N ...``, default 50): the same with
  the publisher packing up to N dispatches per stream entry (``events_per_entry``),
  the worker reading ``count // N`` entries at a time.

The ratio broker / in-process of time per event is the issue's target (<= 1.5x).
Note the broker run spreads over processes (the gateway here; Redis, the worker
and the replay server elsewhere): on a 2-core machine they compete for the second core.

**drain**: per packing, the session published by the gateway with no worker
running, then drained by one ``Worker`` alone in this process: the worker's CPU
per event, and Redis's while it was written and while it was read.

**idle**: ``--shards N`` idle shards (the fake gateway of ``_idle_fake.py`` in a child
process; 41.25 s heartbeats, ``max_concurrency`` = N so identify is not the limit) in one cluster
in this process; CPU time of this process (``getrusage``) over windows with and
without the Redis services (the publisher; also the command applier), interleaved.

Run: ``.venv/bin/python benchmarks/bench_broker.py [--events N] [--repeat R]
[--shards N] [--window S] [--count N] [--events-per-entry N ...]
[--only throughput|idle]``. Needs ``redis-server``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _idle_fake import TOKEN, IdleFake
from _redis_server import RedisServer, process_cpu
from _replay import ReplayServer, encode_stream, load_corpus

# -- the worker process ----------------------------------------------------------------------


def worker_main(url: str) -> None:
    """Child: per line ``PREFIX TOTAL COUNT`` on stdin, receive TOTAL events, print the times.

    ``COUNT``: entries per read.
    """
    import anyio

    from gateway_redis._keys import Keys
    from gateway_redis.worker import StreamEvent, Worker

    async def one_round(prefix: str, total: int, count: int) -> None:
        worker = Worker(url, Keys(prefix), group="bench", consumer="w1", start="0", count=count)
        await worker.create_groups()
        print("ready", flush=True)
        state = {"n": 0, "first": 0.0, "last": 0.0, "cpu": time.process_time(), "reads": 0}
        handle_batch = worker._handle

        async def count_batch(batch: Any, handler: Any) -> None:  # reads that brought events
            state["reads"] += bool(batch)
            await handle_batch(batch, handler)

        worker._handle = count_batch  # type: ignore[method-assign]

        def handle(event: StreamEvent) -> None:
            state["n"] += 1
            if state["n"] == 1:
                state["first"] = time.monotonic()
            if state["n"] == total:
                state["last"] = time.monotonic()
                worker.stop()

        await worker.run(handle)
        state["cpu"] = time.process_time() - state["cpu"]  # idle waits cost none
        await worker.aclose()
        print(json.dumps(state), flush=True)

    for line in sys.stdin:
        prefix, total, count = line.split()
        anyio.run(one_round, prefix, int(total), int(count), backend="asyncio")


class WorkerProcess:
    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "worker", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start_round(self, prefix: str, total: int, count: int) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{prefix} {total} {count}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the worker did not start")

    def result(self) -> dict[str, float]:
        assert self.proc.stdout is not None
        out: dict[str, float] = json.loads(self.proc.stdout.readline())
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- the gateway side ------------------------------------------------------------------


def _gateway(url: str, shards: int = 1) -> Any:
    """A Gateway whose GET /gateway/bot is answered locally (the replay server has no REST)."""
    import httpx

    from gateway_anyio import Gateway

    body = {
        "url": url,
        "shards": shards,
        "session_start_limit": {
            "total": 100_000,
            "remaining": 100_000,
            "reset_after": 86_400_000,
            "max_concurrency": max(1, shards),
        },
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    return Gateway(TOKEN, api_base="http://gateway.invalid/api/v10", transport=transport)


def broker_round(
    url: str,
    total: int,
    *,
    redis_url: str,
    prefix: str,
    keep_raw: bool = True,
    events_per_entry: int = 1,
) -> tuple[float, float]:
    """One broker round at the gateway: when READY came, and when Redis had every event.

    ``CLOCK_MONOTONIC`` times; the worker's come from its own process.
    """
    import anyio

    from gateway_anyio import Cluster
    from gateway_redis._keys import Keys
    from gateway_redis.streams import EventPublisher, publish_cluster

    async def session() -> tuple[float, float]:
        t_ready = published = 0.0
        publisher = EventPublisher(
            redis_url, Keys(prefix), max_queue=total + 100, events_per_entry=events_per_entry
        )
        # keep_raw: JSON dispatches are published as received, as `run` does.
        cluster = Cluster(_gateway(url), intents=513, max_buffer=total + 100, keep_raw=keep_raw)
        async with cluster, anyio.create_task_group() as tg:
            tg.start_soon(publish_cluster, cluster, publisher)
            async with cluster.events("READY") as ready:
                await cluster.spawn(1)
                with anyio.fail_after(120):
                    await ready.__anext__()
                    t_ready = time.monotonic()
            with anyio.fail_after(120):
                while publisher.published < total:
                    await anyio.sleep(0.01)
            published = time.monotonic()
            await cluster.aclose()
        await publisher.aclose()
        return t_ready, published

    result: tuple[float, float] = anyio.run(session, backend="asyncio")
    return result


def throughput(args: argparse.Namespace) -> None:
    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session)
    total, names = len(stream.names), sorted(set(stream.names))
    redis = RedisServer()
    worker = WorkerProcess(redis.url)
    packings = _packings(args)
    label = {n: "broker" if n == 1 else f"broker, {n} per entry" for n in packings}
    rates: dict[str, list[float]] = {"in-process": [], **{label[n]: [] for n in packings}}
    cpu: dict[str, list[float]] = {key: [] for key in rates}
    # CPU per event of the other processes of each broker path (and the replay server's).
    parts: dict[str, dict[str, list[float]]] = {
        key: {"replay": [], "redis": [], "worker": []} for key in rates
    }
    reads: dict[str, list[float]] = {label[n]: [] for n in packings}  # events per worker read
    done_at: dict[str, list[float]] = {label[n]: [] for n in packings}  # gateway, s per event
    try:
        with ReplayServer(session, stream) as server:
            url = server.url + "/"
            replay_pid = server._proc.pid
            for round_no in range(args.repeat + 1):  # round 0: warm-up, not counted
                cpu0, replay0 = time.process_time(), process_cpu(replay_pid)
                inproc = _in_process_round(url, total, names)
                cpu1, replay1 = time.process_time(), process_cpu(replay_pid)
                line = f"  round {round_no}: in-process {inproc * 1e6:5.1f} us/event"
                if round_no:
                    rates["in-process"].append(1 / inproc)
                    cpu["in-process"].append((cpu1 - cpu0) / total)
                    parts["in-process"]["replay"].append((replay1 - replay0) / total)
                order = packings[round_no % len(packings) :] + packings[: round_no % len(packings)]
                for per_entry in order:
                    key = label[per_entry]
                    prefix = f"bench:{round_no}:{per_entry}"
                    worker.start_round(prefix, total, max(1, args.count // per_entry))
                    cpu1, replay1 = time.process_time(), process_cpu(replay_pid)
                    redis0 = redis.cpu()
                    t_ready, published = broker_round(
                        url, total, redis_url=redis.url, prefix=prefix,
                        events_per_entry=per_entry,
                    )  # fmt: skip
                    cpu2, replay2 = time.process_time(), process_cpu(replay_pid)
                    result = worker.result()
                    redis1 = redis.cpu()
                    broker = (result["last"] - t_ready) / (total - 1)
                    line += f", {key} {broker * 1e6:5.1f} (x{broker / inproc:.2f})"
                    if round_no:
                        rates[key].append(1 / broker)
                        cpu[key].append((cpu2 - cpu1) / total)
                        parts[key]["replay"].append((replay2 - replay1) / total)
                        parts[key]["redis"].append((redis1 - redis0) / total)
                        parts[key]["worker"].append(result["cpu"] / total)
                        reads[key].append(total / max(1, result["reads"]))
                        done_at[key].append((published - t_ready) / total)
                print(line, flush=True)
    finally:
        worker.close()
        redis.close()
    print(f"stream: {total} dispatches from {source} (digest {stream.digest()})")
    print(f"median of {args.repeat} interleaved rounds (events/s, READY to the last event)")
    inproc_m = statistics.median(rates["in-process"])
    cpu_in = statistics.median(cpu["in-process"]) * 1e6
    in_all = cpu_in + statistics.median(parts["in-process"]["replay"]) * 1e6
    print(
        f"  in-process: Cluster, events() consumer: {inproc_m:,.0f}/s; gateway CPU "
        f"{cpu_in:.1f} us per event (whole round, connect included)"
    )
    for per_entry in packings:
        key = label[per_entry]
        broker_m = statistics.median(rates[key])
        pairs = zip(rates["in-process"], rates[key], strict=True)
        paired = statistics.median(a / b for a, b in pairs)
        cpu_broker = statistics.median(cpu[key]) * 1e6
        other = {part: statistics.median(v) * 1e6 for part, v in parts[key].items()}
        broker_all = cpu_broker + sum(other.values())
        print(f"  {key}: publish_cluster -> Redis -> Worker: {broker_m:,.0f}/s")
        print(
            f"    time per event, broker / in-process: x{inproc_m / broker_m:.2f} "
            f"(paired x{paired:.2f}); gateway done publishing at "
            f"{statistics.median(done_at[key]) * 1e6:.1f} us per event"
        )
        print(
            f"    CPU per event: gateway {cpu_broker:.1f} us (x{cpu_broker / cpu_in:.2f}), "
            f"redis {other['redis']:.1f} us, worker {other['worker']:.1f} us, replay "
            f"{other['replay']:.1f} us; all processes {broker_all:.1f} us, "
            f"x{broker_all / in_all:.2f} of in-process (on {os.cpu_count()} cores); "
            f"events per worker read {statistics.median(reads[key]):.0f}"
        )


def _packings(args: argparse.Namespace) -> list[int]:
    """The broker contenders: events per stream entry (1: one entry per dispatch)."""
    return sorted({1, *(n for n in args.events_per_entry if n > 1)})


def drain(args: argparse.Namespace) -> None:
    """Per packing: fill a stream (a gateway publishing, no worker), then drain it alone.

    The worker runs in this process (nothing else does meanwhile): its CPU per event
    (``process_time``), and Redis's, writing (``XADD``s, while the gateway published)
    and reading (``XREADGROUP`` and ``XACK``, while the worker drained).
    """
    import anyio

    from gateway_redis._keys import Keys
    from gateway_redis.worker import StreamEvent, Worker

    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session)
    total = len(stream.names)
    packings = _packings(args)
    cpu: dict[str, dict[int, list[float]]] = {
        part: {n: [] for n in packings} for part in ("worker", "redis write", "redis read")
    }

    async def drain_alone(url: str, prefix: str, count: int) -> None:
        worker = Worker(url, Keys(prefix), group="bench", consumer="w1", start="0", count=count)
        handled = 0

        def handle(event: StreamEvent) -> None:
            nonlocal handled
            handled += 1
            if handled == total:
                worker.stop()

        with anyio.fail_after(120):
            await worker.run(handle)
        await worker.aclose()

    redis = RedisServer()
    try:
        with ReplayServer(session, stream) as server:
            url = server.url + "/"
            for round_no in range(args.repeat + 1):  # round 0: warm-up, not counted
                shift = round_no % len(packings)
                for per_entry in packings[shift:] + packings[:shift]:
                    prefix = f"drain:{round_no}:{per_entry}"
                    redis0 = redis.cpu()
                    broker_round(
                        url, total, redis_url=redis.url, prefix=prefix, events_per_entry=per_entry
                    )
                    redis1, cpu0 = redis.cpu(), time.process_time()
                    count = max(1, args.count // per_entry)
                    anyio.run(drain_alone, redis.url, prefix, count, backend="asyncio")
                    cpu1, redis2 = time.process_time(), redis.cpu()
                    if round_no:
                        cpu["worker"][per_entry].append((cpu1 - cpu0) / total)
                        cpu["redis write"][per_entry].append((redis1 - redis0) / total)
                        cpu["redis read"][per_entry].append((redis2 - redis1) / total)
    finally:
        redis.close()
    print(f"stream: {total} dispatches from {source}, filled, then drained alone")
    print(f"{args.repeat} rounds after a warm-up, packings in rotated order")
    print("  CPU per event, median (min), us: worker (XREADGROUP, decode, handler, XACK); "
          "Redis writing (XADD); Redis reading (XREADGROUP, XACK)")  # fmt: skip
    for per_entry in packings:
        cells = ", ".join(
            f"{part} {statistics.median(v[per_entry]) * 1e6:.1f} ({min(v[per_entry]) * 1e6:.1f})"
            for part, v in cpu.items()
        )
        print(f"  {per_entry:3d} per entry: {cells}")


def _in_process_round(url: str, total: int, names: list[str]) -> float:
    import anyio

    from gateway_anyio import Cluster

    async def session() -> float:
        state = {"n": 0, "t_ready": 0.0, "t_last": 0.0}
        async with Cluster(_gateway(url), intents=513, max_buffer=total + 100) as cluster:
            async with cluster.events(*names) as events:  # as an application subscribes
                await cluster.spawn(1)
                with anyio.fail_after(120):
                    async for _ in events:
                        state["n"] += 1
                        if state["n"] == 1:
                            state["t_ready"] = time.monotonic()
                        if state["n"] == total:
                            state["t_last"] = time.monotonic()
                            break
            await cluster.aclose()
        return (state["t_last"] - state["t_ready"]) / (total - 1)

    result: float = anyio.run(session, backend="asyncio")
    return result


# -- idle shards --------------------------------------------------------------------------


def idle(args: argparse.Namespace) -> None:
    import anyio

    from gateway_anyio import Cluster, Gateway
    from gateway_redis._keys import Keys
    from gateway_redis.commands import CommandApplier
    from gateway_redis.streams import EventPublisher, publish_cluster

    redis = RedisServer()
    fake = IdleFake(args.shards)
    cpu: dict[str, list[float]] = {
        "shards alone": [],
        "+ publisher": [],
        "+ publisher + commands": [],
    }

    def used() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    async def main() -> None:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        async with Cluster(gateway, intents=513, identify_window=0.05) as cluster:
            connected = 0
            async with cluster.events("READY") as ready:
                t0 = time.monotonic()
                await cluster.spawn(args.shards)
                with anyio.fail_after(600):
                    async for _ in ready:
                        connected += 1
                        if connected == args.shards:
                            break
            print(f"  {args.shards} shards READY in {time.monotonic() - t0:.1f} s", flush=True)
            await anyio.sleep(5)  # let the READY/GUILD_CREATE burst settle
            keys = Keys.for_token(TOKEN)
            for _ in range(args.rounds):
                for label, samples in cpu.items():
                    async with anyio.create_task_group() as tg:
                        if label != "shards alone":
                            tg.start_soon(publish_cluster, cluster, EventPublisher(redis.url, keys))
                        if label.endswith("commands"):
                            applier = CommandApplier(redis.url, keys)
                            tg.start_soon(applier.service, cluster)
                        await anyio.sleep(1)  # services started, groups created
                        before, t = used(), time.monotonic()
                        await anyio.sleep(args.window)
                        samples.append((used() - before) / (time.monotonic() - t))
                        tg.cancel_scope.cancel()
                    print(f"  {label:26s} {samples[-1] * 100:6.2f} % of a core", flush=True)
            reconnects = sum(sum(s.counters.reconnects.values()) for s in cluster.shards.values())
            print(f"  reconnects during the run: {reconnects}")
            await cluster.aclose()

    try:
        anyio.run(main, backend="asyncio")
    finally:
        fake.close()
        redis.close()
    base = statistics.median(cpu["shards alone"])
    print(f"idle: {args.shards} shards, windows of {args.window:g} s, median of {args.rounds}")
    for label, values in cpu.items():
        median = statistics.median(values)
        beyond = (median - base) * 100
        print(f"  {label:26s} {median * 100:6.2f} % of a core (beyond shards: {beyond:+.2f} %)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="recorded events (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--shards", type=int, default=1000, help="idle shards (default 1000)")
    parser.add_argument("--window", type=float, default=10.0, help="idle window, s (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="idle rounds (default 3)")
    parser.add_argument("--count", type=int, default=200, help="events per worker read (200)")
    parser.add_argument(
        "--events-per-entry",
        type=int,
        nargs="*",
        default=[50],
        help="broker contenders besides one event per entry: events packed per stream "
        "entry (default: 50; none: only one per entry)",
    )
    parser.add_argument("--only", choices=["throughput", "drain", "idle"], default=None)
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    if args.only in (None, "throughput"):
        throughput(args)
    if args.only in (None, "drain"):
        drain(args)
    if args.only in (None, "idle"):
        idle(args)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(main())
