"""Configuration of one shard's gateway connection."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from ._urls import host_of
from ._version import PROJECT_URL, __version__
from .commands import UpdatePresence
from .errors import ConfigError

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "DEFAULT_HEARTBEAT_GRID",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_RESUME_AGE",
    "DEFAULT_USER_AGENT",
    "Compression",
    "Encoding",
    "ShardConfig",
    "check_user_agent",
]

#: Discord's gateway, used until ``GET /gateway/bot`` says otherwise.
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
#: READY and GUILD_CREATE of very large guilds have gone past 5 MB; 64 MiB leaves
#: room for that and still refuses a decompression bomb long before memory runs out.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: Seconds a lost session is tried again (RESUME) before the shard identifies anew.
#: Discord keeps a session resumable "for a few minutes" after its connection drops;
#: trying longer only costs a refused RESUME (op 9) when the server comes back,
#: giving up early loses every event it would have replayed.
DEFAULT_MAX_RESUME_AGE = 300.0
#: Seconds between the points heartbeats are sent on (``ShardConfig.heartbeat_grid``):
#: with Discord's 41.25 s interval, a process's shards beat in 16 groups per interval
#: instead of one at a time, each beat at most 2.5 s early.
DEFAULT_HEARTBEAT_GRID = 2.5

#: Discord's documented form for bots, ``DiscordBot ($url, $versionNumber)``: sent on
#: the WebSocket upgrade and on REST. Some servers refuse an upgrade without one.
DEFAULT_USER_AGENT = f"DiscordBot ({PROJECT_URL}, {__version__})"

#: ``json`` (text frames) or ``etf`` (Erlang term format, binary frames; needs ``erlpack``).
Encoding = Literal["json", "etf"]
#: Transport compression (``zlib-stream``, ``zstd-stream``), per-payload zlib
#: (``payload``: IDENTIFY ``compress: true``, JSON only), or ``None``; ``"none"``
#: (as the CLI spells it) is accepted as ``None``.
Compression = Literal["zlib-stream", "zstd-stream", "payload", "none"] | None

_LIBRARY = "spectacles-gateway"


def check_user_agent(value: object) -> str:
    """Return ``value`` if it can be a ``User-Agent`` header, else raise.

    Printable ASCII only: a header value with a line break would let the caller's
    string write headers of its own, and other characters are not portable.

    Raises:
        ConfigError: empty, not a str, or not printable ASCII.

    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("user_agent must be a non-empty str")
    if not all(" " <= char <= "~" for char in value):
        raise ConfigError(f"user_agent must be printable ASCII, got {value!r}")
    return value


def _default_properties() -> dict[str, str]:
    return {"os": sys.platform, "browser": _LIBRARY, "device": _LIBRARY}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardConfig:
    """Everything one shard's connection needs to know; validated when built.

    The token is never part of ``repr()``.

    Attributes:
        token: the bot token, without the ``Bot `` prefix.
        intents: the intents bitfield (an ``int`` or :class:`~gateway_proto.Intents`).
        shard: ``(shard_id, shard_count)``.
        url: the gateway URL from ``GET /gateway/bot`` (any query string is replaced).
        encoding: ``"json"`` or ``"etf"``.
        compression: ``"zlib-stream"``, ``"zstd-stream"``, ``"payload"`` or ``None``
            (``"none"`` is taken as ``None``, as the CLI spells it).
        large_threshold: 50-250: members above which offline members are left out.
        presence: the presence to start with, if any.
        properties: IDENTIFY ``properties`` (``os``, ``browser``, ``device``).
        api_version: the gateway API version (10).
        max_message_size: the largest decompressed message accepted; also caps
            compressed input buffered while waiting for a message's end.
        max_pending_commands: how many commands may wait for the rate limiter
            (or for READY) before ``send`` refuses more.
        hello_timeout: seconds to wait for HELLO after the WebSocket opens.
        close_timeout: seconds to wait for the peer's close frame after ours.
        user_agent: the ``User-Agent`` header of the WebSocket upgrade (default:
            :data:`DEFAULT_USER_AGENT`, Discord's ``DiscordBot (URL, version)``).
        max_resume_age: seconds after its connection was lost during which the
            reconnect policy (:class:`~gateway_proto.reconnect.Reconnector`) keeps
            resuming the session through failed connects, before it identifies anew.
        keep_raw: put each dispatch's payload bytes, as received after
            decompression, on :attr:`Dispatch.raw <gateway_proto.events.Dispatch.raw>`
            (off by default: it keeps each message's bytes alive as long as its
            event). For code that forwards payloads without encoding them again,
            such as ``gateway_redis``'s publisher.
        heartbeat_grid: seconds (default :data:`DEFAULT_HEARTBEAT_GRID`): each
            heartbeat is sent at the multiple of this on the ``now`` clock at or
            before the time it is due, at most an eighth of an interval early, so
            the shards of one process beat together and one wake-up serves them all
            (:class:`~gateway_proto.heartbeat.Heartbeater`). 0: exactly on schedule.

    """

    token: str = field(repr=False)
    intents: int
    shard: tuple[int, int] = (0, 1)
    url: str = DEFAULT_GATEWAY_URL
    encoding: Encoding = "json"
    compression: Compression = "zlib-stream"
    large_threshold: int = 50
    presence: UpdatePresence | None = None
    properties: dict[str, str] = field(default_factory=_default_properties)
    api_version: int = 10
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_pending_commands: int = 1000
    hello_timeout: float = 20.0
    close_timeout: float = 5.0
    user_agent: str = DEFAULT_USER_AGENT
    max_resume_age: float = DEFAULT_MAX_RESUME_AGE
    keep_raw: bool = False
    heartbeat_grid: float = DEFAULT_HEARTBEAT_GRID

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ConfigError("token must be a non-empty str")
        if self.token.startswith("Bot "):
            object.__setattr__(self, "token", self.token[4:])
        if isinstance(self.intents, bool) or not isinstance(self.intents, int) or self.intents < 0:
            raise ConfigError("intents must be a non-negative int")
        shard_id, shard_count = self.shard
        if not (isinstance(shard_id, int) and isinstance(shard_count, int)):
            raise ConfigError("shard must be a pair of ints (shard_id, shard_count)")
        if shard_count < 1 or not 0 <= shard_id < shard_count:
            raise ConfigError(f"shard must satisfy 0 <= shard_id < shard_count, got {self.shard!r}")
        if self.encoding not in ("json", "etf"):
            raise ConfigError(f"encoding must be 'json' or 'etf', got {self.encoding!r}")
        if self.compression == "none":
            object.__setattr__(self, "compression", None)
        if self.compression not in ("zlib-stream", "zstd-stream", "payload", None):
            raise ConfigError(
                "compression must be 'zlib-stream', 'zstd-stream', 'payload' or None "
                f"(or 'none'), got {self.compression!r}"
            )
        if self.compression == "payload" and self.encoding != "json":
            raise ConfigError("payload compression works with JSON encoding only")
        if not 50 <= self.large_threshold <= 250:
            raise ConfigError("large_threshold must be between 50 and 250")
        scheme = urlsplit(self.url).scheme
        if scheme not in ("ws", "wss"):
            raise ConfigError(f"url must be a ws:// or wss:// URL, got {self.url!r}")
        if self.max_message_size < 4096:
            raise ConfigError("max_message_size must be at least 4096 bytes")
        if self.max_pending_commands < 1:
            raise ConfigError("max_pending_commands must be at least 1")
        if self.hello_timeout <= 0 or self.close_timeout <= 0:
            raise ConfigError("timeouts must be positive")
        check_user_agent(self.user_agent)
        if not self.max_resume_age > 0:  # NaN too
            raise ConfigError("max_resume_age must be a positive number of seconds")
        if not isinstance(self.keep_raw, bool):
            raise ConfigError("keep_raw must be a bool")
        grid = self.heartbeat_grid
        if not isinstance(grid, (int, float)) or not 0.0 <= grid < float("inf"):  # NaN too
            raise ConfigError("heartbeat_grid must be a non-negative number of seconds")

    @property
    def query(self) -> dict[str, str]:
        """The gateway query parameters: ``v``, ``encoding`` and ``compress``."""
        params = {"v": str(self.api_version), "encoding": self.encoding}
        if self.compression in ("zlib-stream", "zstd-stream"):
            params["compress"] = self.compression
        return params

    def gateway_url(self, base: str | None = None) -> str:
        """Return ``base`` (default: ``url``) with this config's query string.

        The same query goes on the resume URL, ``compress`` included: a resume
        URL without it gets uncompressed frames. A ``user:password@`` is dropped:
        it must never become the ``Host`` header or reach a log line.
        """
        parts = urlsplit(base or self.url)
        return urlunsplit(
            (parts.scheme, host_of(parts.netloc), parts.path or "/", urlencode(self.query), "")
        )

    def identify_payload(self) -> dict[str, Any]:
        """Return IDENTIFY's ``d`` for this shard (the token included: never log it).

        ``compress`` is sent only for payload compression; ``presence`` only when set.
        """
        shard_id, shard_count = self.shard
        d: dict[str, Any] = {
            "token": self.token,
            "properties": dict(self.properties),
            "intents": int(self.intents),
            "shard": [shard_id, shard_count],
            "large_threshold": self.large_threshold,
        }
        if self.compression == "payload":
            d["compress"] = True
        if self.presence is not None:
            d["presence"] = self.presence.to_payload()
        return d
