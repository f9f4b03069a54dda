"""Between connections: whether and when a shard connects again once one ended.

:func:`after_connection` applies the rules (stop, connect failure, restart, the
reconnect policy) and returns a :class:`NextAttempt`; :func:`describe_error`
formats an exception for its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_proto.errors import FatalCloseError
from gateway_proto.events import Closed

from .redaction import _LoggerAdapter
from .shard_events import ShardState, Stopped
from .unsent import UnsentCommands

if TYPE_CHECKING:
    from gateway_proto.reconnect import Reconnector


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
    now: float | None = None,
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
        now: the driver's clock, which times how long a lost session is resumed
            (``ShardConfig.max_resume_age``); ``None``: no age limit.

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
        wait = reconnector.after_connect_failure(what, now=now)
        return NextAttempt(wait, f"connect failed ({what})")
    if restart and not isinstance(closed.error, FatalCloseError):
        return NextAttempt(reconnector.after_restart(closed), "reconnect requested")
    delay = reconnector.after_close(closed, now=now)
    if delay is None:
        error = reconnector.fatal_error
        return NextAttempt(None, "disconnected" if error is None else str(error), error)
    return NextAttempt(delay, f"{closed.cause.value} (code {closed.code}): {closed.reason}")
