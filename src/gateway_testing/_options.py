"""Every knob of the fake gateway, in one frozen record (defaults are Discord's numbers)."""

from __future__ import annotations

import difflib
import ssl
from dataclasses import dataclass, fields
from typing import TypedDict

from gateway_testing._session import FixedWindow, SlidingWindow

__all__ = [
    "ALL_INTENTS",
    "PRIVILEGED_INTENTS",
    "FakeOptions",
    "FakeOptionsDict",
    "check_option_names",
]

#: Every documented intent bit OR'd together (PROTOCOL.md 12).
ALL_INTENTS = 53608447
#: GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT.
PRIVILEGED_INTENTS = 2 | 256 | 32768


@dataclass(frozen=True, slots=True)
class FakeOptions:
    """Configuration of a :class:`~gateway_testing.FakeGateway` (see its docstring).

    Times are float seconds (the wire carries milliseconds where Discord does).

    Habits of real servers that are not Discord (PROTOCOL.md 13b), so a test can
    check the client copes with them:

    - ``require_user_agent`` (on by default): an upgrade without a ``User-Agent``
      header is accepted, then closed with 4002 "User-Agent header is required".
    - ``first_heartbeat_limit``: seconds after HELLO by which the *first*
      heartbeat must arrive, else close 4000 "Heartbeat expired" (one server uses
      exactly ``heartbeat_interval``, with no slack for the client's jitter);
      ``None`` (default) applies only the usual interval-plus-grace rule.
    - ``fixed_command_window``: count ``command_limit`` payloads per fixed window of
      ``command_window`` seconds (starting at the first payload) instead of
      Discord's sliding window; either way, going over closes 4008.

    ``history_limit`` bounds what a long-running fake keeps (``None``, the default
    for tests, keeps everything): each connection keeps only its last
    ``history_limit`` payload records each way while open, and none once closed.
    A closed connection always gives back its compression context and buffers.
    """

    token: str = "test-token"
    shards: int = 1
    max_concurrency: int = 1
    heartbeat_interval: float = 41.25
    heartbeat_grace: float | None = None
    guilds_per_shard: int = 3
    members_per_guild: int = 50
    ssl_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    port: int = 0
    identify_window: float = 5.0
    session_start_total: int = 1000
    session_start_remaining: int | None = None
    session_start_reset: float = 86_400.0
    member_request_window: float = 30.0
    member_chunk_size: int = 1000
    command_limit: int = 120
    command_window: float = 60.0
    max_payload_size: int = 4096
    max_guilds_per_shard: int = 2500
    shard_count_multiple: int = 1
    privileged_intents: int = PRIVILEGED_INTENTS
    session_ttl: float = 180.0
    resume_buffer: int = 10_000
    resume_path: str = "/resume"
    close_timeout: float = 2.0
    seed: int = 0
    event_rate: float | None = None
    encodings: tuple[str, ...] = ("json", "etf")
    compressions: tuple[str | None, ...] = (None, "zlib-stream", "zstd-stream")
    # -- real-server habits (useragent helper): User-Agent, first heartbeat, fixed window
    require_user_agent: bool = True
    first_heartbeat_limit: float | None = None
    fixed_command_window: bool = False
    history_limit: int | None = None

    # -- wire-bigpayloads (issue 10): how other servers compress and frame; all off --
    #: zstd-stream: end the zstd frame after every message, so each message is a
    #: frame of its own (one server reimplementation does this; Discord keeps one
    #: frame open for the whole connection).
    zstd_end_frames: bool = False
    #: Send every WebSocket message longer than this many bytes (characters, for a
    #: text message) as continuation fragments of that size; ``1024`` is what one
    #: server reimplementation does with zlib-stream. ``None``: one frame per message
    #: (``FakeConnection.fragment_frames`` still applies).
    fragment_size: int | None = None
    # Session habits of servers that exist (PROTOCOL.md 13b) and the resume URL READY
    # carries; all off by default (see FakeGateway's docstring and docs/testing.md).
    zero_sequence_ready: bool = False
    resume_unsupported: bool = False
    replay_inclusive: bool = False
    sessions_replace_before_ready: bool = False
    resume_url: str | None = None

    def __post_init__(self) -> None:
        if self.shards < 1 or self.max_concurrency < 1:
            raise ValueError("shards and max_concurrency must be at least 1")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive (seconds)")
        if self.event_rate is not None and self.event_rate <= 0:
            raise ValueError("event_rate must be positive (events per second) or None")
        if self.fragment_size is not None and self.fragment_size < 1:
            raise ValueError("fragment_size must be at least 1 (bytes per fragment) or None")
        if self.first_heartbeat_limit is not None and self.first_heartbeat_limit <= 0:
            raise ValueError("first_heartbeat_limit must be positive (seconds) or None")
        if self.history_limit is not None and self.history_limit < 1:
            raise ValueError("history_limit must be at least 1 or None")

    @property
    def grace(self) -> float:
        """Seconds past the interval before a silent client is closed with 4009."""
        return self.heartbeat_interval if self.heartbeat_grace is None else self.heartbeat_grace

    def heartbeats_fill_command_limit(self) -> str | None:
        """Say why every connection will be closed with 4008, if heartbeats alone do it.

        Heartbeats count against ``command_limit`` per ``command_window``, as on
        Discord, whose interval (~41 s) leaves nearly all of it to commands. A
        short interval does not: a client that heartbeats as told fills the limit
        with heartbeats and is closed with 4008 after ``command_limit`` of them.
        Returns ``None`` when the interval leaves room for commands.
        """
        beats = self.command_window / self.heartbeat_interval
        if beats < self.command_limit:
            return None
        room = self.command_window / (self.command_limit / 2)
        return (
            f"heartbeat_interval={self.heartbeat_interval:g} s: heartbeats count against the "
            f"command limit ({self.command_limit} per {self.command_window:g} s, as on "
            f"Discord) and alone fill it, so every connection is closed with 4008 after "
            f"about {self.command_limit * self.heartbeat_interval:g} s; use an interval of "
            f"at least {room:g} s (half the limit left for commands) or a higher command_limit"
        )

    def command_window_limiter(self) -> SlidingWindow | FixedWindow:
        """Return a fresh per-connection limiter (120 payloads per 60 s by default)."""
        if self.fixed_command_window:
            return FixedWindow(self.command_limit, self.command_window)
        return SlidingWindow(self.command_limit, self.command_window)


class FakeOptionsDict(TypedDict, total=False):
    """The keyword arguments of :class:`~gateway_testing.FakeGateway`: ``FakeOptions``'s fields.

    ``FakeGateway(**options: Unpack[FakeOptionsDict])`` lets a type checker catch a
    misspelled option or a wrong type (``tests/testing/test_options_typed.py`` keeps
    the two in step). Meanings and defaults are :class:`FakeOptions`'s.
    """

    token: str
    shards: int
    max_concurrency: int
    heartbeat_interval: float
    heartbeat_grace: float | None
    guilds_per_shard: int
    members_per_guild: int
    ssl_context: ssl.SSLContext | None
    host: str
    port: int
    identify_window: float
    session_start_total: int
    session_start_remaining: int | None
    session_start_reset: float
    member_request_window: float
    member_chunk_size: int
    command_limit: int
    command_window: float
    max_payload_size: int
    max_guilds_per_shard: int
    shard_count_multiple: int
    privileged_intents: int
    session_ttl: float
    resume_buffer: int
    resume_path: str
    close_timeout: float
    seed: int
    event_rate: float | None
    encodings: tuple[str, ...]
    compressions: tuple[str | None, ...]
    require_user_agent: bool
    first_heartbeat_limit: float | None
    fixed_command_window: bool
    history_limit: int | None
    zstd_end_frames: bool
    fragment_size: int | None
    zero_sequence_ready: bool
    resume_unsupported: bool
    replay_inclusive: bool
    sessions_replace_before_ready: bool
    resume_url: str | None


def check_option_names(options: dict[str, object]) -> None:
    """Raise ``TypeError`` naming each unknown option (and the nearest known one).

    Raises:
        TypeError: if a key of ``options`` is not a field of :class:`FakeOptions`.

    """
    known = {f.name for f in fields(FakeOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(f"FakeGateway got unknown option(s): {', '.join(hints)}")
