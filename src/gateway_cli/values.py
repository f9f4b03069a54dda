"""Option values of ``spectacles-gateway``: pure parsers from text to validated values.

Each parser turns one option's text into a value (:class:`ShardSpec`, an intents
bitfield, event names, a status page address, ...) or raises ``ValueError`` with a
one-line explanation; :func:`_wrap` adapts them to argparse (one line, exit 2).
Every subcommand's parser (``listen`` in ``args.py``, ``run``, ``worker``) uses them,
with the checks for optional dependencies (:func:`require_redis`, ...).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from gateway_proto.config import check_user_agent
from gateway_proto.errors import LocalProtocolError
from gateway_proto.intents import Intents
from gateway_testing._cli import DEFAULT_TOKEN

__all__ = [
    "OFFLINE_TOKEN",
    "STATUS_DEFAULT_HOST",
    "ShardSpec",
    "intent_names",
    "parse_event_names",
    "parse_intents",
    "parse_shards",
    "parse_status_address",
    "parse_user_agent",
    "privileged_names",
    "unknown_event_warnings",
]

#: The token the embedded fake gateway accepts; it never leaves the machine.
OFFLINE_TOKEN = DEFAULT_TOKEN  # the fake's: not a secret, it only works on loopback

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
