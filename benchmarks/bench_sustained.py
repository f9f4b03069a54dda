"""Sustained load: one ``gateway_anyio`` shard at a steady rate for minutes; RSS must stay flat.

What runs: the paced replay server of ``benchmarks/_replay.py`` (a child process)
sends the recorded session (READY, GUILD_CREATEs, everyday events) at ``--rate``
dispatches per second, then its everyday events over and over, each repeat a valid
continuation of the connection (sequence numbers keep increasing, one deflate
context); heartbeats are ACKed as usual. One ``gateway_anyio`` Shard on asyncio
takes them with a plain handler for every dispatch name, for ``--sustained-seconds``.

Every ``--sample-every`` seconds it records this process's RSS (``/proc/self/statm``),
the dispatches handled so far and its CPU time (all threads; "CPU %" is of one core).
The report: the samples, the events/s achieved (overall and the slowest interval),
and the mean RSS of the first minute against the last minute (for runs shorter than
three minutes: the first and last third), with their difference. A shard that leaks,
or buffers what it cannot keep up with, shows it as a rising RSS; the rate shows
whether it kept up.

Run: ``.venv/bin/python benchmarks/bench_sustained.py [--sustained-seconds 300] [--rate 10000]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _replay import ReplayServer, encode_stream, load_corpus

TOKEN = "bench-token"

#: (seconds since READY, dispatches handled so far, RSS in bytes, CPU seconds of this process)
Sample = tuple[float, int, int, float]


def rss_bytes() -> int:
    """This process's resident set size now (Linux), else its peak (``ru_maxrss``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(url: str, names: list[str], seconds: float, every: float) -> tuple[list[Sample], int]:
    """Drive one shard for ``seconds`` after READY; return the samples and READYs seen."""
    import anyio

    from gateway_anyio import GatewayEvent, Shard

    samples: list[Sample] = []
    count = 0
    readies = 0
    ready = anyio.Event()

    def hook(event: GatewayEvent) -> None:
        nonlocal count, readies
        count += 1
        if event.name == "READY":
            readies += 1
            ready.set()

    async def session() -> None:
        sh = Shard(TOKEN, intents=513, url=url, rng=random.Random(0))
        for name in names:
            sh.on(name, hook)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sh.connect)
            with anyio.fail_after(60):
                await ready.wait()
            t0 = time.monotonic()
            samples.append((0.0, count, rss_bytes(), time.process_time()))
            deadline = t0 + seconds
            while (now := time.monotonic()) < deadline:
                await anyio.sleep(min(every - (now - t0) % every, deadline - now))
                samples.append((time.monotonic() - t0, count, rss_bytes(), time.process_time()))
            await sh.disconnect()

    anyio.run(session, backend="asyncio")
    return samples, readies


def report(samples: list[Sample], seconds: float, rate: float) -> list[str]:
    """The samples, the rate achieved and first- against last-window RSS, as lines."""
    mb = 1e6
    lines = [f"  {'t (s)':>7} {'events/s':>9} {'RSS (MB)':>9} {'CPU %':>6}"]
    rates = []
    for (t0, n0, _, c0), (t1, n1, rss, c1) in itertools.pairwise(samples):
        rates.append((n1 - n0) / (t1 - t0))
        lines.append(f"  {t1:7.1f} {rates[-1]:9,.0f} {rss / mb:9.1f} {(c1 - c0) / (t1 - t0):6.0%}")
    window = min(60.0, seconds / 3)
    # A window shorter than the sampling interval still holds its nearest sample.
    first = [s[2] for s in samples[1:] if s[0] <= window + 0.5] or [samples[1][2]]
    last = [s[2] for s in samples[1:] if s[0] >= samples[-1][0] - window - 0.5]
    last = last or [samples[-1][2]]
    elapsed = samples[-1][0]
    achieved = (samples[-1][1] - samples[0][1]) / elapsed
    cpu = (samples[-1][3] - samples[0][3]) / elapsed
    a, b = statistics.mean(first), statistics.mean(last)
    lines += [
        f"events/s achieved: {achieved:,.0f} overall (asked {rate:,.0f}), "
        f"slowest interval {min(rates):,.0f}; this process used {cpu:.0%} of one core",
        f"RSS, mean of the first {window:.0f} s: {a / mb:.1f} MB; of the last {window:.0f} s: "
        f"{b / mb:.1f} MB; change {(b - a) / mb:+.1f} MB ({(b - a) / a:+.1%})",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sustained-seconds", type=float, default=300.0, help="seconds after READY (300)"
    )
    parser.add_argument("--rate", type=float, default=10_000.0, help="dispatches/s (10000)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds (10)")
    parser.add_argument(
        "--events", type=int, default=20_000, help="everyday events in the recorded session"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the samples here")
    args = parser.parse_args(argv)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    session, source = load_corpus(seed=0, guilds=20, members_per_guild=200, events=args.events)
    stream = encode_stream(session)
    names = sorted(set(stream.names))
    with ReplayServer(session, stream, rate=args.rate) as server:
        samples, readies = run(server.url + "/", names, args.sustained_seconds, args.sample_every)
    print(
        f"one gateway_anyio Shard (asyncio, a handler per dispatch name) for "
        f"{args.sustained_seconds:.0f} s at {args.rate:,.0f} dispatches/s asked, from {source} "
        f"({len(stream.names):,} dispatches, then its everyday events again); "
        f"python {platform.python_version()}"
    )
    print("\n".join(report(samples, args.sustained_seconds, args.rate)))
    if args.json:
        out = {"rate": args.rate, "seconds": args.sustained_seconds, "samples": samples}
        Path(args.json).write_text(json.dumps(out), encoding="utf-8")
    if readies != 1:
        print(f"the shard saw {readies} READYs: it reconnected, the run does not count")
        return 1
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
