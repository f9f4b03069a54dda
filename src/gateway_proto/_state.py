"""The connection's states and every transition between them, as data.

Theory of operation (h11's two rules): every state change of a
:class:`~gateway_proto.connection.GatewayConnection` is a row of
:data:`TRANSITIONS`, and nothing else in the package assigns a state; inputs from
this side (``SEND_*``, ``START_CLOSE``) and from the peer (``RECV_*``) go through
the same table. A missing row means the input is illegal in that state: the
connection raises :class:`~gateway_proto.errors.LocalProtocolError` for a local
input (state unchanged) and ignores a remote one, which a server can't make
harmful (an unexpected READY changes nothing).

::

    CONNECTING --HANDSHAKE_ACCEPTED--> AWAITING_HELLO
    AWAITING_HELLO --RECV_HELLO--> AWAITING_IDENTIFY   (no session: IdentifyNeeded)
    AWAITING_HELLO --RECV_HELLO_RESUME--> RESUMING     (session: RESUME sent at once)
    AWAITING_IDENTIFY --SEND_IDENTIFY--> IDENTIFYING --RECV_READY--> ACTIVE
    RESUMING --RECV_RESUMED--> ACTIVE
    any open state --START_CLOSE--> CLOSING            (close frame sent, reply awaited)
    any state but CLOSED --FINISH--> CLOSED            (the Closed event is queued)
"""

from __future__ import annotations

import enum

__all__ = ["ConnectionState"]


class ConnectionState(enum.Enum):
    """Where a :class:`~gateway_proto.connection.GatewayConnection` is in its life."""

    #: Built; after ``connect()`` the WebSocket handshake is on its way.
    CONNECTING = "connecting"
    #: The WebSocket is open; waiting for HELLO (op 10).
    AWAITING_HELLO = "awaiting_hello"
    #: HELLO arrived, no session to resume: waiting for the driver's ``identify()``.
    AWAITING_IDENTIFY = "awaiting_identify"
    #: IDENTIFY sent; waiting for READY.
    IDENTIFYING = "identifying"
    #: RESUME sent; replayed dispatches arrive, then RESUMED.
    RESUMING = "resuming"
    #: The session is live (READY or RESUMED arrived); commands flow.
    ACTIVE = "active"
    #: A close frame was sent; waiting for the peer's reply (or a timeout).
    CLOSING = "closing"
    #: Over: the ``Closed`` event was queued. Nothing more happens.
    CLOSED = "closed"


class Input(enum.Enum):
    """What moves the state machine (private)."""

    HANDSHAKE_ACCEPTED = "handshake_accepted"
    RECV_HELLO = "recv_hello"
    RECV_HELLO_RESUME = "recv_hello_resume"
    SEND_IDENTIFY = "send_identify"
    RECV_READY = "recv_ready"
    RECV_RESUMED = "recv_resumed"
    START_CLOSE = "start_close"
    FINISH = "finish"


_S = ConnectionState
_OPEN_STATES = (
    _S.CONNECTING,
    _S.AWAITING_HELLO,
    _S.AWAITING_IDENTIFY,
    _S.IDENTIFYING,
    _S.RESUMING,
    _S.ACTIVE,
)

#: ``(state, input) -> new state``; a missing pair is an illegal input.
TRANSITIONS: dict[tuple[ConnectionState, Input], ConnectionState] = {
    (_S.CONNECTING, Input.HANDSHAKE_ACCEPTED): _S.AWAITING_HELLO,
    (_S.AWAITING_HELLO, Input.RECV_HELLO): _S.AWAITING_IDENTIFY,
    (_S.AWAITING_HELLO, Input.RECV_HELLO_RESUME): _S.RESUMING,
    (_S.AWAITING_IDENTIFY, Input.SEND_IDENTIFY): _S.IDENTIFYING,
    (_S.IDENTIFYING, Input.RECV_READY): _S.ACTIVE,
    (_S.RESUMING, Input.RECV_RESUMED): _S.ACTIVE,
    # A READY instead of RESUMED means the server started a new session: it is live.
    (_S.RESUMING, Input.RECV_READY): _S.ACTIVE,
    # A READY on a live connection (a server replacing the session) keeps it live.
    (_S.ACTIVE, Input.RECV_READY): _S.ACTIVE,
    **{(state, Input.START_CLOSE): _S.CLOSING for state in _OPEN_STATES},
    **{(state, Input.FINISH): _S.CLOSED for state in (*_OPEN_STATES, _S.CLOSING)},
}

#: States in which the peer may still send payloads we act on (heartbeat timers run).
HEARTBEATING = frozenset({_S.AWAITING_IDENTIFY, _S.IDENTIFYING, _S.RESUMING, _S.ACTIVE})


def next_state(state: ConnectionState, event: Input) -> ConnectionState | None:
    """Return the state ``event`` leads to from ``state``, or ``None`` if it is illegal."""
    return TRANSITIONS.get((state, event))
