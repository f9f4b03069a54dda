"""Connections that end before the session goes live: counted, and reported every time.

A server that refuses a shard (a missing ``User-Agent``, an unserved encoding, a
proxy that drops the upgrade) ends each connection before READY or RESUMED; the
reconnect policy then tries again, forever. That must never be silent: the
:class:`~.reactor.ConnectionReactor` asks :class:`EarlyEnds` about each such end
and hands the driver a :class:`ConnectionRejectedError` to emit as an ``error``
event, with the server's close code and reason and how many came in a row.
"""

from __future__ import annotations

from gateway_proto.errors import FatalCloseError, GatewayError
from gateway_proto.events import CloseCause, Closed

from .redaction import redact, redact_token_shapes

__all__ = ["ConnectionRejectedError", "EarlyEnds"]


class ConnectionRejectedError(GatewayError):
    """A connection ended before READY/RESUMED (the data of an ``error`` event).

    The shard goes on reconnecting; this says why the last attempt failed.

    Attributes:
        code: the close code (``None``: the transport ended without a close frame).
        reason: the server's close reason, or what ended the connection.
        cause: why the connection ended (a :class:`~gateway_proto.CloseCause`).
        in_a_row: how many connections in a row ended before READY/RESUMED.

    """

    def __init__(self, code: int | None, reason: str, cause: CloseCause, in_a_row: int) -> None:
        self.code = code
        self.reason = reason
        self.cause = cause
        self.in_a_row = in_a_row
        times = "" if in_a_row == 1 else f" ({in_a_row} in a row)"
        super().__init__(f"connection ended before READY{times}: {self.summary}")

    @property
    def summary(self) -> str:
        """The close code and reason, e.g. ``"4002 User-Agent header is required"``."""
        if self.code is None:
            return f"no close frame: {self.reason}"
        return f"{self.code} {self.reason}"


class EarlyEnds:
    """One shard's connections in a row that ended before READY/RESUMED.

    A driver keeps one per shard and gives it to each connection's reactor.

    Args:
        token: the shard's token, removed from the server's reasons it reports.

    """

    __slots__ = ("_token", "in_a_row")

    def __init__(self, token: str = "") -> None:
        self._token = token
        #: Connections in a row that ended before the session went live.
        self.in_a_row = 0

    def live(self) -> None:
        """READY or RESUMED arrived: the streak is over."""
        self.in_a_row = 0

    def ended(self, closed: Closed, *, resuming: bool) -> ConnectionRejectedError | None:
        """Count a connection that ended before READY/RESUMED; return what to report.

        Not reported (nor counted): a close the caller asked for, and a fatal close
        (the shard stops and raises it). Routine ends, a resume answered by op 9
        (the next connection identifies) and op 7, are reported only when they
        repeat. Everything else is reported every time.
        """
        if closed.cause is CloseCause.REQUESTED or isinstance(closed.error, FatalCloseError):
            return None
        self.in_a_row += 1
        routine = closed.cause is CloseCause.RECONNECT_REQUESTED or (
            resuming and closed.cause is CloseCause.INVALID_SESSION
        )
        if routine and self.in_a_row == 1:
            return None
        # The reason is the server's text: it must not carry the token out.
        reason = redact_token_shapes(redact(closed.reason, [self._token]))
        return ConnectionRejectedError(closed.code, reason, closed.cause, self.in_a_row)
