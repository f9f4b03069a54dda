"""Every benchmark in one run, one report: what ``scripts/bench.sh`` runs in the peers venv.

Steps, in order, each a child process of this interpreter (so one step's memory and
threads never colour the next):

1. ``bench_core.py``: the core alone against the in-memory floor (orjson only).
2. ``bench_anyio.py``: the full stack over loopback, every runner interleaved over
   the same recorded stream (floor, core alone, bare websockets, gateway_anyio on
   asyncio and trio, gateway_sync, hikari's shard, discord.py's gateway layer).
3. ``bench_idle.py``: idle shards in one process: gateway_anyio and hikari's shard
   1,000 each, in turn window by window (``--alternate``; hikari's row is n/a with
   the reason when hikari is not installed); then gateway_sync 500.
4. ``bench_sustained.py``: one gateway_anyio shard at 10,000 dispatches/s for five
   minutes; RSS and the rate achieved.

The report (Markdown) starts with the machine, the versions and a summary against
issue 12's targets, computed from the steps' own figures (median of the per-round
ratios, with min and max); then each step's command, wall time, load average and
output as printed. It goes to stdout and to ``benchmarks/.data/`` (ignored by git).
Progress goes to stderr. ``--quick`` runs a smaller version of every step (a few
minutes; for checking that everything runs, not for publishing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers import _version, machine_details

HERE = Path(__file__).resolve().parent

STEPS = ("core", "stack", "idle", "sustained")


@dataclass
class Step:
    """One child run: its title, arguments and what came of it."""

    key: str
    title: str
    argv: list[str]
    skip: str = ""
    output: str = ""
    code: int | None = None
    seconds: float = 0.0
    load: tuple[str, str] = ("", "")
    data: dict[str, Any] = field(default_factory=dict)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def plan(args: argparse.Namespace, scratch: Path) -> list[Step]:
    """The steps to run, with full or ``--quick`` settings."""
    quick = args.quick
    py = [sys.executable]
    core = ["--only", "orjson", "--events", "10000", "--repeat", "3"] if quick else [
        "--only", "orjson", "--repeat", "7"
    ]  # fmt: skip
    stack = (
        ["--events", "10000", "--repeat", "3"] if quick else ["--events", "20000", "--repeat", "11"]
    )
    # One heartbeat interval per window: hikari's shards heartbeat in step (no jitter),
    # so a window of any other length catches some or none of their beats.
    idle = ["--window", "10", "--rounds", "1"] if quick else ["--window", "41.25", "--rounds", "2"]
    shards = {"anyio,hikari": 200, "sync": 100} if quick else {"anyio,hikari": 1000, "sync": 500}
    seconds = args.sustained_seconds or (60 if quick else 300)
    sustained = ["--sustained-seconds", str(seconds), "--rate", "10000"]
    sustained += ["--sample-every", "5", "--events", "5000"] if quick else ["--sample-every", "10"]
    steps = [
        Step("core", "The core alone: bench_core.py", [*py, str(HERE / "bench_core.py"), *core]),
        Step(
            "stack",
            "Full stack, every runner interleaved: bench_anyio.py",
            [*py, str(HERE / "bench_anyio.py"), *stack, "--json", str(scratch / "stack.json")],
        ),
    ]
    idle_script = HERE / "bench_idle.py"
    for drivers, n in shards.items():
        json_path = scratch / f"idle_{drivers.split(',')[0]}.json"
        argv = [*py, str(idle_script), "--shards", str(n), "--driver", drivers, *idle]
        argv += ["--json", str(json_path)]
        if "," in drivers:  # anyio and hikari child by child: their windows pair up in time
            argv.append("--alternate")
        names = " and ".join(d if d == "hikari" else f"gateway_{d}" for d in drivers.split(","))
        step = Step("idle", f"Idle shards, {names} x {n:,}: bench_idle.py", argv)
        if not idle_script.exists():
            step.skip = "benchmarks/bench_idle.py is not there (yet): the idle runs are skipped"
        steps.append(step)
    steps.append(
        Step(
            "sustained",
            f"Sustained, one gateway_anyio shard at 10,000 events/s for {seconds:g} s: "
            "bench_sustained.py",
            [
                *py,
                str(HERE / "bench_sustained.py"),
                *sustained,
                "--json",
                str(scratch / "sustained.json"),
            ],
        )
    )
    return [s for s in steps if s.key in args.only]


def run(step: Step, scratch: Path) -> None:
    """Run one step, keeping its output; its JSON (if it writes one) goes to ``data``."""
    if step.skip:
        print(f"-- {step.title}: skipped ({step.skip})", file=sys.stderr, flush=True)
        return
    print(f"-- {step.title} ...", file=sys.stderr, flush=True)
    before = _load()
    t0 = time.perf_counter()
    proc = subprocess.run(
        step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    step.seconds = time.perf_counter() - t0
    step.output, step.code, step.load = proc.stdout, proc.returncode, (before, _load())
    status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    print(f"   {status} in {step.seconds:.0f} s", file=sys.stderr, flush=True)
    if "--json" in step.argv:
        path = Path(step.argv[step.argv.index("--json") + 1])
        with contextlib.suppress(OSError, ValueError):
            step.data = json.loads(path.read_text(encoding="utf-8"))


def _ratio_row(
    rounds: dict[str, Any], label: str, target: float | None, a: str, b: str
) -> list[str]:
    """``a`` / ``b`` round by round against ``target`` (``None``: shown, not a target)."""
    wanted = "(not a target)" if target is None else f">= {target:.2f}x"
    if a not in rounds or b not in rounds:
        return [label, wanted, "n/a (a runner did not run)", ""]
    ratios = sorted(
        x / y for x, y in zip(rounds[a]["events_per_s"], rounds[b]["events_per_s"], strict=True)
    )
    median = statistics.median(ratios)
    spread = f"{ratios[0]:.2f}x / **{median:.2f}x** / {ratios[-1]:.2f}x"
    met = "" if target is None else "yes" if median >= target else "no"
    return [label, wanted, spread, met]


def _spread(values: list[float], fmt: str, target: float) -> tuple[str, str]:
    """min / **median** / max of ``values`` and whether the median is at most ``target``."""
    values = sorted(values)
    median = statistics.median(values)
    spread = f"{fmt.format(values[0])} / **{fmt.format(median)}** / {fmt.format(values[-1])}"
    return spread, "yes" if median <= target else "no"


def idle_rows(steps: list[Step]) -> list[list[str]]:
    """Idle CPU and RSS against the targets; anyio against hikari window by window."""
    rows: list[list[str]] = []
    for step in steps:
        if step.key != "idle" or not step.data:
            continue
        for driver, r in step.data.items():
            if driver == "hikari" or "unavailable" in r:
                continue
            limit = 1.0 if driver == "sync" else 0.5
            name = f"idle: gateway_{driver} x {r['shards']:,}"
            cpu = [c * 100 for c in r["cpu"]]
            spread = _spread(cpu, "{:.2f}", limit)
            rows.append([f"{name}, % of one core", f"<= {limit:g} %", *spread])
            rss = [x / 1024 for x in r["rss_per_shard"]]
            if driver == "sync":  # issue 12 sets no memory target for threads (docs/sync.md)
                rows.append([f"{name}, RSS per shard", "none", _spread(rss, "{:.0f}", 0)[0], "-"])
            else:
                rows.append([f"{name}, RSS per shard", "<= 100 KB", *_spread(rss, "{:.0f}", 100)])
        anyio, hikari = step.data.get("anyio"), step.data.get("hikari")
        if anyio is None or hikari is None or "unavailable" in anyio:
            continue
        label = f"idle: gateway_anyio CPU / hikari's, x {anyio['shards']:,} each"
        if "unavailable" in hikari:
            rows.append([label, "<= 1.00x", f"n/a ({hikari['unavailable']})", ""])
            continue
        # Window i of one against window i of the other: with --alternate, neighbours in time.
        ratios = [a / h for a, h in zip(anyio["cpu"], hikari["cpu"], strict=False) if h > 0]
        if ratios:
            rows.append([label, "<= 1.00x", *_spread(ratios, "{:.2f}x", 1.0)])
    return rows


def summary(steps: list[Step]) -> list[str]:
    """Issue 12's targets next to what this run measured."""
    rows: list[list[str]] = []
    stack = next((s.data for s in steps if s.key == "stack" and s.data), None)
    if stack:
        r, floor, hikari = stack["rounds"], stack["floor"], stack["hikari"]
        anyio, trio = (
            "gateway_anyio Shard, handler (asyncio)",
            "gateway_anyio Shard, handler (trio)",
        )
        stream = "gateway_anyio Shard, events() (asyncio)"
        sync, sync_inline = (
            "gateway_sync Shard, handler (thread)",
            "gateway_sync Shard, inline handler (thread)",
        )
        core = "core alone, no I/O (GatewayConnection)"
        floor_ng, stdlib = stack["floor_ng"], stack["stdlib_zlib"]
        checks: list[tuple[str, float | None, str, str]] = [
            ("gateway_anyio (asyncio) / in-memory floor", 0.80, anyio, floor),
            ("gateway_anyio (asyncio) / hikari's shard", 1.15, anyio, hikari),
            ("gateway_anyio (trio) / in-memory floor", 0.70, trio, floor),
            ("gateway_anyio events() / handler (asyncio)", 1.00, stream, anyio),
            # The blocking shard itself (its handler on its own I/O thread) against
            # anyio; a worker thread for handlers must not halve that.
            ("gateway_sync inline handler / gateway_anyio handler", 1.00, sync_inline, anyio),
            ("gateway_sync handler thread / its inline handler", 0.50, sync, sync_inline),
            ("core alone / in-memory floor", 0.90, core, floor),
            # Not targets: the handoff to a handler thread against anyio (the two
            # threads share one GIL), and what zlib-ng (the speed extra) is worth.
            ("gateway_sync handler thread / gateway_anyio handler", None, sync, anyio),
            ("without zlib-ng: gateway_anyio (asyncio) / hikari's shard", None, stdlib, hikari),
            ("gateway_anyio (asyncio) / in-memory floor with zlib-ng", None, anyio, floor_ng),
        ]
        for label, target, a, b in checks:
            rows.append(_ratio_row(r, label, target, a, b))
    sustained = next((s.data for s in steps if s.key == "sustained" and s.data), None)
    if sustained and len(sustained["samples"]) > 2:
        samples, rate = sustained["samples"], sustained["rate"]
        elapsed = samples[-1][0]
        achieved = (samples[-1][1] - samples[0][1]) / elapsed
        window = min(60.0, sustained["seconds"] / 3)
        first = statistics.mean(
            [s[2] for s in samples[1:] if s[0] <= window + 0.5] or [samples[1][2]]
        )
        last = statistics.mean(
            [s[2] for s in samples[1:] if s[0] >= elapsed - window - 0.5] or [samples[-1][2]]
        )
        change = (last - first) / first
        rows.append(
            [
                "sustained: events/s achieved / asked",
                ">= 0.98x",
                f"{achieved / rate:.2f}x ({achieved:,.0f}/s)",
                "yes" if achieved >= 0.98 * rate else "no",
            ]
        )
        rows.append(
            [
                f"sustained: RSS, last {window:.0f} s against first {window:.0f} s",
                "flat (within 5 %)",
                f"{first / 1e6:.1f} -> {last / 1e6:.1f} MB ({change:+.1%})",
                "yes" if abs(change) <= 0.05 else "no",
            ]
        )
    rows += idle_rows(steps)
    if not rows:
        return ["(no figures to summarise)"]
    lines = ["| measure | target | min / median / max | met (median) |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines.append("")
    lines.append(
        "Idle rows: min / median / max over the plain windows (CPU is the process's, "
        "% of one core); anyio / hikari pairs each anyio window with the hikari window "
        "of the same round (the two alternate). What woke: the idle step's output below."
    )
    return lines


def report(
    args: argparse.Namespace, steps: list[Step], started: str, machine: list[str], wall: float
) -> str:
    """The whole report, Markdown."""
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    mode = "--quick (a check that everything runs; do not publish)" if args.quick else "full"
    out = [
        f"# Benchmark report: scripts/bench.sh, {mode}",
        "",
        f"started {started}, wall time {wall / 60:.1f} min, commit {commit}",
        "",
        *(f"- {line}" for line in machine),
        f"- also: trio {_version('trio')}",
        f"- load average at end: {_load()}",
        "",
        "## Summary against issue 12's targets",
        "",
        *summary(steps),
    ]
    for i, step in enumerate(steps, start=1):
        out += ["", f"## {i}. {step.title}", ""]
        if step.skip:
            out.append(f"skipped: {step.skip}")
            continue
        shown = step.argv[: step.argv.index("--json")] if "--json" in step.argv else step.argv
        command = " ".join(
            "python" if a == sys.executable else os.path.relpath(a) if "/" in a else a
            for a in shown
        )
        status = "" if step.code == 0 else f", FAILED (exit {step.code})"
        out += [
            f"`{command}`: {step.seconds:.0f} s, load average {step.load[0]} before, "
            f"{step.load[1]} after{status}",
            "",
            "```",
            step.output.rstrip(),
            "```",
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few-minute version of every step")
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help=f"comma-separated steps to run, from {', '.join(STEPS)} (default: all)",
    )
    parser.add_argument(
        "--sustained-seconds",
        type=float,
        default=0,
        help="length of the sustained run (default 300, 60 with --quick)",
    )
    parser.add_argument("--out", help="write the report here too (default: benchmarks/.data/)")
    args = parser.parse_args(argv)
    args.only = {w.strip() for w in args.only.split(",") if w.strip()}
    if args.only - set(STEPS):
        parser.error(f"unknown step(s): {', '.join(sorted(args.only - set(STEPS)))}")

    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    machine = machine_details()  # with the load average before anything runs
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_all_") as scratch:
        steps = plan(args, Path(scratch))
        for step in steps:
            run(step, Path(scratch))
    text = report(args, steps, started, machine, time.perf_counter() - t0)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or HERE / ".data" / f"report-{stamp}{'-quick' if args.quick else ''}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"(report saved to {out})", file=sys.stderr)
    return 0 if all(s.code in (0, None) for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
