"""The validated settings of ``listen``, and the defaults they start from.

``args.py`` resolves the command line into one frozen :class:`ListenOptions`; the
wiring (``run.py``, ``listen*.py``) reads it and never re-checks user input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .values import ShardSpec

__all__ = ["DEFAULT_OFFLINE_DURATION", "DEFAULT_OFFLINE_RATE", "ListenOptions"]

DEFAULT_OFFLINE_DURATION = 20.0
#: Events per second the embedded fake gateway emits: lively enough to watch, slow
#: enough to read.
DEFAULT_OFFLINE_RATE = 8.0

Encoding = Literal["json", "etf"]
Compress = Literal["zlib-stream", "zstd-stream", "none"]
Driver = Literal["anyio", "sync"]
Backend = Literal["asyncio", "trio"]


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
