"""One connection, as a shard sees it: what each core event means, and what the driver times.

:class:`ConnectionReactor` maps each core event to a :class:`Reaction` (state
change, lifecycle event, log line, timer, identify wait); :class:`StepDeadline`
holds the one step only a driver can time (the WebSocket handshake, READY/RESUMED
after IDENTIFY/RESUME) and the log lines for when it stalls. :data:`WRITE_STALL_TIMEOUT`
bounds the other thing only a driver sees: a write the peer never takes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway_proto.errors import GatewayError
from gateway_proto.events import (
    Closed,
    Dispatch,
    Event,
    IdentifyNeeded,
    Opened,
    PayloadSent,
    ProtocolWarning,
)
from gateway_proto.opcodes import Opcode

from .rejections import EarlyEnds
from .shard_events import CLOSE, CONNECT, ERROR, OPEN, RECEIVE, SEND, Connected, ShardState

if TYPE_CHECKING:
    from gateway_proto.connection import GatewayConnection


#: Log lines of the steps only a driver can time (see :class:`StepDeadline`).
HANDSHAKE_TIMED_OUT = "the WebSocket handshake timed out"
READY_TIMED_OUT = "READY did not arrive in time"
RESUMED_TIMED_OUT = "RESUMED did not arrive in time"

#: Seconds a write may make no progress (the peer reads nothing) before the driver
#: drops the transport, which the core handles like any lost connection (resumable).
#: Heartbeats and zombie detection must never wait on a write: a peer that stops
#: reading usually stops answering too, and the core's zombie check catches it
#: sooner; this bounds the peer that keeps talking but never reads.
WRITE_STALL_TIMEOUT = 30.0
#: Log line of a write that made no progress for :data:`WRITE_STALL_TIMEOUT`.
WRITE_STALLED = f"writes made no progress for {WRITE_STALL_TIMEOUT:.0f} s; dropping the connection"


@dataclass(frozen=True, slots=True)
class Reaction:
    """What a driver does about one core event besides delivering it (see ConnectionReactor).

    A driver applies the fields in this order: the timer (:meth:`StepDeadline.follow`),
    the log line, the state change, the lifecycle event, the error event, then the
    identify wait.

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
        error: emit it as an :data:`~.shard_events.ERROR` event (a connection that
            ended before READY: see :class:`~.rejections.ConnectionRejectedError`).

    """

    state: ShardState | None = None
    reason: str = ""
    emit: tuple[str, Any] | None = None
    timer: tuple[float, str] | None = None
    stop_timer: bool = False
    identify: bool = False
    log: tuple[int, str] | None = None
    closed: Closed | None = None
    error: GatewayError | None = None


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
    - ``Closed``: log it (an error if it carried one), emit :data:`CLOSE`. If the
      session never went live on this connection, ask ``early_ends`` whether to
      report it too (:class:`~.rejections.EarlyEnds`): a warning and an error event.
    - ``ProtocolWarning``: log it as a warning, emit :data:`ERROR` with its error
      (the connection carries on).
    - Anything else from the server: emit :data:`RECEIVE`.

    Ordinary dispatches (all but READY and RESUMED) give ``None``: the driver
    delivers them itself (by name, then :data:`RECEIVE`), and
    :class:`~.drain.EventDrain` does not even ask.

    :data:`SEND` and :data:`RECEIVE` events are *quiet*: given ``wants``,
    :meth:`react` leaves them out when nothing listens to them, and a reaction with
    nothing else in it is not built at all (``None``). Every heartbeat is a payload
    sent and an ACK received, so an idle shard's work is little else.

    Args:
        conn: the connection, before it connects (it resumes if it holds a session).
        ready_timeout: seconds from IDENTIFY/RESUME to READY/RESUMED.
        early_ends: the shard's count of connections in a row that ended before
            READY/RESUMED (give each connection's reactor the same one).

    """

    __slots__ = ("_conn", "_early_ends", "_live", "_ready_timeout", "resuming")

    def __init__(
        self,
        conn: GatewayConnection,
        *,
        ready_timeout: float,
        early_ends: EarlyEnds | None = None,
    ) -> None:
        self._conn = conn
        self._ready_timeout = ready_timeout
        self._early_ends = early_ends if early_ends is not None else EarlyEnds()
        self._live = False
        #: Whether the connection resumes a session (else it identifies).
        self.resuming = conn.session is not None

    def react(self, event: Event, wants: Callable[[str], bool] | None = None) -> Reaction | None:
        """Return what the driver does about ``event`` (``None``: nothing more to do).

        ``wants``: whether anything listens to events of a name (the emitter's
        ``wants``); without it, every quiet event is emitted.
        """
        if type(event) is Dispatch:  # first and cheap: nearly every event is one
            name = event.name
            if name != "READY" and name != "RESUMED":  # noqa: PLR1714 (hot path)
                return None
            live = Connected(name == "RESUMED", self._conn.session)
            self._live = True
            self._early_ends.live()
            return Reaction(ShardState.READY, name, emit=(CONNECT, live), stop_timer=True)
        if isinstance(event, PayloadSent):
            # Decided before anything is built: nothing at all for a heartbeat nobody hears.
            send = wants is None or wants(SEND)
            emit = (SEND, {"op": event.opcode, "d": event.data}) if send else None
            if event.opcode == Opcode.IDENTIFY:
                return Reaction(emit=emit, timer=(self._ready_timeout, READY_TIMED_OUT))
            return None if emit is None else Reaction(emit=emit)
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
            early = None
            if not self._live:
                early = self._early_ends.ended(event, resuming=self.resuming)
                if early is not None:
                    level, line = logging.WARNING, str(early)
            return Reaction(
                emit=(CLOSE, event),
                stop_timer=True,
                log=(level, line),
                closed=event,
                error=early,
            )
        if isinstance(event, ProtocolWarning):
            return Reaction(emit=(ERROR, event.error), log=(logging.WARNING, str(event.error)))
        if wants is not None and not wants(RECEIVE):
            return None  # a heartbeat ACK, most often
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
