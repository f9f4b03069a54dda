"""What both drivers share that does no I/O (names, buffers, parsing, redaction).

Event names, the event envelope, the handler registry, bounded event buffers,
``/gateway/bot`` parsing, shard planning, member-chunk collection and token
redaction.

Theory of operation: ``gateway_anyio`` and ``gateway_sync`` expose the same API name
for name; only ``async``/``await`` and the concurrency primitives differ. Every
decision they would otherwise both have to make lives here, as plain data and pure
functions, so the two drivers cannot drift apart. Nothing here reads the clock,
touches a socket or takes a lock: the drivers wrap these objects in their own
locks, events and conditions.
"""

from __future__ import annotations

import enum
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from .errors import GatewayError
from .events import Closed
from .identify import SessionStartLimit
from .session import Session

__all__ = [
    "ANY_EVENT",
    "CLOSE",
    "CONNECT",
    "DISCONNECT",
    "ERROR",
    "IDENTIFY_WAIT",
    "LIFECYCLE_EVENTS",
    "OPEN",
    "RECEIVE",
    "SEND",
    "STATE",
    "ChunkOutcome",
    "Connected",
    "DropOldestBuffer",
    "GatewayEvent",
    "GatewayInfo",
    "GatewayRequestError",
    "HandlerRegistry",
    "IdentifyWait",
    "InvalidTokenError",
    "MemberChunkCollector",
    "RedactingFilter",
    "ShardCounters",
    "ShardState",
    "SpawnSpec",
    "StateChange",
    "Stopped",
    "parse_retry_after",
    "plan_shards",
    "redact",
]

# -- event names ---------------------------------------------------------------------

#: The WebSocket to the gateway opened (data: the URL, without the token).
OPEN = "open"
#: A connection ended (data: the core's :class:`~gateway_proto.events.Closed`).
CLOSE = "close"
#: Something went wrong that the shard survives or that stops it (data: the exception).
ERROR = "error"
#: A payload was sent (data: ``{"op": ..., "d": ...}`` before encoding, token redacted).
SEND = "send"
#: The core decoded something from the server (data: the core's event object:
#: ``Hello``, ``Dispatch``, ``HeartbeatAck``, ``ReconnectRequested``, ``InvalidSession``).
RECEIVE = "receive"
#: The session is live: READY or RESUMED arrived (data: :class:`Connected`).
CONNECT = "connect"
#: The shard stopped for good and will not reconnect (data: :class:`Stopped`).
DISCONNECT = "disconnect"
#: The shard's state changed (data: :class:`StateChange`, with the reason).
STATE = "state"
#: The identify limiter makes the shard wait (data: :class:`IdentifyWait`).
IDENTIFY_WAIT = "identify_wait"
#: Register a handler under this name to get every event.
ANY_EVENT = "*"

#: The driver's own event names; every other name is a Discord dispatch name.
LIFECYCLE_EVENTS = frozenset(
    {OPEN, CLOSE, ERROR, SEND, RECEIVE, CONNECT, DISCONNECT, STATE, IDENTIFY_WAIT}
)


class ShardState(enum.Enum):
    """Where a driver's shard is in its life (coarser than the connection's state)."""

    #: Built, not connected yet.
    IDLE = "idle"
    #: Opening TCP/TLS and the WebSocket, waiting for HELLO.
    CONNECTING = "connecting"
    #: Waiting for an identify permit, or for READY after IDENTIFY.
    IDENTIFYING = "identifying"
    #: RESUME sent, waiting for RESUMED (replayed dispatches arrive meanwhile).
    RESUMING = "resuming"
    #: The session is live.
    READY = "ready"
    #: The connection ended; waiting out the backoff before the next attempt.
    RECONNECTING = "reconnecting"
    #: Stopped for good (``disconnect()``, a fatal close, or the owner closed).
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """What handlers and ``events()`` receive: one event of one shard.

    Attributes:
        name: a Discord dispatch name (``"MESSAGE_CREATE"``) or a lifecycle name
            (:data:`OPEN`, :data:`CLOSE`, ...).
        shard_id: the shard it came from.
        data: the dispatch's ``d``, or the lifecycle event's payload (see the names).
        sequence: the dispatch's sequence number; ``None`` for lifecycle events.
        shard: the driver's ``Shard`` object (not part of equality or ``repr``).

    """

    name: str
    shard_id: int
    data: Any
    sequence: int | None = None
    shard: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StateChange:
    """Payload of :data:`STATE`: the shard moved from ``old`` to ``new`` because of ``reason``."""

    old: ShardState
    new: ShardState
    reason: str


@dataclass(frozen=True, slots=True)
class Connected:
    """Payload of :data:`CONNECT`.

    Attributes:
        resumed: ``True`` after RESUMED, ``False`` after READY (a new session).
        session: the live session.

    """

    resumed: bool
    session: Session | None


@dataclass(frozen=True, slots=True)
class Stopped:
    """Payload of :data:`DISCONNECT`: why the shard stopped for good.

    Attributes:
        reason: a short description.
        error: the fatal error, if one stopped it.
        closed: the last connection's close, if there was one.

    """

    reason: str
    error: BaseException | None = None
    closed: Closed | None = None


@dataclass(frozen=True, slots=True)
class IdentifyWait:
    """Payload of :data:`IDENTIFY_WAIT`: the shard waits before it may identify.

    Attributes:
        delay: seconds until the permit.
        bucket: the shard's bucket (``shard_id % max_concurrency``).
        waits_for_reset: ``True`` when the session start budget is spent and the
            wait lasts until it resets (identifying anyway would reset the token).

    """

    delay: float
    bucket: int
    waits_for_reset: bool


@dataclass(slots=True)
class ShardCounters:
    """Counters a shard keeps, for metrics and tests.

    Attributes:
        identifies: IDENTIFYs sent (new sessions started).
        resumes: RESUMEs attempted.
        connections: transport connections opened.
        dispatches: dispatches delivered.
        reconnects: reconnects by cause (``CloseCause`` values and ``"connect_failed"``).
        dropped_events: events dropped because a consumer fell behind.

    """

    identifies: int = 0
    resumes: int = 0
    connections: int = 0
    dispatches: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0

    def count_reconnect(self, cause: str) -> None:
        """Count one reconnect caused by ``cause``."""
        self.reconnects[cause] = self.reconnects.get(cause, 0) + 1


# -- handler registry ------------------------------------------------------------------

H = TypeVar("H")
T = TypeVar("T")


class HandlerRegistry(Generic[H]):
    """Handlers by event name, in registration order (``"*"`` gets everything)."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[H]] = {}

    def on(self, name: str, handler: H) -> H:
        """Register ``handler`` for ``name`` and return it (so it works as a decorator)."""
        if not isinstance(name, str) or not name:
            raise ValueError("event name must be a non-empty str")
        self._by_name.setdefault(name, []).append(handler)
        return handler

    def off(self, name: str, handler: H) -> None:
        """Unregister a handler; unknown handlers are ignored."""
        handlers = self._by_name.get(name)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def handlers_for(self, name: str) -> list[H]:
        """Return the handlers for ``name``: its own first, then the catch-all ones."""
        own = self._by_name.get(name, ())
        anything = self._by_name.get(ANY_EVENT, ())
        if not anything:
            return list(own)
        return [*own, *anything]

    def has(self, name: str) -> bool:
        """Whether any handler would get an event named ``name`` (catch-all included)."""
        by_name = self._by_name
        return bool(by_name.get(name)) or bool(by_name.get(ANY_EVENT))

    def __bool__(self) -> bool:
        return any(self._by_name.values())


class DropOldestBuffer(Generic[T]):
    """A bounded FIFO that drops its oldest item when full, and counts the drops.

    Why drop instead of blocking: the shard's reader must never wait for a
    consumer, or heartbeat ACKs would go unread and the connection would be
    declared a zombie. A consumer that falls behind loses the oldest events and
    sees the count in ``dropped``.
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._items: deque[T] = deque()
        self.maxlen = maxlen
        self.dropped = 0

    def append(self, item: T) -> bool:
        """Add an item; return ``True`` if the oldest one was dropped to make room."""
        dropped = False
        if len(self._items) >= self.maxlen:
            self._items.popleft()
            self.dropped += 1
            dropped = True
        self._items.append(item)
        return dropped

    def popleft(self) -> T:
        """Remove and return the oldest item (``IndexError`` if empty)."""
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


# -- REST: GET /gateway/bot ----------------------------------------------------------


class GatewayRequestError(GatewayError):
    """``GET /gateway/bot`` failed for good (after retries), or answered nonsense.

    Attributes:
        status_code: the last HTTP status, or ``None`` for a network failure.

    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class InvalidTokenError(GatewayRequestError):
    """Discord refused the token (HTTP 401): fix the token; retrying will not help."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayInfo:
    """The answer of ``GET /gateway/bot``.

    Attributes:
        url: the WebSocket URL to connect to.
        shards: the recommended shard count.
        session_start_limit: the identify budget and ``max_concurrency``.

    """

    url: str
    shards: int
    session_start_limit: SessionStartLimit

    @property
    def max_concurrency(self) -> int:
        """Identifies allowed per 5 s (the number of identify buckets)."""
        return self.session_start_limit.max_concurrency

    @classmethod
    def from_api(cls, data: Any) -> GatewayInfo:
        """Parse the decoded JSON body.

        Raises:
            ValueError: if a field is missing or of the wrong type.

        """
        if not isinstance(data, Mapping):
            raise ValueError(f"GET /gateway/bot answered {data!r}, not an object")
        url = data.get("url")
        shards = data.get("shards")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"GET /gateway/bot gave no ws(s) url: {url!r}")
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"GET /gateway/bot gave a bad shard count: {shards!r}")
        limit = data.get("session_start_limit")
        if not isinstance(limit, dict):
            raise ValueError(f"GET /gateway/bot gave no session_start_limit: {limit!r}")
        return cls(url=url, shards=shards, session_start_limit=SessionStartLimit.from_api(limit))


def parse_retry_after(headers: Mapping[str, str], body: Any, *, default: float = 1.0) -> float:
    """Return the seconds a 429 asks to wait (body ``retry_after``, else the header)."""
    if isinstance(body, Mapping):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    for key in ("retry-after", "x-ratelimit-reset-after"):
        raw = headers.get(key)
        if raw is not None:
            try:
                return max(0.0, float(raw))
            except ValueError:
                continue
    return default


# -- sharding --------------------------------------------------------------------------

#: What ``Cluster.spawn`` takes: a shard count, explicit shard ids, or ``"auto"``.
SpawnSpec = int | Sequence[int] | Literal["auto"]


def plan_shards(spec: SpawnSpec, recommended: int | None) -> tuple[list[int], int]:
    """Turn a spawn spec into ``(shard ids, shard count)``.

    ``"auto"`` takes ``recommended`` (``shards`` of ``GET /gateway/bot``); an int ``n``
    spawns shards ``0..n-1`` of ``n``; explicit ids run in a total of
    ``recommended`` (or ``max(ids) + 1`` if that is unknown or too small).

    Raises:
        ValueError: for an empty or invalid spec.

    """
    if spec == "auto":
        if recommended is None or recommended < 1:
            raise ValueError('spawn("auto") needs the recommended shard count')
        return list(range(recommended)), recommended
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ValueError(f"shard count must be at least 1, got {spec}")
        return list(range(spec)), spec
    if isinstance(spec, (str, bytes)):
        raise ValueError(f'spawn takes a count, shard ids or "auto", got {spec!r}')
    ids: list[int] = list(cast("Sequence[int]", spec))
    if not ids or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise ValueError(f"shard ids must be non-negative ints, got {spec!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"shard ids must be unique, got {spec!r}")
    total = max(recommended or 0, max(ids) + 1)
    return sorted(ids), total


# -- request guild members -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """What one matching dispatch means for a member request.

    Attributes:
        members: members carried by this chunk.
        done: the last chunk arrived (``chunk_index == chunk_count - 1``).
        retry_after: set when Discord answered ``RATE_LIMITED``: wait this long,
            then send the request again.

    """

    members: list[Any]
    done: bool
    retry_after: float | None = None


class MemberChunkCollector:
    """Matches ``GUILD_MEMBERS_CHUNK`` and ``RATE_LIMITED`` dispatches to one request.

    Args:
        nonce: the request's nonce (fresh per request, at most 32 bytes).
        guild_id: the guild asked about.

    """

    def __init__(self, nonce: str, guild_id: str) -> None:
        self.nonce = nonce
        self.guild_id = guild_id
        self._seen_chunks: set[int] = set()

    def feed(self, name: str, data: Any) -> ChunkOutcome | None:
        """Return the outcome of a dispatch, or ``None`` if it is not for this request."""
        if not isinstance(data, Mapping):
            return None
        if name == "GUILD_MEMBERS_CHUNK" and data.get("nonce") == self.nonce:
            members = data.get("members")
            index = data.get("chunk_index", 0)
            count = data.get("chunk_count", 1)
            if isinstance(index, int):
                self._seen_chunks.add(index)
            done = isinstance(count, int) and len(self._seen_chunks) >= count
            return ChunkOutcome(list(members) if isinstance(members, list) else [], done)
        if name == "RATE_LIMITED":
            meta = data.get("meta")
            if not isinstance(meta, Mapping):
                return None
            # The nonce is optional in meta; fall back to the guild for old servers.
            nonce = meta.get("nonce")
            if nonce == self.nonce or (
                nonce is None and str(meta.get("guild_id")) == self.guild_id
            ):
                retry = data.get("retry_after")
                delay = float(retry) if isinstance(retry, (int, float)) else 1.0
                return ChunkOutcome([], False, retry_after=max(0.0, delay))
        return None


# -- redaction -------------------------------------------------------------------------

_REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret (non-empty) replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


# Discord bot tokens look like base64(id).timestamp.hmac; redact anything shaped so,
# even a token this process was never given (e.g. in a server's error text).
_TOKEN_SHAPE = re.compile(r"[A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,40}")


class RedactingFilter(logging.Filter):
    """A logging filter that removes the given tokens (and token-shaped strings).

    Attach it to a logger or handler; it formats the message once, redacts it and
    drops the arguments, so no handler can format the raw token back in.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]] | Iterable[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        secrets = self._secrets() if callable(self._secrets) else self._secrets
        message = _TOKEN_SHAPE.sub(_REDACTED, redact(record.getMessage(), secrets))
        record.msg = message
        record.args = None
        return True
