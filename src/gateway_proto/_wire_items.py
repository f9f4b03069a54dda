"""What the wire layer hands up: decoded payloads and the wire's own events.

One job: the types. :class:`~gateway_proto._wire.Wire` returns a
:data:`WireItem` per call of ``next_item()``: a :class:`Message` (op 0 as a
:class:`~gateway_proto.events.Dispatch`, any other op as ``(op, d, s, t)``) or
one of the four events below, which the connection's receive path turns into
state changes and ``Closed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codecs import Payload
from .errors import HandshakeError, ProtocolError
from .events import Dispatch

__all__ = [
    "HandshakeAccepted",
    "HandshakeRejected",
    "Message",
    "PeerClosed",
    "WireFailed",
    "WireItem",
]


@dataclass(frozen=True, slots=True)
class HandshakeAccepted:
    """The server answered the upgrade with 101: the WebSocket is open."""


@dataclass(frozen=True, slots=True)
class HandshakeRejected:
    """The upgrade failed: a non-101 answer (``status_code``) or a broken HTTP reply (0)."""

    status_code: int
    error: HandshakeError


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer's close frame arrived (``code`` is ``None`` when it carried none).

    The wire has already written the close reply if ours was not sent yet.
    """

    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class WireFailed:
    """The peer broke framing, compression, encoding or a size cap.

    The wire has already written a close frame with ``error.close_code`` and
    ignores all further input.
    """

    error: ProtocolError


#: A decoded gateway payload: op 0 as a :class:`Dispatch`, any other op as
#: ``(op, d, s, t)``.
Message = Dispatch | Payload
WireItem = Message | HandshakeAccepted | HandshakeRejected | PeerClosed | WireFailed
