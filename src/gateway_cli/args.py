"""Command-line parsing and validation for ``spectacles-gateway``.

Theory of operation: argparse reads the words, and small pure functions
(``values.py``) turn them into validated values (:class:`ShardSpec`, an intents
bitfield, event names). Every bad input ends as one line on stderr and exit
status 2 (argparse's ``error``), never a traceback. Settings that depend on each
other (offline vs. Discord, the default duration) are resolved once, here, into a
frozen :class:`ListenOptions` (``options.py``), so the wiring (``run.py``,
``listen*.py``) never re-checks user input.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence

from gateway_proto import __version__
from gateway_proto.driver_support import API_BASE_ENV
from gateway_proto.intents import Intents
from gateway_testing._cli import ServeOptions
from gateway_testing._cli import add_arguments as add_fake_arguments
from gateway_testing._cli import duration_seconds as _duration
from gateway_testing._cli import options_from as fake_options_from
from gateway_testing._cli import positive_float as _positive_float

from .options import DEFAULT_OFFLINE_DURATION, DEFAULT_OFFLINE_RATE, ListenOptions
from .redis_run import RunOptions, add_run_parser, run_options
from .values import (
    OFFLINE_TOKEN,
    STATUS_DEFAULT_HOST,
    ShardSpec,
    _require_module,
    _wrap,
    add_status_argument,
    intent_names,
    parse_event_names,
    parse_intents,
    parse_shards,
    parse_status_address,
    parse_user_agent,
    privileged_names,
    status_settings,
    unknown_event_warnings,
)
from .worker import WorkerOptions, add_worker_parser, worker_options

# Also the names that moved to values.py and options.py, still importable from here.
__all__ = [
    "DEFAULT_OFFLINE_DURATION",
    "DEFAULT_OFFLINE_RATE",
    "OFFLINE_TOKEN",
    "STATUS_DEFAULT_HOST",
    "ListenOptions",
    "ServeOptions",
    "ShardSpec",
    "build_parser",
    "intent_names",
    "parse_args",
    "parse_event_names",
    "parse_intents",
    "parse_shards",
    "parse_status_address",
    "privileged_names",
    "unknown_event_warnings",
]

#: Seconds an offline demo runs unless ``--duration`` says otherwise, so that the
#: README's demo command ends by itself on a fresh machine.


def _intents_help() -> str:
    names = []
    privileged = Intents.privileged()
    for member in Intents:
        assert member.name is not None  # every member is a single named bit
        label = member.name.lower()
        if member & privileged:
            label += " (PRIVILEGED)"
        names.append(label)
    return (
        "comma-separated intent names, case-insensitive, or a number; the groups "
        "'default' (every non-privileged intent; the default), 'privileged' and 'all' "
        "also work. Privileged intents must be enabled for the bot in the Developer "
        "Portal, or Discord closes with 4014. Names: " + ", ".join(names)
    )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exactly one line on stderr.

    argparse prints the whole usage block before the message; one line is easier to
    read in a terminal and to match in scripts (``--help`` still shows the usage).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


_EPILOG = """\
examples:
  spectacles-gateway listen                         offline demo (embedded fake gateway, 20 s)
  spectacles-gateway listen --duration 0            offline demo until Ctrl-C
  DISCORD_TOKEN=... spectacles-gateway listen       connect to Discord
  spectacles-gateway listen --jsonl --events MESSAGE_CREATE | jq .data.content
  spectacles-gateway fake --port 8765 --shards 4    a fake gateway for your own bot's tests
  spectacles-gateway run --redis redis://127.0.0.1:6379/0 --shards 0-3/8
                                                    a gateway process of many (Redis leases)
  spectacles-gateway worker --redis redis://localhost:6379/0 --events MESSAGE_CREATE
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``spectacles-gateway`` argument parser."""
    parser = _Parser(
        prog="spectacles-gateway",
        description="Connect shards to the Discord gateway and print events, "
        "or run a local fake gateway.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_listen(sub)
    _add_fake(sub)
    add_run_parser(sub)  # redis-leases: the `run` subcommand (its own module)
    add_worker_parser(sub)  # redis-streams: the `worker` subcommand (its own module)
    return parser


def _add_listen(sub: argparse._SubParsersAction[_Parser]) -> None:
    listen = sub.add_parser(
        "listen",
        help="connect shards and print events (offline against a fake gateway without a token)",
        description="Connect shards and print their events. Without a token (--token or "
        "DISCORD_TOKEN) it starts an embedded fake gateway on loopback and connects to "
        f"it, and stops after {DEFAULT_OFFLINE_DURATION:g} s unless --duration says otherwise.",
    )
    conn = listen.add_argument_group("connection")
    conn.add_argument(
        "--token",
        help="bot token (default: $DISCORD_TOKEN; without either, run offline)",
    )
    conn.add_argument(
        "--offline",
        action="store_true",
        help="use the embedded fake gateway even if DISCORD_TOKEN is set",
    )
    conn.add_argument(
        "--api-base",
        metavar="URL",
        help="REST base that serves GET /gateway/bot (default: Discord's); point it at "
        "a running `spectacles-gateway fake` (e.g. http://127.0.0.1:8765/api/v10). Needs a token",
    )
    conn.add_argument(
        "--user-agent",
        type=_wrap(parse_user_agent),
        default=None,
        metavar="TEXT",
        help="User-Agent for REST and the WebSocket upgrade "
        "(default: DiscordBot (URL, version), Discord's form)",
    )
    conn.add_argument(
        "--shards",
        type=_wrap(parse_shards),
        default=None,
        metavar="auto|N|A-B/TOTAL",
        help="shards to run: 'auto' (the count Discord recommends; the default), N shards, "
        "or the ids A..B of TOTAL (e.g. 0-3/16 on this machine, 4-7/16 on the next)",
    )
    conn.add_argument("--intents", type=_wrap(parse_intents), default=None, help=_intents_help())
    conn.add_argument("--encoding", choices=["json", "etf"], default="json", help="default: json")
    conn.add_argument(
        "--compress",
        choices=["zlib-stream", "zstd-stream", "none"],
        default="zlib-stream",
        help="transport compression (default: zlib-stream)",
    )
    conn.add_argument(
        "--driver",
        choices=["anyio", "sync"],
        default="anyio",
        help="anyio (async; the default) or sync (threads and blocking sockets)",
    )
    conn.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default=None,
        help="event loop of the anyio driver (default: asyncio)",
    )
    out = listen.add_argument_group("output")
    out.add_argument(
        "--events",
        type=_wrap(parse_event_names),
        default=None,
        metavar="NAME,...",
        help="only show these dispatches (e.g. MESSAGE_CREATE,GUILD_CREATE)",
    )
    out.add_argument(
        "--jsonl",
        action="store_true",
        help="print one JSON object per event on stdout: "
        '{"shard": 0, "seq": 5, "event": "MESSAGE_CREATE", "data": {...}}',
    )
    add_status_argument(out)
    out.add_argument(
        "--status-interval",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between status lines (default: 5)",
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log what the library does (connections, state changes, retries) to stderr",
    )
    run = listen.add_argument_group("run")
    run.add_argument(
        "--duration",
        type=_duration,
        default=None,
        metavar="SECONDS",
        help=f"stop cleanly after this long; 0 runs until Ctrl-C (default: "
        f"{DEFAULT_OFFLINE_DURATION:g} offline, 0 with a token)",
    )
    run.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_OFFLINE_RATE,
        metavar="EVENTS_PER_S",
        help=f"offline only: events per second of the embedded fake gateway "
        f"(default: {DEFAULT_OFFLINE_RATE:g})",
    )


def _add_fake(sub: argparse._SubParsersAction[_Parser]) -> None:
    fake = sub.add_parser(
        "fake",
        help="run a fake Discord gateway on loopback, for testing your own bot",
        description="Serve a fake Discord gateway (WebSocket and GET /api/v10/gateway/bot) "
        "with a lively, deterministic event stream. Point your bot's API base at "
        "http://HOST:PORT/api/v10 and use the --token given here. The same command as "
        "`python -m gateway_testing` (one parser, the same flags and defaults).",
    )
    add_fake_arguments(fake)


def parse_args(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ListenOptions | ServeOptions | RunOptions | WorkerOptions:
    """Parse and validate a command line; exit with status 2 on bad input.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        environ: the environment to read ``DISCORD_TOKEN`` from (default: ``os.environ``).

    """
    parser = build_parser()
    ns = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    if ns.command == "run":
        return run_options(parser, ns, env)
    if ns.command == "worker":
        return worker_options(parser, ns, env)
    if ns.command == "fake":
        return fake_options_from(ns)
    return _listen_options(parser, ns, env)


def _listen_options(
    parser: argparse.ArgumentParser, ns: argparse.Namespace, env: Mapping[str, str]
) -> ListenOptions:
    if ns.offline and ns.token is not None:
        parser.error("--offline and --token contradict each other; pick one")
    token: str | None = None if ns.offline else (ns.token or env.get("DISCORD_TOKEN") or None)
    if ns.token is not None and not ns.token.strip():
        parser.error("--token is empty")
    if token is not None:
        token = token.strip()
        token = token.removeprefix("Bot ")
    offline = token is None
    if ns.api_base is not None and offline:
        parser.error(
            "--api-base needs a token: pass --token or set DISCORD_TOKEN "
            "(a `spectacles-gateway fake` accepts the one given with its --token)"
        )
    # As the library does: --api-base, else DISCORD_API_BASE (with a token: offline
    # runs use their embedded fake), else Discord's.
    api_base = ns.api_base
    if api_base is None and not offline:
        api_base = env.get(API_BASE_ENV) or None
    if api_base is not None and not api_base.startswith(("http://", "https://")):
        parser.error(f"--api-base must be an http:// or https:// URL, got {api_base!r}")
    if ns.backend is not None and ns.driver == "sync":
        parser.error("--backend applies to --driver anyio only")
    if ns.compress == "zstd-stream":
        _require_module(parser, "zstandard", "--compress zstd-stream", "zstd")
    if ns.encoding == "etf":
        _require_module(parser, "erlpack", "--encoding etf", "etf")
    if ns.backend == "trio":
        _require_module(parser, "trio", "--backend trio", "trio")
    status, status_address = status_settings(parser, ns.status)
    duration = ns.duration
    if duration is None:
        duration = DEFAULT_OFFLINE_DURATION if offline else 0.0
    return ListenOptions(
        token=token,
        offline=offline,
        api_base=api_base,
        shards=ns.shards if ns.shards is not None else ShardSpec(count=None),
        intents=int(ns.intents if ns.intents is not None else Intents.default()),
        encoding=ns.encoding,
        compress=ns.compress,
        events=ns.events,
        jsonl=ns.jsonl,
        driver=ns.driver,
        backend=ns.backend or "asyncio",
        duration=duration or None,
        rate=ns.rate,
        status=status,
        status_interval=ns.status_interval,
        status_address=status_address,
        verbose=ns.verbose,
        user_agent=ns.user_agent,
    )
