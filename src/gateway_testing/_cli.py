"""The fake gateway's command line: ``python -m gateway_testing`` and ``spectacles-gateway fake``.

One parser for both (:func:`add_arguments`): the flags, their defaults and their
checks are the same whichever way the fake is started. It prints one line with the
gateway URL, the REST base and the token, so a bot (or a script) can be pointed at
it. Exit status 0 after a clean stop (Ctrl-C included), 1 when it cannot listen,
2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anyio

from gateway_testing._gateway import FakeGateway
from gateway_testing._options import FakeOptionsDict

__all__ = ["ServeOptions", "add_arguments", "build_parser", "main", "parse_args", "serve"]

#: The token the fake accepts unless ``--token`` says otherwise.
DEFAULT_TOKEN = "offline-demo-token"  # not a secret: it only works on loopback
#: Dispatches per second: lively enough to watch, slow enough to read.
DEFAULT_RATE = 8.0
#: Payload records each connection of the served fake keeps (see ``history_limit``).
SERVER_HISTORY = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    """Validated settings of the fake gateway's command line.

    Attributes:
        host: the address to listen on.
        port: the TCP port (0 picks a free one; the banner line shows it).
        token: the token the fake accepts.
        shards: the shard count ``GET /gateway/bot`` recommends.
        rate: dispatches per second, across all shards.
        max_concurrency: identify buckets per 5 s window.
        heartbeat_interval: seconds, sent in HELLO.
        encoding: only accept this encoding (``None``: whatever the client asks).
        compress: only accept this compression (``None``: whatever the client asks).
        guilds_per_shard: guilds in each shard's READY.
        members_per_guild: members of each guild.
        seed: the seed of the deterministic event stream.
        duration: seconds to serve, or ``None`` to serve until interrupted.
        verbose: log connections.

    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str = DEFAULT_TOKEN
    shards: int = 1
    rate: float = DEFAULT_RATE
    max_concurrency: int = 1
    heartbeat_interval: float = 41.25
    encoding: Literal["json", "etf"] | None = None
    compress: Literal["zlib-stream", "zstd-stream", "none"] | None = None
    guilds_per_shard: int = 3
    members_per_guild: int = 50
    seed: int = 0
    duration: float | None = None
    verbose: bool = False

    def __repr__(self) -> str:
        # The token is a fake's, but reprs of options never carry tokens.
        return f"ServeOptions(host={self.host!r}, port={self.port}, shards={self.shards})"


def positive_float(text: str) -> float:
    """Parse a positive, finite number (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def duration_seconds(text: str) -> float:
    """Parse a duration: 0 (forever) or more seconds (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected 0 (forever) or more seconds, got {text!r}")
    return value


def tcp_port(text: str) -> int:
    """Parse a TCP port, 0 to 65535 (argparse ``type``)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0-65535, got {text!r}")
    return int(text)


def count(text: str) -> int:
    """Parse a whole number of at least 1 (argparse ``type``)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake gateway's flags to ``parser`` (both commands call this)."""
    d = ServeOptions()
    parser.add_argument("--host", default=d.host, help=f"address to bind (default: {d.host})")
    parser.add_argument(
        "--port",
        type=tcp_port,
        default=d.port,
        help=f"TCP port; 0 picks a free one (default: {d.port})",
    )
    parser.add_argument(
        "--token", default=d.token, help=f"the bot token the fake accepts (default: {d.token})"
    )
    parser.add_argument(
        "--shards", type=count, default=d.shards, help="recommended shard count (default: 1)"
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=d.rate,
        metavar="EVENTS_PER_S",
        help=f"dispatches per second over all sessions (default: {d.rate:g})",
    )
    parser.add_argument(
        "--max-concurrency",
        type=count,
        default=d.max_concurrency,
        help="identify buckets per 5 s window (default: 1)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=positive_float,
        default=d.heartbeat_interval,
        metavar="SECONDS",
        help=f"heartbeat interval sent in HELLO (default: {d.heartbeat_interval:g})",
    )
    parser.add_argument(
        "--encoding",
        choices=["json", "etf"],
        default=None,
        help="accept only this encoding (default: whatever the client asks for)",
    )
    parser.add_argument(
        "--compress",
        choices=["zlib-stream", "zstd-stream", "none"],
        default=None,
        help="accept only this compression (default: whatever the client asks for)",
    )
    parser.add_argument(
        "--guilds-per-shard",
        type=count,
        default=d.guilds_per_shard,
        help=f"guilds in each shard's READY (default: {d.guilds_per_shard})",
    )
    parser.add_argument(
        "--members-per-guild",
        type=count,
        default=d.members_per_guild,
        help=f"members of each guild (default: {d.members_per_guild})",
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="seed of the event stream (default: 0)"
    )
    parser.add_argument(
        "--duration",
        type=duration_seconds,
        default=0.0,
        metavar="SECONDS",
        help="stop after this long; 0 serves until Ctrl-C (default: 0)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections")


def options_from(ns: argparse.Namespace) -> ServeOptions:
    """Turn the parsed flags (see :func:`add_arguments`) into :class:`ServeOptions`."""
    return ServeOptions(
        host=ns.host,
        port=ns.port,
        token=ns.token,
        shards=ns.shards,
        rate=ns.rate,
        max_concurrency=ns.max_concurrency,
        heartbeat_interval=ns.heartbeat_interval,
        encoding=ns.encoding,
        compress=ns.compress,
        guilds_per_shard=ns.guilds_per_shard,
        members_per_guild=ns.members_per_guild,
        seed=ns.seed,
        duration=ns.duration or None,
        verbose=ns.verbose,
    )


def build_parser(prog: str = "python -m gateway_testing") -> argparse.ArgumentParser:
    """Build the parser of ``python -m gateway_testing``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a fake Discord gateway (WebSocket and GET /api/v10/gateway/bot) "
        "with a lively, deterministic event stream. Point a bot's API base at the "
        "printed REST URL and use the token given here. The same as `spectacles-gateway fake`.",
    )
    add_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ServeOptions:
    """Parse the command line (exit status 2 on bad input)."""
    return options_from(build_parser().parse_args(argv))


async def serve(options: ServeOptions) -> None:
    """Run the fake described by ``options`` until cancelled or ``duration`` elapsed."""
    kwargs: FakeOptionsDict = {
        "host": options.host,
        "port": options.port,
        "token": options.token,
        "shards": options.shards,
        "event_rate": options.rate,
        "heartbeat_interval": options.heartbeat_interval,
        "max_concurrency": options.max_concurrency,
        "guilds_per_shard": options.guilds_per_shard,
        "members_per_guild": options.members_per_guild,
        "seed": options.seed,
        # It may serve for weeks: keep a short history, not every payload ever sent.
        "history_limit": SERVER_HISTORY,
    }
    if options.encoding is not None:
        kwargs["encodings"] = (options.encoding,)
    if options.compress is not None:
        kwargs["compressions"] = (None if options.compress == "none" else options.compress,)
    async with FakeGateway(**kwargs) as fake:
        print(
            f"fake gateway listening: {fake.gateway_url}  (REST: {fake.api_base}, "
            f"token: {options.token})",
            flush=True,
        )
        if options.duration is not None:
            await anyio.sleep(options.duration)
        else:
            await anyio.sleep_forever()


def run(options: ServeOptions) -> int:
    """Serve until Ctrl-C or ``duration``; return the exit status."""
    logging.basicConfig(
        level=logging.DEBUG if options.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        anyio.run(serve, options)
    except KeyboardInterrupt:
        print("fake gateway: stopped", file=sys.stderr)
    except OSError as exc:
        print(
            f"fake gateway: cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gateway_testing``; return the exit status."""
    return run(parse_args(argv))
