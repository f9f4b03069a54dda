"""Events: what a :class:`~gateway_proto.connection.GatewayConnection` reports.

Every event is a frozen, slotted dataclass that compares by value, so tests can
``assert list(conn.events()) == [...]``. Don't subclass them. A driver handles all
of them in one ``match`` statement; only :class:`Closed` ends a connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import GatewayError, ProtocolError
from .session import Session

__all__ = [
    "CloseCause",
    "CloseInitiator",
    "Closed",
    "Dispatch",
    "Event",
    "HeartbeatAck",
    "Hello",
    "IdentifyNeeded",
    "InvalidSession",
    "Opened",
    "PayloadSent",
    "ProtocolWarning",
    "ReconnectRequested",
]


class Event:
    """Base class of every event (it has no fields of its own)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Opened(Event):
    """The WebSocket handshake succeeded; HELLO comes next."""


@dataclass(frozen=True, slots=True)
class Hello(Event):
    """Discord's op 10: heartbeating has started.

    Attributes:
        heartbeat_interval: seconds between heartbeats (Discord sends milliseconds).

    """

    heartbeat_interval: float


@dataclass(frozen=True, slots=True)
class IdentifyNeeded(Event):
    """The connection is ready to IDENTIFY and waits for the driver's permit.

    Get a permit from the identify limiter (max_concurrency buckets, session
    start budget), then call ``identify(now)``. Not emitted when resuming.
    """


@dataclass(frozen=True, slots=True)
class Dispatch(Event):
    """An op 0 dispatch, READY and RESUMED included.

    Attributes:
        name: the event name (``t``), e.g. ``"MESSAGE_CREATE"``.
        data: the decoded ``d`` (str keys, str strings, snowflakes as str).
        sequence: the sequence number ``s``.
        raw: the whole payload as received, after decompression (JSON text or an
            ETF term, the connection's encoding), when ``ShardConfig.keep_raw``
            is on; else ``None``. Not part of equality or ``repr``.

    """

    name: str
    data: Any
    sequence: int | None
    raw: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HeartbeatAck(Event):
    """Op 11 arrived.

    Attributes:
        latency: seconds between the last heartbeat sent and this ack
            (``None`` for an ack no heartbeat of ours is waiting on).

    """

    latency: float | None


@dataclass(frozen=True, slots=True)
class ReconnectRequested(Event):
    """Op 7: Discord asked for a reconnect; the connection is closing to resume."""


@dataclass(frozen=True, slots=True)
class InvalidSession(Event):
    """Op 9: the session was invalidated (or an identify/resume was refused).

    Attributes:
        resumable: Discord's ``d``: whether a resume may still work.

    """

    resumable: bool


@dataclass(frozen=True, slots=True)
class PayloadSent(Event):
    """A payload was written to the output buffer (heartbeats included).

    Attributes:
        opcode: the payload's ``op``.
        data: the payload's ``d`` before encoding, with any token replaced by
            ``"[REDACTED]"``.

    """

    opcode: int
    data: Any


@dataclass(frozen=True, slots=True)
class ProtocolWarning(Event):
    """The peer broke a rule the connection worked around without closing.

    For example an :class:`~gateway_proto.errors.UnsafeResumeUrlError`: READY's
    ``resume_gateway_url`` was refused and the base URL is used instead. Drivers
    log it as a warning and surface ``error`` as an ``error`` event.

    Attributes:
        error: what the peer did, as a typed error (never raised).

    """

    error: ProtocolError


class CloseInitiator(enum.Enum):
    """Who ended the connection."""

    #: The server sent a close frame.
    PEER = "peer"
    #: This side closed: the caller, or the connection itself (zombie, op 7, op 9, peer fault).
    LOCAL = "local"
    #: The transport ended (EOF) without a close frame, or a timeout gave up on it.
    TRANSPORT = "transport"


class CloseCause(enum.Enum):
    """Why the connection ended, for logs, metrics and reconnect policy."""

    #: The caller called ``close()``.
    REQUESTED = "requested"
    #: The server closed with a code; see ``Closed.code``.
    SERVER_CLOSED = "server_closed"
    #: No heartbeat ACK came back before the next heartbeat was due.
    ZOMBIE = "zombie"
    #: The server sent op 7 Reconnect.
    RECONNECT_REQUESTED = "reconnect_requested"
    #: The server sent op 9 Invalid Session.
    INVALID_SESSION = "invalid_session"
    #: The peer broke the protocol (bad frame, bad payload, decompression bomb).
    PROTOCOL_ERROR = "protocol_error"
    #: The WebSocket upgrade was refused.
    HANDSHAKE_FAILED = "handshake_failed"
    #: The transport ended without a close frame.
    CONNECTION_LOST = "connection_lost"
    #: A step timed out (HELLO never came, or the closing handshake stalled).
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(Event):
    """The connection is over; this is always the last event.

    Attributes:
        code: the close code (received, or sent if this side closed first);
            ``None`` when the transport ended without a close frame.
        reason: the close reason text, or a description of the cause.
        initiator: who ended the connection.
        cause: why it ended.
        can_reconnect: ``False`` after a fatal close code or a ``close()`` the
            caller asked for; otherwise reconnecting is the right thing to do.
        can_resume: whether ``session`` may be used to resume.
        session: the session to resume with, or ``None`` when the next
            connection must identify.
        retry_after: seconds the protocol asks to wait before reconnecting
            (e.g. the customary 1-5 s after a non-resumable op 9); add backoff
            on top of it.
        error: a :class:`~gateway_proto.errors.FatalCloseError` for fatal codes,
            a :class:`~gateway_proto.errors.ProtocolError` for peer faults, else
            ``None``.

    """

    code: int | None
    reason: str
    initiator: CloseInitiator
    cause: CloseCause
    can_reconnect: bool
    can_resume: bool
    session: Session | None
    retry_after: float = 0.0
    error: GatewayError | None = None
