"""``python -m gateway_testing``: serve a lively fake gateway until Ctrl-C (or ``--duration``).

Prints one line with the gateway URL, the REST base and the token, so a bot (or a
script) can be pointed at it. Exit status 0 after a clean stop (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from gateway_testing._options import FakeOptionsDict
from gateway_testing._server import FakeGateway

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway_testing",
        description="Serve a fake Discord gateway (API v10) with a lively, deterministic "
        "stream of events. Point a bot's REST base at the printed URL.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="TCP port, 0 for any (default: 8765)"
    )
    parser.add_argument("--token", default="offline-demo-token", help="the bot token accepted")
    parser.add_argument("--shards", type=int, default=1, help="recommended shard count")
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        metavar="EVENTS_PER_S",
        help="dispatches per second over all sessions (default: 5)",
    )
    parser.add_argument(
        "--encoding",
        choices=["json", "etf"],
        default=None,
        help="serve only this encoding (default: what the client asks for)",
    )
    parser.add_argument(
        "--compress",
        choices=["zlib-stream", "zstd-stream", "none"],
        default=None,
        help="serve only this compression (default: any)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=41.25,
        metavar="SECONDS",
        help="heartbeat interval sent in HELLO (default: 41.25)",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=1, help="identify buckets per 5 s (default: 1)"
    )
    parser.add_argument("--guilds-per-shard", type=int, default=3)
    parser.add_argument("--members-per-guild", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seed of the event stream")
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop after this long; 0 serves until Ctrl-C",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.shards < 1 or args.heartbeat_interval <= 0:
        parser.error("--rate, --shards and --heartbeat-interval must be positive")
    return args


#: Payload records each connection of the served fake keeps (see ``history_limit``).
SERVER_HISTORY = 100


async def serve(args: argparse.Namespace) -> None:
    """Run the fake described by ``args`` until cancelled or ``--duration`` elapsed."""
    options: FakeOptionsDict = {
        "host": args.host,
        "port": args.port,
        "token": args.token,
        "shards": args.shards,
        "event_rate": args.rate,
        "heartbeat_interval": args.heartbeat_interval,
        "max_concurrency": args.max_concurrency,
        "guilds_per_shard": args.guilds_per_shard,
        "members_per_guild": args.members_per_guild,
        "seed": args.seed,
        # It may serve for weeks: keep a short history, not every payload ever sent.
        "history_limit": SERVER_HISTORY,
    }
    if args.encoding is not None:
        options["encodings"] = (args.encoding,)
    if args.compress is not None:
        options["compressions"] = (None if args.compress == "none" else args.compress,)
    async with FakeGateway(**options) as fake:
        print(
            f"fake gateway listening: {fake.gateway_url}  (REST: {fake.api_base}, "
            f"token: {args.token})",
            flush=True,
        )
        if args.duration > 0:
            await anyio.sleep(args.duration)
        else:
            await anyio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gateway_testing``; return the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        anyio.run(serve, args)
    except KeyboardInterrupt:
        print("fake gateway: stopped", file=sys.stderr)
    except OSError as exc:
        print(f"fake gateway: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
