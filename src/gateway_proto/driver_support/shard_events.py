"""Lifecycle event names, the event envelope and the payloads a shard's events carry.

The names a driver emits besides Discord's dispatch names (:data:`OPEN`,
:data:`CLOSE`, ...), the envelope handlers receive (:class:`GatewayEvent`), the
data each lifecycle event carries (:class:`StateChange`, :class:`Connected`,
:class:`Stopped`, :class:`IdentifyWait`), where a shard is in its life
(:class:`ShardState`) and the counters it keeps (:class:`ShardCounters`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

from typing_extensions import TypeVar

from gateway_proto.commands import Command
from gateway_proto.events import Closed
from gateway_proto.session import Session

try:
    from gateway_proto._speedups import SlotMaker
except ImportError:  # not compiled (see setup.py): new_gateway_event is Python then
    SlotMaker = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from gateway_proto.connection import GatewayConnection
    from gateway_proto.reconnect import Reconnector

    from .redaction import ShardLogger

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
#: Register a handler (or open ``events()``) under this name to get every Discord
#: dispatch once, by its own name (``MESSAGE_CREATE``, ...): no lifecycle events,
#: and not the ``receive`` copy that ``"*"`` gets as well.
ANY_DISPATCH = "dispatch"


def name_matches(names: frozenset[str], name: str) -> bool:
    """Whether an event named ``name`` belongs to a subscription to ``names`` (empty: all)."""
    return (
        not names
        or name in names
        or (ANY_DISPATCH in names and name not in LIFECYCLE_EVENTS and name != ANY_DISPATCH)
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


#: The type of a :class:`GatewayEvent`'s ``data`` (``Any`` when not given).
DataT_co = TypeVar("DataT_co", covariant=True, default=Any)
#: The type of a :class:`GatewayEvent`'s ``shard`` (``Any`` when not given).
ShardT_co = TypeVar("ShardT_co", covariant=True, default=Any)


@dataclass(frozen=True, slots=True)
class GatewayEvent(Generic[DataT_co, ShardT_co]):
    """What handlers and ``events()`` receive: one event of one shard.

    Generic for type checkers only: ``GatewayEvent[MessageCreate, Shard]`` is
    what a handler registered for ``"MESSAGE_CREATE"`` gets (the drivers'
    ``on()`` and ``events()`` pick the parameters from the event name); a bare
    ``GatewayEvent`` means ``GatewayEvent[Any, Any]``. At run time it is the same
    class and ``data`` is the decoded dict, untouched.

    Attributes:
        name: a Discord dispatch name (``"MESSAGE_CREATE"``) or a lifecycle name
            (:data:`OPEN`, :data:`CLOSE`, ...).
        shard_id: the shard it came from.
        data: the dispatch's ``d``, or the lifecycle event's payload (see the names).
        sequence: the dispatch's sequence number; ``None`` for lifecycle events.
        shard: the driver's ``Shard`` object (not part of equality or ``repr``).
        raw: a dispatch's payload bytes as received, when its shard keeps them
            (``keep_raw``: see :attr:`gateway_proto.events.Dispatch.raw`); else
            ``None`` (not part of equality or ``repr``).

    """

    name: str
    shard_id: int
    data: DataT_co
    sequence: int | None = None
    # The default only serves code that builds events by hand (tests); drivers
    # always pass the shard, so the field is typed as the shard it carries.
    shard: ShardT_co = field(default=cast("Any", None), compare=False, repr=False)
    raw: bytes | None = field(default=None, compare=False, repr=False)


_EventMaker = Callable[[str, int, Any, "int | None", Any, "bytes | None"], GatewayEvent]
_EVENT_SLOTS = ("name", "shard_id", "data", "sequence", "shard", "raw")


class _BuildingEvent(Generic[DataT_co, ShardT_co]):
    """A :class:`GatewayEvent` being built: its very slots, without the frozen ``__setattr__``.

    Plain stores into one, then a class change to :class:`GatewayEvent` (the same
    layout), cost half of setting the slots through their descriptors: the Python
    makers' way, where the interpreter allows it (:data:`_SWAP`).
    """

    __slots__ = GatewayEvent.__slots__


def _swap_works() -> bool:
    """Whether this interpreter lets a :class:`_BuildingEvent` become a :class:`GatewayEvent`."""
    probe: Any = object.__new__(_BuildingEvent)
    for name in _EVENT_SLOTS:
        setattr(probe, name, None)
    try:
        probe.__class__ = GatewayEvent
    except TypeError:  # pragma: no cover - CPython allows it (same slots, same bases)
        return False
    return type(probe) is GatewayEvent


#: Build events through :class:`_BuildingEvent` (else through the slot descriptors).
_SWAP = _swap_works()


def python_event_maker(*, swap: bool = _SWAP) -> _EventMaker:
    """``new_gateway_event`` without the C extension (``swap``: see :class:`_BuildingEvent`)."""
    new = object.__new__
    if swap:
        building, event_class = _BuildingEvent, GatewayEvent

        def new_swapped(  # noqa: PLR0917 - positional, as SlotMaker's calls are
            name: str, shard_id: int, data: Any, sequence: int | None, shard: Any, raw: bytes | None
        ) -> Any:
            event: Any = new(building)
            event.name = name
            event.shard_id = shard_id
            event.data = data
            event.sequence = sequence
            event.shard = shard
            event.raw = raw
            event.__class__ = event_class
            return event

        return new_swapped
    set_name, set_shard_id, set_data, set_sequence, set_shard, set_raw = (
        getattr(GatewayEvent, name).__set__ for name in _EVENT_SLOTS
    )

    def new_event(  # noqa: PLR0917 - positional, as SlotMaker's calls are
        name: str, shard_id: int, data: Any, sequence: int | None, shard: Any, raw: bytes | None
    ) -> Any:
        event = new(GatewayEvent)
        set_name(event, name)
        set_shard_id(event, shard_id)
        set_data(event, data)
        set_sequence(event, sequence)
        set_shard(event, shard)
        set_raw(event, raw)
        return event

    return new_event


#: ``new_gateway_event(name, shard_id, data, sequence, shard, raw)`` is
#: ``GatewayEvent(name, shard_id, data, sequence, shard, raw)`` in a tenth of the time:
#: drivers build one per dispatch, and a frozen dataclass's ``__init__`` (five
#: ``object.__setattr__`` calls) cost as much as a tenth of decoding the event.
new_gateway_event: _EventMaker = (
    python_event_maker() if SlotMaker is None else SlotMaker(GatewayEvent, _EVENT_SLOTS)
)


def dispatch_event_maker(
    shard_id: int, shard: Any, *, swap: bool = _SWAP
) -> Callable[[str, Any, int | None, bytes | None], GatewayEvent]:
    """``make(name, data, sequence, raw)``: a dispatch's event of this shard.

    What ``EventDrain`` hands ``GatewayConnection.take_dispatches``: with the C
    extension, a ``SlotMaker`` with the shard's id and shard fixed, which the C
    hot path calls without running Python code (``swap``: see :class:`_BuildingEvent`).
    """
    if SlotMaker is not None:
        fixed = {"shard_id": shard_id, "shard": shard}
        return SlotMaker(GatewayEvent, ("name", "data", "sequence", "raw"), fixed)
    make = python_event_maker(swap=swap)

    def new_event(name: str, data: Any, sequence: int | None, raw: bytes | None) -> Any:
        return make(name, shard_id, data, sequence, shard, raw)

    return new_event


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


#: How many distinct dispatch names :class:`ShardCounters` keeps apart.
MAX_DISPATCH_NAMES = 256


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
        duplicates_dropped: dispatches a server replayed that were already
            delivered in the session (``s`` not above the last one), dropped.
        dispatch_names: dispatches delivered, by event name (at most
            :data:`MAX_DISPATCH_NAMES` names; later new names count as ``"other"``).
        closes: connections that ended, by close code (``0``: no close code, the
            transport was lost).
        reconnect_codes: ``reconnects`` by ``(cause, close code)`` (code ``0``:
            none, the transport was lost or never opened).
        commands_queued: commands accepted and not written yet on the live
            connection (waiting for READY/RESUMED or a rate limit permit).
        commands_refused: commands ``send()`` refused (raised): not connected,
            too many waiting, or invalid.
        rate_limit_wait: seconds commands waited for a rate limit permit, summed.
        bytes_received: bytes read from the gateway's sockets (still compressed).
        payload_bytes: the size of the messages decoded, after decompression.
        messages_decoded: messages decoded (gateway payloads of any opcode).
        decode_seconds: seconds the shard spent turning received bytes into
            events (the core's parsing and decoding, plus counting and handing
            each event to its handlers' buffers; not the handlers' own work).

    """

    identifies: int = 0
    resumes: int = 0
    connections: int = 0
    dispatches: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0
    duplicates_dropped: int = 0
    dispatch_names: dict[str, int] = field(default_factory=dict)
    closes: dict[int, int] = field(default_factory=dict)
    reconnect_codes: dict[tuple[str, int], int] = field(default_factory=dict)
    commands_queued: int = 0
    commands_refused: int = 0
    rate_limit_wait: float = 0.0
    bytes_received: int = 0
    payload_bytes: int = 0
    messages_decoded: int = 0
    decode_seconds: float = 0.0

    def count_dispatch_name(self, name: str) -> dict[str, int]:
        """Count the first dispatch of a name not seen yet (the drivers count the rest inline).

        The names come from the server: bounded, so that a server inventing names
        cannot grow the dict (and a metrics label set) without end. A new name
        replaces the dict whole (returned, for the caller's local reference): another
        thread iterating the old one never sees it change size.
        """
        names = self.dispatch_names
        if name not in names and len(names) >= MAX_DISPATCH_NAMES:
            name = "other"
        self.dispatch_names = names = {**names, name: names.get(name, 0) + 1}
        return names

    def count_close(self, closed: Closed | None) -> None:
        """Count one ended connection by its close code (``0``: none, or it never opened)."""
        code = 0 if closed is None or closed.code is None else closed.code
        # Replaced whole, as dispatch_names: other threads may be iterating it.
        self.closes = {**self.closes, code: self.closes.get(code, 0) + 1}


class ConnectionTally:
    """Keeps a shard's per-connection counters as totals over all its connections.

    The core counts per connection (``GatewayConnection.bytes_received``, ...);
    a shard's counters are the ended connections' totals plus the live one's.
    The driver calls :meth:`track` with each new connection and :meth:`update`
    when it copies the core's counts (once per batch of events, never per event).

    Args:
        counters: the shard's counters, which :meth:`update` sets.

    """

    __slots__ = ("_base", "_conn", "_counters")

    def __init__(self, counters: ShardCounters) -> None:
        self._counters = counters
        self._conn: GatewayConnection | None = None
        self._base = (0, 0, 0, 0.0)

    def track(self, conn: GatewayConnection) -> None:
        """Count ``conn`` from now on, on top of everything counted so far."""
        self.update()
        c = self._counters
        self._base = (c.bytes_received, c.payload_bytes, c.messages_decoded, c.rate_limit_wait)
        self._conn = conn

    def update(self, reconnector: Reconnector | None = None) -> None:
        """Copy the live connection's counts, and ``reconnector``'s, into the counters.

        The reconnector counts identifies, resumes, replayed duplicates and
        reconnects over all of a run's connections. Its dicts are copied, and
        replaced whole when they changed: other threads (a status server) may be
        iterating the counters' dicts.
        """
        c = self._counters
        if reconnector is not None:
            c.identifies = reconnector.identifies
            c.resumes = reconnector.resumes
            c.duplicates_dropped = reconnector.duplicates_dropped
            if c.reconnects != reconnector.reconnects:
                c.reconnects = dict(reconnector.reconnects)
                c.reconnect_codes = dict(reconnector.reconnect_codes)
        conn = self._conn
        if conn is None:
            return
        received, payload, messages, waited = self._base
        c.bytes_received = received + conn.bytes_received
        c.payload_bytes = payload + conn.payload_bytes
        c.messages_decoded = messages + conn.messages_decoded
        c.rate_limit_wait = waited + conn.rate_limit_wait
        c.commands_queued = conn.commands_queued


class _Emits(Protocol):
    def emit(self, event: GatewayEvent) -> None: ...


class ShardReporting:
    """How a driver's shard reports: emit one of its events, and change its state.

    A mixin for both drivers' shard classes, which set the attributes it names.
    A state change is logged, emitted as :data:`STATE` with a :class:`StateChange`,
    and passed on to ``_on_state`` (a cluster's hook), in that order.
    """

    id: int
    _state: ShardState
    _log: ShardLogger
    _emitter: _Emits
    _on_state: Callable[[Any], None] | None

    def _emit(self, name: str, data: Any, sequence: int | None = None) -> None:
        self._emitter.emit(new_gateway_event(name, self.id, data, sequence, self, None))

    def _set_state(self, new: ShardState, reason: str) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._log.info("%s -> %s: %s", old.value, new.value, reason)
            self._emit(STATE, StateChange(old, new, reason))
            if self._on_state is not None:
                self._on_state(self)
