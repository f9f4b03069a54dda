"""Command-line parsing and validation for ``spectacles-gateway``.

Theory of operation: argparse reads the words, and small pure functions turn them
into validated values (:class:`ShardSpec`, an intents bitfield, event names). Every
bad input ends as one line on stderr and exit status 2 (argparse's ``error``),
never a traceback. Settings that depend on each other (offline vs. Discord, the
default duration) are resolved once, here, into a frozen :class:`ListenOptions`, so
the wiring in ``run.py`` never re-checks user input.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from gateway_proto import __version__
from gateway_proto.config import check_user_agent
from gateway_proto.driver_support import API_BASE_ENV
from gateway_proto.errors import LocalProtocolError
from gateway_proto.intents import Intents
from gateway_testing._cli import DEFAULT_TOKEN, ServeOptions
from gateway_testing._cli import add_arguments as add_fake_arguments
from gateway_testing._cli import duration_seconds as _duration
from gateway_testing._cli import options_from as fake_options_from
from gateway_testing._cli import positive_float as _positive_float

from .redis_run import RunOptions, add_run_parser, run_options
from .worker import WorkerOptions, add_worker_parser, worker_options

__all__ = [
    "DEFAULT_OFFLINE_DURATION",
    "DEFAULT_OFFLINE_RATE",
    "ListenOptions",
    "ServeOptions",
    "ShardSpec",
    "build_parser",
    "parse_args",
    "parse_event_names",
    "parse_intents",
    "parse_shards",
]

#: Seconds an offline demo runs unless ``--duration`` says otherwise, so that the
#: README's demo command ends by itself on a fresh machine.
DEFAULT_OFFLINE_DURATION = 20.0
#: Events per second the embedded fake gateway emits: lively enough to watch, slow
#: enough to read.
DEFAULT_OFFLINE_RATE = 8.0
#: The token the embedded fake gateway accepts; it never leaves the machine.
OFFLINE_TOKEN = DEFAULT_TOKEN  # the fake's: not a secret, it only works on loopback

Encoding = Literal["json", "etf"]
Compress = Literal["zlib-stream", "zstd-stream", "none"]
Driver = Literal["anyio", "sync"]
Backend = Literal["asyncio", "trio"]

_T = TypeVar("_T")

_SHARD_RANGE = re.compile(r"^(\d+)(?:-(\d+))?/(\d+)$")
#: ``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``.
_ADDRESS = re.compile(r"^(?:(\[[^\]]*\]|[^:\[\]]*):)?(\d+)$")
#: The status page's host when ``--status`` names only a port: loopback, never more
#: unless the user says so.
STATUS_DEFAULT_HOST = "127.0.0.1"
_DISPLAY_MODES = ("auto", "on", "off")
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Which shards to run, as ``--shards`` gave it.

    Attributes:
        count: the total shard count (``None`` for ``auto``: ask ``GET /gateway/bot``).
        ids: the shard ids to run in this process (``None``: all of ``count``).

    """

    count: int | None
    ids: tuple[int, ...] | None = None

    @property
    def is_auto(self) -> bool:
        """Whether the shard count comes from ``GET /gateway/bot``."""
        return self.count is None

    def shard_ids(self, count: int) -> tuple[int, ...]:
        """Return the ids to run once the total ``count`` is known."""
        return self.ids if self.ids is not None else tuple(range(count))

    def __str__(self) -> str:
        if self.count is None:
            return "auto"
        if self.ids is None:
            return str(self.count)
        return f"{self.ids[0]}-{self.ids[-1]}/{self.count}"


def parse_shards(text: str) -> ShardSpec:
    """Parse ``auto``, ``N`` or ``A-B/TOTAL`` (also ``A/TOTAL`` for one shard).

    Raises:
        ValueError: with a one-line explanation.

    """
    value = text.strip().lower()
    if value == "auto":
        return ShardSpec(count=None)
    if value.isdigit():
        count = int(value)
        if count < 1:
            raise ValueError("shard count must be at least 1")
        return ShardSpec(count=count)
    match = _SHARD_RANGE.match(value)
    if match is None:
        raise ValueError(f"expected auto, N or A-B/TOTAL (e.g. 0-3/16), got {text!r}")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    total = int(match.group(3))
    if total < 1:
        raise ValueError("shard total must be at least 1")
    if first > last:
        raise ValueError(f"shard range {text!r} runs backwards ({first} > {last})")
    if last >= total:
        raise ValueError(f"shard ids go from 0 to {total - 1} when TOTAL is {total}, got {text!r}")
    return ShardSpec(count=total, ids=tuple(range(first, last + 1)))


def parse_status_address(text: str) -> tuple[str, int]:
    """Parse a status page address: ``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``.

    Without a host it is :data:`STATUS_DEFAULT_HOST` (loopback); port 0 picks a free one.

    Raises:
        ValueError: with a one-line explanation.

    """
    match = _ADDRESS.match(text.strip())
    if match is None:
        raise ValueError(
            f"expected auto, on, off or a status page address [HOST:]PORT "
            f"(e.g. 127.0.0.1:8080), got {text!r}"
        )
    host = (match.group(1) or "").removeprefix("[").removesuffix("]")
    port = int(match.group(2))
    if port > 65535:
        raise ValueError(f"the status page's port must be 0-65535, got {port}")
    return host or STATUS_DEFAULT_HOST, port


def parse_status(text: str) -> str | tuple[str, int]:
    """Parse one ``--status``: a display mode (``auto``, ``on``, ``off``) or an address."""
    value = text.strip().lower()
    if value in _DISPLAY_MODES:
        return value
    return parse_status_address(text)


def add_status_argument(group: Any) -> None:
    """Add ``--status`` (display mode and/or status page address) to a command's parser."""
    group.add_argument(
        "--status",
        type=_wrap(parse_status),
        action="append",
        default=None,
        metavar="auto|on|off|[HOST:]PORT",
        help="auto|on|off: progress and periodic status on stderr ('auto', the default, "
        "shows them when stdout and stderr are terminals). [HOST:]PORT: also serve the "
        "status page, /metrics, /livez and /readyz there (needs the [status] extra; "
        f"HOST defaults to {STATUS_DEFAULT_HOST}, port 0 picks a free one). Give both "
        "with two --status options",
    )


def status_settings(
    parser: argparse.ArgumentParser, values: list[str | tuple[str, int]] | None
) -> tuple[Literal["auto", "on", "off"], tuple[str, int] | None]:
    """Split the ``--status`` values into the display mode and the status page address."""
    modes = [v for v in values or () if isinstance(v, str)]
    addresses = [v for v in values or () if isinstance(v, tuple)]
    if len(set(modes)) > 1:
        parser.error(f"--status {modes[0]} and --status {modes[1]} contradict each other")
    if len(set(addresses)) > 1:
        parser.error("--status names two status page addresses; the page is served once")
    if addresses:
        option = "--status [HOST:]PORT"
        _require_module(parser, "hypercorn", option, "status")
        _require_module(parser, "prometheus_client", option, "status")
    mode = cast('Literal["auto", "on", "off"]', modes[0] if modes else "auto")
    return mode, (addresses[0] if addresses else None)


def parse_intents(text: str) -> Intents:
    """Parse ``--intents``: comma-separated names, case-insensitive, or a number.

    Raises:
        ValueError: on an unknown name (one line, listing the valid names).

    """
    stripped = text.strip()
    if stripped.isdigit():
        value = int(stripped)
        unknown = value & ~int(Intents.all())
        if unknown:
            raise ValueError(f"intents {value} sets undocumented bits ({unknown:#x})")
        return Intents(value)
    if not stripped.replace(",", "").strip():
        raise ValueError("--intents is empty; name at least one intent (or 'default')")
    return Intents.from_names(stripped)


def intent_names(intents: int) -> list[str]:
    """Return the lowercase names of the intents set in ``intents``."""
    return [m.name.lower() for m in Intents if m.name is not None and intents & m.value]


def privileged_names(intents: int) -> list[str]:
    """Return the lowercase names of the privileged intents set in ``intents``."""
    return intent_names(intents & int(Intents.privileged()))


def parse_event_names(text: str) -> frozenset[str]:
    """Parse ``--events``: comma-separated dispatch names, case-insensitive.

    Raises:
        ValueError: on an empty list or a name that cannot be an event name.

    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("--events is empty; name at least one event, e.g. MESSAGE_CREATE")
    for name in names:
        if not _EVENT_NAME.match(name):
            raise ValueError(f"{name!r} is not an event name (e.g. MESSAGE_CREATE)")
    return frozenset(name.upper() for name in names)


def dispatch_names() -> frozenset[str]:
    """Return the dispatch names Discord documents: the payload types' list (one source).

    ``--events`` warns about any other name, since it would match nothing (Discord
    may add events before the list knows them, so a warning, not an error). Imported
    here, not at the top: the CLI starts without loading the payload types.
    """
    from gateway_proto.payloads import DISPATCH_EVENTS  # noqa: PLC0415

    return frozenset(DISPATCH_EVENTS)


def unknown_event_warnings(names: frozenset[str] | None) -> list[str]:
    """Return one warning per ``--events`` name Discord does not document (with a guess)."""
    if not names:
        return []
    known = dispatch_names()
    warnings = []
    for name in sorted(names):
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(
            f"--events: {name!r} is no event Discord documents{guess}; "
            "nothing is shown for it unless the gateway sends it"
        )
    return warnings


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenOptions:
    """Validated settings of ``listen``.

    Attributes:
        token: the bot token, or ``None`` in offline mode.
        offline: whether to start the embedded fake gateway and connect to it.
        api_base: the REST base to ask for ``/gateway/bot`` (``None``: Discord's).
        shards: which shards to run.
        intents: the intents bitfield.
        encoding: payload encoding.
        compress: transport compression (``"none"`` for none).
        events: dispatch names to show (``None``: all).
        jsonl: print one JSON object per line on stdout.
        driver: ``anyio`` or ``sync``.
        backend: the anyio backend.
        duration: seconds to run, or ``None`` to run until interrupted.
        rate: events per second of the embedded fake gateway.
        status: ``"auto"``, ``"on"`` or ``"off"``: the terminal status display.
        status_interval: seconds between status lines.
        status_address: ``(host, port)`` to serve the status page on (``None``: none).
        verbose: log the library's INFO records (connections, state changes) to stderr.
        user_agent: the ``User-Agent`` for REST and the WebSocket upgrade (``None``:
            the library's ``DiscordBot (URL, version)``).

    """

    token: str | None = None
    offline: bool
    api_base: str | None = None
    shards: ShardSpec
    intents: int
    encoding: Encoding = "json"
    compress: Compress = "zlib-stream"
    events: frozenset[str] | None = None
    jsonl: bool = False
    driver: Driver = "anyio"
    backend: Backend = "asyncio"
    duration: float | None
    rate: float = DEFAULT_OFFLINE_RATE
    status: Literal["auto", "on", "off"] = "auto"
    status_interval: float = 5.0
    status_address: tuple[str, int] | None = None
    verbose: bool = False
    user_agent: str | None = None

    @property
    def compression(self) -> str | None:
        """The compression for the drivers (``None`` for ``none``)."""
        return None if self.compress == "none" else self.compress

    def __repr__(self) -> str:
        # The token never appears in a repr, even in a debugging session's output.
        token = "set" if self.token else "None"
        return f"ListenOptions(token={token}, offline={self.offline}, shards={self.shards})"


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


def parse_user_agent(text: str) -> str:
    """Check a ``--user-agent`` value (printable ASCII, not empty)."""
    try:
        return check_user_agent(text)
    except LocalProtocolError as exc:
        raise ValueError(str(exc).replace("user_agent", "--user-agent", 1)) from None


def _wrap(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """Adapt a ``ValueError``-raising parser to argparse (one-line error, exit 2)."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


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


def _require_module(parser: argparse.ArgumentParser, module: str, option: str, extra: str) -> None:
    """Refuse an option whose optional dependency is missing, naming the extra to install."""
    if importlib.util.find_spec(module) is None:
        parser.error(
            f"{option} needs the {module!r} package: pip install 'spectacles-gateway[{extra}]'"
        )


def require_redis(parser: argparse.ArgumentParser, command: str, url: str) -> None:
    """Refuse a Redis command (``run``, ``worker``) without the package or with a bad URL."""
    _require_module(parser, "redis", command, "redis")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        parser.error(f"--redis must be a redis://, rediss:// or unix:// URL, got {url!r}")
