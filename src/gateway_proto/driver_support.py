"""What both drivers share that does no I/O (names, buffers, parsing, redaction).

Event names, the event envelope, the handler registry, bounded event buffers, what
each core event means for a shard (:class:`ConnectionReactor`), the steps only a
driver can time (:class:`StepDeadline`), what to do when a connection ends
(:func:`after_connection`), where a gateway URL points (:func:`split_gateway_url`),
``/gateway/bot`` parsing, shard planning, the identify wait queue and start order,
the unsent-command backlog, member-chunk collection and token redaction.

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
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NamedTuple,
    Protocol,
    TypeVar,
    cast,
    runtime_checkable,
)
from urllib.parse import urlsplit

from .backoff import Backoff
from .commands import Command
from .errors import FatalCloseError, GatewayError
from .events import Closed, Dispatch, Event, IdentifyNeeded, Opened, PayloadSent
from .identify import IdentifySchedule, IdentifySlot, SessionStartLimit
from .opcodes import Opcode
from .session import Session

if TYPE_CHECKING:
    from .connection import GatewayConnection
    from .reconnect import Reconnector

    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time only from Python 3.11
    _LoggerAdapter = logging.LoggerAdapter

__all__ = [
    "ANY_EVENT",
    "CLOSE",
    "CONNECT",
    "DISCONNECT",
    "ERROR",
    "HANDSHAKE_TIMED_OUT",
    "IDENTIFY_WAIT",
    "LIFECYCLE_EVENTS",
    "OPEN",
    "READY_TIMED_OUT",
    "RECEIVE",
    "RESUMED_TIMED_OUT",
    "SEND",
    "STATE",
    "ChunkOutcome",
    "Connected",
    "ConnectionReactor",
    "DropOldestBuffer",
    "GatewayAddress",
    "GatewayBase",
    "GatewayEvent",
    "GatewayFetch",
    "GatewayInfo",
    "GatewayRequestError",
    "GatewayUrlError",
    "HandlerRegistry",
    "IdentifyGrant",
    "IdentifyQueue",
    "IdentifyTicket",
    "IdentifyWait",
    "InProcessLimiterBase",
    "InvalidTokenError",
    "MemberChunkCollector",
    "NextAttempt",
    "Reaction",
    "RedactingFilter",
    "ShardCounters",
    "ShardLogger",
    "ShardState",
    "SpawnSpec",
    "StartOrder",
    "StateChange",
    "StepDeadline",
    "Stopped",
    "TracksIdentifySends",
    "UnsentCommands",
    "after_connection",
    "describe_error",
    "note_identify_sent",
    "parse_retry_after",
    "plan_shards",
    "redact",
    "split_gateway_url",
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
        unsent: commands whose ``send()`` returned but that no connection wrote
            before the shard stopped (oldest first); they were not sent.

    """

    reason: str
    error: BaseException | None = None
    closed: Closed | None = None
    unsent: tuple[Command, ...] = ()


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


# -- one connection, as a shard sees it -----------------------------------------------

#: Log lines of the steps only a driver can time (see :class:`StepDeadline`).
HANDSHAKE_TIMED_OUT = "the WebSocket handshake timed out"
READY_TIMED_OUT = "READY did not arrive in time"
RESUMED_TIMED_OUT = "RESUMED did not arrive in time"


@dataclass(frozen=True, slots=True)
class Reaction:
    """What a driver does about one core event besides delivering it (see ConnectionReactor).

    A driver applies the fields in this order: the timer (:meth:`StepDeadline.follow`),
    the log line, the state change, the lifecycle event, then the identify wait.

    Attributes:
        state: the shard's new state, or ``None`` to keep it.
        reason: why the state changes (for the :data:`STATE` event and the log).
        emit: a lifecycle event to emit, as ``(name, data)``, or ``None``.
        timer: start timing a step only the driver can see, replacing any running one:
            ``(seconds from now, what to log if it stalls)``.
        stop_timer: stop timing (the step is done, or the core times what follows).
        identify: get an identify permit, then call the connection's ``identify``.
        log: ``(level, message)`` to log, or ``None``.
        closed: the connection's ``Closed`` event, once it ended (nothing follows it).

    """

    state: ShardState | None = None
    reason: str = ""
    emit: tuple[str, Any] | None = None
    timer: tuple[float, str] | None = None
    stop_timer: bool = False
    identify: bool = False
    log: tuple[int, str] | None = None
    closed: Closed | None = None


_IDENTIFY_NEEDED = Reaction(ShardState.IDENTIFYING, "waiting for an identify permit", identify=True)


class ConnectionReactor:
    """Maps one connection's core events to what the driver does (a :class:`Reaction`).

    Theory of operation: the drivers feed every event of ``conn.events()`` to
    :meth:`react` and apply what comes back; the decisions live here once:

    - ``Opened``: emit :data:`OPEN` (the URL); the HELLO wait is the core's to time.
      When the connection resumes, the shard is ``RESUMING`` and RESUMED must come
      within ``ready_timeout``.
    - ``IdentifyNeeded``: the shard is ``IDENTIFYING`` and waits for a permit.
    - ``PayloadSent``: emit :data:`SEND`; after IDENTIFY, READY must come within
      ``ready_timeout``.
    - READY or RESUMED: the session is live: state ``READY``, emit :data:`CONNECT`.
    - ``Closed``: log it (an error if it carried one), emit :data:`CLOSE`.
    - Anything else from the server: emit :data:`RECEIVE`.

    Ordinary dispatches give ``None``, so the hot path allocates nothing: the driver
    delivers them itself (by name, then :data:`RECEIVE`).

    Args:
        conn: the connection, before it connects (it resumes if it holds a session).
        ready_timeout: seconds from IDENTIFY/RESUME to READY/RESUMED.

    """

    __slots__ = ("_conn", "_ready_timeout", "resuming")

    def __init__(self, conn: GatewayConnection, *, ready_timeout: float) -> None:
        self._conn = conn
        self._ready_timeout = ready_timeout
        #: Whether the connection resumes a session (else it identifies).
        self.resuming = conn.session is not None

    def react(self, event: Event) -> Reaction | None:
        """Return what the driver does about ``event`` (``None``: only deliver the dispatch)."""
        if type(event) is Dispatch:  # first and cheap: nearly every event is one
            name = event.name
            if name != "READY" and name != "RESUMED":  # noqa: PLR1714 (hot path)
                return None
            live = Connected(name == "RESUMED", self._conn.session)
            return Reaction(ShardState.READY, name, emit=(CONNECT, live), stop_timer=True)
        if isinstance(event, PayloadSent):
            emit = (SEND, {"op": event.opcode, "d": event.data})
            if event.opcode == Opcode.IDENTIFY:
                return Reaction(emit=emit, timer=(self._ready_timeout, READY_TIMED_OUT))
            return Reaction(emit=emit)
        if isinstance(event, IdentifyNeeded):
            return _IDENTIFY_NEEDED
        if isinstance(event, Opened):
            opened = (OPEN, self._conn.url)
            if self.resuming:
                return Reaction(
                    ShardState.RESUMING,
                    "resuming the session",
                    emit=opened,
                    timer=(self._ready_timeout, RESUMED_TIMED_OUT),
                )
            return Reaction(emit=opened, stop_timer=True)
        if isinstance(event, Closed):
            level = logging.ERROR if event.error is not None else logging.INFO
            line = f"connection closed: {event.reason} (code {event.code}, {event.cause.value})"
            return Reaction(emit=(CLOSE, event), stop_timer=True, log=(level, line), closed=event)
        return Reaction(emit=(RECEIVE, event))


class StepDeadline:
    """When the step the driver is timing must be done, and what to log if it is not.

    The core times HELLO, heartbeats and the closing handshake. The WebSocket
    handshake and READY/RESUMED after IDENTIFY/RESUME only the driver can time:
    whoever starts such a step sets this, whoever sees it done clears it, and the
    driver drops the transport once it passes (:meth:`expired`), which the core
    handles like any lost connection (resumable).
    """

    __slots__ = ("current",)

    def __init__(self) -> None:
        #: ``(time, why)`` of the step being timed, or ``None``.
        self.current: tuple[float, str] | None = None

    def set(self, at: float, why: str) -> None:
        """Time a step: it must be done by ``at`` (on the driver's clock)."""
        self.current = (at, why)

    def clear(self) -> None:
        """Stop timing: the step is done, or the core times what follows."""
        self.current = None

    def follow(self, reaction: Reaction, now: float) -> None:
        """Apply a :class:`Reaction`'s timer change, at ``now``."""
        if reaction.timer is not None:
            seconds, why = reaction.timer
            self.current = (now + seconds, why)
        elif reaction.stop_timer:
            self.current = None

    def earliest(self, core_deadline: float | None) -> float | None:
        """Return when the driver must wake: the core's deadline or this one, whichever is first."""
        current = self.current
        if current is None:
            return core_deadline
        return current[0] if core_deadline is None else min(core_deadline, current[0])

    def expired(self, now: float) -> str | None:
        """If the step is overdue at ``now``, stop timing it and return what to log."""
        current = self.current
        if current is None or now < current[0]:
            return None
        self.current = None
        return f"{current[1]}; dropping the connection"


# -- between connections ---------------------------------------------------------------


def describe_error(error: BaseException) -> str:
    """Return ``"TypeName: message"`` (the bare name when the message is empty)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True, slots=True)
class NextAttempt:
    """What a shard does once a connection, or an attempt at one, ended.

    Attributes:
        delay: seconds to wait before connecting again; ``None``: stop for good.
        reason: why: the ``reconnecting`` state's reason (see :attr:`state_reason`),
            or ``Stopped.reason``.
        error: the fatal error that stops the shard (the driver raises it), if any.

    """

    delay: float | None
    reason: str
    error: FatalCloseError | None = None

    @property
    def state(self) -> ShardState:
        """The shard's state until the next attempt: ``RECONNECTING`` or ``STOPPED``."""
        return ShardState.STOPPED if self.delay is None else ShardState.RECONNECTING

    @property
    def state_reason(self) -> str:
        """The reason of that state change (with the wait, when there is one)."""
        if self.delay is None:
            return self.reason
        return f"{self.reason}; next attempt in {self.delay:.2f} s"

    def stopped(
        self, unsent: UnsentCommands, closed: Closed | None, log: logging.Logger | _LoggerAdapter
    ) -> Stopped:
        """Return the :data:`DISCONNECT` payload of this stop; log the fatal error, if any."""
        if self.error is not None:
            log.error("stopping: %s", self.error)
        return unsent.stop_report(self.reason, error=self.error, closed=closed, log=log)

    def raise_error(self) -> None:
        """Raise the fatal error that stops the shard, if there is one."""
        if self.error is not None:
            raise self.error


def after_connection(
    reconnector: Reconnector,
    closed: Closed | None,
    *,
    connect_error: BaseException | None = None,
    restart: bool = False,
    stopping: bool = False,
) -> NextAttempt:
    """Decide, at the end of a connection, whether and when the shard connects again.

    Args:
        reconnector: the shard's reconnect policy (it saw every event of the connection).
        closed: the connection's ``Closed`` event, or ``None`` if it never opened
            (TCP, TLS or a timeout failed: ``connect_error`` says how).
        connect_error: what failed when ``closed`` is ``None``.
        restart: ``shard.reconnect()`` asked for this close and the connection
            accepted it (``close()`` returned while the connection was open).
        stopping: ``shard.disconnect()`` (or the owner) asked the shard to stop.

    The rules, in order:

    1. Stopping wins: stop, without asking the policy (nothing is counted as a
       reconnect, and a fatal close that raced the stop is not raised).
    2. An attempt that never opened goes to
       :meth:`~gateway_proto.reconnect.Reconnector.after_connect_failure`.
    3. A restart skips the backoff policy: connect again at once, resuming what the
       ``Closed`` event left, counted as ``"requested"``. Whatever ended the
       connection after the restart's close (the close handshake, a timeout, EOF)
       still counts as that restart, unless the connection ended with a fatal error.
    4. Otherwise :meth:`~gateway_proto.reconnect.Reconnector.after_close` decides;
       ``None`` there stops the shard, with the fatal error if there was one.

    """
    if stopping:
        return NextAttempt(None, "disconnected")
    if closed is None:
        what = describe_error(connect_error) if connect_error is not None else "unknown error"
        return NextAttempt(reconnector.after_connect_failure(what), f"connect failed ({what})")
    if restart and not isinstance(closed.error, FatalCloseError):
        return NextAttempt(reconnector.after_restart(closed), "reconnect requested")
    delay = reconnector.after_close(closed)
    if delay is None:
        error = reconnector.fatal_error
        return NextAttempt(None, "disconnected" if error is None else str(error), error)
    return NextAttempt(delay, f"{closed.cause.value} (code {closed.code}): {closed.reason}")


# -- where to connect --------------------------------------------------------------------


class GatewayUrlError(OSError, ValueError):
    """A gateway URL that names no reachable address (no host, a bad port, not ws/wss).

    An ``OSError`` too, so that a driver treats it like any address it cannot
    reach: a bad ``resume_gateway_url`` from the server then costs one failed
    attempt (the next one resumes on the base URL), never the shard.
    """


class GatewayAddress(NamedTuple):
    """Where a gateway URL points: the host, the TCP port and whether to speak TLS."""

    host: str
    port: int
    tls: bool


def split_gateway_url(url: str) -> GatewayAddress:
    """Return the address of a ``ws://`` (port 80) or ``wss://`` (port 443, TLS) URL.

    Raises:
        GatewayUrlError: the scheme is not ``ws``/``wss``, there is no host, or the
            port is not a valid number.

    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise GatewayUrlError(f"not a ws:// or wss:// URL: {url!r}")
    tls = parts.scheme == "wss"
    try:
        port = parts.port
    except ValueError:
        raise GatewayUrlError(f"URL has a bad port: {url!r}") from None
    host = parts.hostname or ""
    if not host:
        raise GatewayUrlError(f"URL has no host: {url!r}")
    return GatewayAddress(host, port or (443 if tls else 80), tls)


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


class GatewayBase:
    """What both drivers' ``Gateway`` share: the token, the settings, the last answer.

    The drivers add only ``fetch`` (with their own HTTP client and sleep) and the
    per-token registry.
    """

    def __init__(
        self, token: str, *, api_base: str, timeout: float, max_retries: int, backoff_base: float
    ) -> None:
        token = token.strip()
        if token.startswith("Bot "):
            token = token[4:]
        if not token:
            raise ValueError("token must be a non-empty str")
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._backoff_base = backoff_base
        self._info: GatewayInfo | None = None

    def __repr__(self) -> str:
        return f"Gateway(api_base={self.api_base!r}, info={self._info!r})"

    @property
    def token(self) -> str:
        """The bot token, without the ``Bot`` prefix (never logged)."""
        return self._token

    @property
    def info(self) -> GatewayInfo:
        """The last answer of ``fetch`` (``RuntimeError`` before the first)."""
        if self._info is None:
            raise RuntimeError("Gateway.fetch() has not answered yet")
        return self._info

    @property
    def fetched(self) -> bool:
        """Whether ``fetch`` has answered at least once."""
        return self._info is not None

    @property
    def url(self) -> str:
        """The WebSocket URL to connect to."""
        return self.info.url

    @property
    def shards(self) -> int:
        """The recommended shard count."""
        return self.info.shards

    @property
    def session_start_limit(self) -> SessionStartLimit:
        """The identify budget (``reset_after`` in seconds)."""
        return self.info.session_start_limit

    @property
    def max_concurrency(self) -> int:
        """Identifies allowed per 5 s window (the number of buckets)."""
        return self.info.max_concurrency

    def _fetch_policy(self, log: logging.Logger) -> GatewayFetch:
        """Return a fresh retry policy for one ``fetch``."""
        backoff = Backoff(random.Random(), base=self._backoff_base, cap=10.0)
        return GatewayFetch(self._token, max_retries=self.max_retries, backoff=backoff, log=log)


class GatewayFetch:
    """The decisions of one ``GET /gateway/bot`` with retries, without the I/O.

    A driver sends :attr:`headers` to :meth:`url`, then reports what happened:
    :meth:`answered` with the response (it returns the :class:`GatewayInfo`, or
    the seconds to wait before asking again), or :meth:`failed` for a transport
    error (the seconds to wait). Both raise when asking again is pointless: a 401
    (:class:`InvalidTokenError`), another 4xx, a 200 with a malformed body, or
    ``max_retries`` exhausted (:class:`GatewayRequestError`). A 429 waits what
    Discord asks and does not count as a retry.
    """

    def __init__(
        self, token: str, *, max_retries: int, backoff: Backoff, log: logging.Logger
    ) -> None:
        self.headers = {"Authorization": f"Bot {token}", "User-Agent": "spectacles-gateway"}
        self._token = token
        self._max_retries = max_retries
        self._backoff = backoff
        self._log = log

    @staticmethod
    def url(api_base: str) -> str:
        """Return the endpoint under ``api_base``."""
        return f"{api_base}/gateway/bot"

    def answered(self, status: int, headers: Mapping[str, str], body: Any) -> GatewayInfo | float:
        """Take a response (``body``: its JSON, ``None`` if it had none)."""
        if status == 200:
            try:
                return GatewayInfo.from_api(body)
            except ValueError as exc:
                raise GatewayRequestError(
                    f"GET /gateway/bot answered nonsense: {exc}", status_code=200
                ) from None
        if status == 401:
            raise InvalidTokenError(
                "Discord refused the bot token (HTTP 401 on GET /gateway/bot); check the token",
                status_code=401,
            )
        if status == 429:
            delay = parse_retry_after(headers, body)
            self._log.warning("GET /gateway/bot rate limited; retrying in %.2f s", delay)
            return delay
        problem = f"HTTP {status}"
        if status < 500:  # other 4xx: asking again will not help
            raise GatewayRequestError(f"GET /gateway/bot failed: {problem}", status_code=status)
        return self._retry(problem, status)

    def failed(self, error: BaseException) -> float:
        """Take a transport error (refused, reset, timed out, TLS...)."""
        return self._retry(redact(f"{type(error).__name__}: {error}", [self._token]), None)

    def _retry(self, problem: str, status: int | None) -> float:
        if self._backoff.attempt >= self._max_retries:
            raise GatewayRequestError(
                f"GET /gateway/bot failed after {self._backoff.attempt + 1} attempts: {problem}",
                status_code=status,
            )
        delay = self._backoff.next_delay()
        self._log.warning("GET /gateway/bot failed (%s); retrying in %.2f s", problem, delay)
        return delay


# -- sharding --------------------------------------------------------------------------

#: What ``Cluster.spawn`` takes: a shard count, explicit shard ids, or ``"auto"``.
SpawnSpec = int | Sequence[int] | Literal["auto"]


def plan_shards(
    spec: SpawnSpec, recommended: int | None, *, shard_count: int | None = None
) -> tuple[list[int], int]:
    """Turn a spawn spec into ``(shard ids, shard count)``.

    ``"auto"`` takes ``recommended`` (``shards`` of ``GET /gateway/bot``); an int ``n``
    spawns shards ``0..n-1`` of ``n``; explicit ids run in a total of
    ``recommended`` (or ``max(ids) + 1`` if that is unknown or too small).

    ``shard_count`` pins the total instead, for a process that runs a slice of a
    larger layout (``--shards 4-7/16``): then ``"auto"`` means every shard of
    ``shard_count``, an int ``n`` shards ``0..n-1`` of ``shard_count``, and ids must
    lie below it; ``recommended`` is ignored.

    Raises:
        ValueError: for an empty or invalid spec, or ids outside ``shard_count``.

    """
    if shard_count is not None:
        if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
            raise ValueError(f"shard_count must be a positive int, got {shard_count!r}")
        pinned, _ = plan_shards(spec, shard_count)
        if max(pinned) >= shard_count:
            raise ValueError(f"shard ids {spec!r} do not fit in shard_count={shard_count}")
        return pinned, shard_count
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


class StartOrder:
    """Which spawned shards may start connecting, so identifies are asked for in id order.

    Why: a shard asks for its identify permit after HELLO, so shards started all at
    once ask in whatever order their connections happened to open, and shard 1 may
    identify before shard 0. Discord wants buckets started in order. So per bucket
    (``shard_id % max_concurrency``) shards start one after another: the first of
    every bucket at once, each next one when its predecessor has *passed* its
    identify point (got its permit, or ended its first attempt some other way:
    resumed, failed to connect, stopped). Different buckets never wait for each
    other, and a shard connects while its predecessor's window runs, so a cold
    start takes no longer.

    Args:
        ids: the shard ids to start.
        max_concurrency: the number of identify buckets.

    """

    def __init__(self, ids: Iterable[int], max_concurrency: int) -> None:
        self._max_concurrency = max(1, max_concurrency)
        self._queues: dict[int, deque[int]] = {}
        for shard_id in sorted(ids):
            self._queues.setdefault(shard_id % self._max_concurrency, deque()).append(shard_id)
        self._started: set[int] = set()
        self._passed: set[int] = set()

    def first(self) -> list[int]:
        """Return the shards to start now (the first of each bucket), in id order."""
        heads = sorted(queue.popleft() for queue in self._queues.values() if queue)
        self._started.update(heads)
        return heads

    def passed(self, shard_id: int) -> int | None:
        """Note that ``shard_id`` passed its identify point; return the shard to start next.

        Only the first call per shard counts (re-identifies later are not starts).
        """
        if shard_id not in self._started or shard_id in self._passed:
            return None
        self._passed.add(shard_id)
        queue = self._queues.get(shard_id % self._max_concurrency)
        if not queue:
            return None
        following = queue.popleft()
        self._started.add(following)
        return following

    def pending(self) -> list[int]:
        """Return the shards not started yet, in id order."""
        return sorted(i for queue in self._queues.values() for i in queue)


# -- identify permits -------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class IdentifyTicket:
    """One shard's place in an :class:`IdentifyQueue`.

    Attributes:
        shard_id: the shard asking.
        order: arrival number (breaks ties between two requests of one shard).
        slot: the slot granted, or ``None`` while waiting.

    """

    shard_id: int
    order: int
    slot: IdentifySlot | None = None


class IdentifyQueue:
    """Identify requests waiting for a permit: per bucket, the lowest shard id goes first.

    Why: the arithmetic of :class:`~gateway_proto.identify.IdentifySchedule` hands
    slots out in call order, and shards call when their connection happens to be
    ready, so shard 1 could identify before shard 0. Discord asks for buckets to be
    started in order. Here a request only reserves its slot when it is *due* (its
    bucket is free and it has the lowest id of its bucket's waiters); until then
    any lower id that arrives goes ahead of it. A request whose bucket is free and
    that nobody waits before is granted at once, so nothing waits for no reason.

    Drivers call :meth:`add`, then :meth:`grant` whenever they wake (it returns every
    ticket that became due, and sets its ``slot``), sleep until :meth:`wake_at`, and
    :meth:`remove` a ticket whose wait was abandoned. Not thread-safe: wrap it in a
    lock where threads share it.

    Args:
        schedule: the buckets, the window and the session start budget.

    """

    def __init__(self, schedule: IdentifySchedule) -> None:
        self.schedule = schedule
        self._waiting: list[IdentifyTicket] = []
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, shard_id: int) -> IdentifyTicket:
        """Queue a request for ``shard_id`` and return its ticket."""
        self._arrivals += 1
        ticket = IdentifyTicket(shard_id, self._arrivals)
        self._waiting.append(ticket)
        return ticket

    def remove(self, ticket: IdentifyTicket) -> None:
        """Withdraw a waiting ticket (a granted or unknown one is ignored)."""
        if ticket in self._waiting:
            self._waiting.remove(ticket)

    def grant(self, now: float) -> list[IdentifyTicket]:
        """Reserve a slot for every request due at ``now``; return those tickets, in order."""
        granted: list[IdentifyTicket] = []
        while True:
            for head in self._heads():
                if self.schedule.peek(head.shard_id, now=now).at <= now:
                    head.slot = self.schedule.reserve(head.shard_id, now=now)
                    self._waiting.remove(head)
                    granted.append(head)
                    break  # that bucket is taken now: look at the heads again
            else:
                return granted

    def wake_at(self, ticket: IdentifyTicket, now: float) -> float:
        """Return when the waiters of ``ticket``'s bucket should look again (its head is due)."""
        head = self._head_of(self.schedule.bucket(ticket.shard_id))
        return self.schedule.peek((head or ticket).shard_id, now=now).at

    def estimate(self, ticket: IdentifyTicket, now: float) -> IdentifyWait:
        """Return the wait ``ticket`` can expect if no lower shard id arrives meanwhile."""
        trial = self.schedule.copy()
        bucket = trial.bucket(ticket.shard_id)
        at = now
        for ahead in self._ordered():
            if ahead is ticket:
                break
            if trial.bucket(ahead.shard_id) == bucket:
                at = trial.reserve(ahead.shard_id, now=at).at
        slot = trial.peek(ticket.shard_id, now=at)
        return IdentifyWait(max(0.0, slot.at - now), slot.bucket, slot.waits_for_reset)

    def _ordered(self) -> list[IdentifyTicket]:
        return sorted(self._waiting, key=lambda t: (t.shard_id, t.order))

    def _heads(self) -> list[IdentifyTicket]:
        heads: dict[int, IdentifyTicket] = {}
        for ticket in self._ordered():
            heads.setdefault(self.schedule.bucket(ticket.shard_id), ticket)
        return list(heads.values())  # lowest shard id first: buckets start in order

    def _head_of(self, bucket: int) -> IdentifyTicket | None:
        for ticket in self._ordered():
            if self.schedule.bucket(ticket.shard_id) == bucket:
                return ticket
        return None


@dataclass(frozen=True, slots=True)
class IdentifyGrant:
    """One identify permit, as an in-process identify limiter recorded it.

    Attributes:
        shard_id: the shard that got it.
        bucket: its bucket.
        at: the limiter clock's time from which the shard could identify.

    """

    shard_id: int
    bucket: int
    at: float


@runtime_checkable
class TracksIdentifySends(Protocol):
    """An identify limiter that wants to know when each IDENTIFY was actually written.

    Optional for an identify limiter: a limiter that has this method is told, right
    after the shard wrote the IDENTIFY its permit allowed, and can measure the
    window from then instead of from the permit (Discord measures it as IDENTIFYs
    arrive; see :mod:`gateway_proto.identify`). The in-process limiters do.
    """

    def identify_sent(self, shard_id: int) -> None:
        """``shard_id``'s IDENTIFY was written just now; must not block."""
        ...


def note_identify_sent(limiter: object, shard_id: int) -> None:
    """Tell ``limiter`` that ``shard_id``'s IDENTIFY was written, if it keeps track."""
    if isinstance(limiter, TracksIdentifySends):
        limiter.identify_sent(shard_id)


class InProcessLimiterBase:
    """What both drivers' in-process identify limiters share (no waiting, no lock).

    Holds the schedule (bucket arithmetic), the queue (lowest shard id first) and
    the grant history; the drivers add only the wait (and, for threads, a lock).
    """

    def __init__(
        self,
        max_concurrency: int,
        *,
        window: float,
        clock: Callable[[], float],
        history: int,
        log: logging.Logger,
    ) -> None:
        self._clock = clock
        self._schedule = IdentifySchedule(max_concurrency, window=window)
        self._queue = IdentifyQueue(self._schedule)
        self._log = log
        #: The most recent grants, oldest first (for metrics and tests).
        self.history: deque[IdentifyGrant] = deque(maxlen=history)

    @property
    def max_concurrency(self) -> int:
        """The number of buckets."""
        return self._schedule.max_concurrency

    @property
    def remaining(self) -> int | None:
        """Session starts left, if a budget is tracked."""
        return self._schedule.remaining

    def identify_sent(self, shard_id: int) -> None:
        """Note that ``shard_id``'s IDENTIFY was just written (see :class:`TracksIdentifySends`).

        Its bucket is held for a full window (plus
        :data:`~gateway_proto.identify.IDENTIFY_MARGIN`) from now, on this limiter's clock.
        """
        self._schedule.identified(shard_id, now=self._clock())

    def _record(self, ticket: IdentifyTicket) -> None:
        slot = ticket.slot
        assert slot is not None
        self.history.append(IdentifyGrant(ticket.shard_id, slot.bucket, slot.at))

    def _announce(
        self, shard_id: int, wait: IdentifyWait, on_wait: Callable[[IdentifyWait], None] | None
    ) -> None:
        if wait.waits_for_reset:
            self._log.warning(
                "session start limit spent: shard %d waits %.0f s for the budget to reset",
                shard_id,
                wait.delay,
            )
        else:
            self._log.debug(
                "shard %d waits %.2f s for identify bucket %d", shard_id, wait.delay, wait.bucket
            )
        if on_wait is not None:
            on_wait(wait)


# -- commands across connections ---------------------------------------------------------


class UnsentCommands:
    """Commands a shard accepted (its ``send()`` returned) that no connection wrote yet.

    Why: a connection drops the commands still queued in it when it closes (they
    wait for READY/RESUMED or for the 120 per 60 s limiter). A ``send()`` that
    returned must not silently vanish across a reconnect, so the driver records
    every command the connection accepted, feeds this every ``PayloadSent`` (a
    connection writes its commands first in, first out), hands what is left to the
    shard's next connection (:meth:`requeue`), and reports what is still left when
    the shard stops for good (``Stopped.unsent``).
    """

    def __init__(self) -> None:
        self._commands: deque[Command] = deque()

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def commands(self) -> tuple[Command, ...]:
        """The unsent commands, oldest first."""
        return tuple(self._commands)

    def accepted(self, command: Command) -> None:
        """Record a command that a connection's ``send()`` accepted."""
        self._commands.append(command)

    def observe(self, event: object) -> None:
        """Feed every event of the connection: a written command leaves the backlog."""
        if (
            isinstance(event, PayloadSent)
            and self._commands
            and event.opcode == self._commands[0].opcode
        ):
            self._commands.popleft()

    def requeue(self, connection: GatewayConnection, now: float) -> list[Command]:
        """Queue the backlog on a shard's new ``connection`` (before anything else).

        They go out, in their order, once that connection's session is live (resumed
        or new). Returns the commands it refused (``max_pending_commands``), which
        leave the backlog: the caller should say they were dropped.
        """
        refused: list[Command] = []
        kept: deque[Command] = deque()
        for command in self._commands:
            try:
                connection.send(command, now)
            except GatewayError:
                refused.append(command)
            else:
                kept.append(command)
        self._commands = kept
        return refused

    def take(self) -> tuple[Command, ...]:
        """Empty the backlog and return what it held (the shard stopped)."""
        commands = tuple(self._commands)
        self._commands.clear()
        return commands

    def stop_report(
        self,
        reason: str,
        *,
        error: BaseException | None = None,
        closed: Closed | None = None,
        log: logging.Logger | _LoggerAdapter | None = None,
    ) -> Stopped:
        """Empty the backlog into the :data:`DISCONNECT` payload of a shard that stopped.

        Warns on ``log`` (if given) when commands were left unsent.
        """
        unsent = self.take()
        if unsent and log is not None:
            log.warning("stopped with %d command(s) not sent", len(unsent))
        return Stopped(reason, error=error, closed=closed, unsent=unsent)


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


class ShardLogger(_LoggerAdapter):
    """A shard's logger: formats each record once and removes the token before it leaves.

    Both drivers log through it (``gateway_anyio.shard.<id>``, ``gateway_sync.shard.<id>``),
    so no handler, filter or formatter downstream ever sees the token.

    Args:
        logger: the logger to write to.
        token: the secret to redact.

    """

    def __init__(self, logger: logging.Logger, token: str) -> None:
        super().__init__(logger, {})
        self._token = token

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log ``msg % args`` at ``level``, redacted (the caller's line is kept)."""
        if self.logger.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 3)
            self.logger.log(level, redact(text, [self._token]), **kwargs)
