"""The control surface of a ``GatewayConnection``: the caller's calls, and what goes out.

Theory of operation: the caller's commands (``connect``, ``identify``, ``send``,
``close``), the timers (``next_deadline``, ``handle_timeout``) and the output
buffer (``data_to_send``), with what the receive path shares with them: writing
a payload, heartbeats, releasing rate-limited commands, and the closing
handshake down to the one ``Closed`` event. Every public method here processes
pending input first (the receive path's ``_process_input``), so what the
connection does never depends on whether, or when, events were drained.

:class:`ControlSurface` is the base of the classes that make up
:class:`~gateway_proto.connection.GatewayConnection` (``ControlSurface`` <-
:class:`~gateway_proto._receive_path.ReceivePath` <- ``GatewayConnection``):
plain inheritance, so a call costs what it cost when they were one class. It
declares the state all three share; ``GatewayConnection.__init__`` sets it, and
every state change goes through :data:`gateway_proto._state.TRANSITIONS`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from typing import TYPE_CHECKING, Any

from ._state import HEARTBEATING, ConnectionState, Input, next_state
from ._wire import Wire
from .close_codes import RESUMABLE_CLOSE, is_sendable, keeps_session
from .commands import Command
from .config import ShardConfig
from .errors import GatewayError, InvalidCommandError, LocalProtocolError
from .events import CloseCause, Closed, CloseInitiator, Event, PayloadSent
from .heartbeat import Heartbeater
from .opcodes import Opcode
from .ratelimit import CommandRateLimiter
from .session import Session

__all__ = ["ControlSurface"]

_S = ConnectionState
_CLOSED = ConnectionState.CLOSED
_REDACTED = "[REDACTED]"
_RESERVED_OPS = frozenset({Opcode.HEARTBEAT, Opcode.IDENTIFY, Opcode.RESUME})

# The documented logger name (docs/core.md): the one users configure, whichever
# part of the connection logs.
_log = logging.getLogger("gateway_proto.connection")


class ControlSurface:
    """The caller's side of a gateway connection (a part of ``GatewayConnection``)."""

    # The state the three parts share; GatewayConnection.__init__ sets (and explains) it.
    url: str
    _config: ShardConfig
    _rng: random.Random
    _resume: bool
    _session_id: str | None
    _resume_url: str | None
    _seq: int | None
    _last_s: int
    _duplicates: int
    _session_cache: Session | None
    _events: deque[Event]
    _out: bytearray
    _wire: Wire
    _pending: bool
    _arrival: float
    _state: ConnectionState
    _started: bool
    _now: float
    _heart: Heartbeater | None
    _limiter: CommandRateLimiter
    _queue: deque[tuple[Command, bytes, Any, float]]
    _held: bool
    _received: int
    _limiter_wait: float
    _live_since: float
    _hello_deadline: float | None
    _close_deadline: float | None
    _closing: dict[str, Any] | None

    if TYPE_CHECKING:

        def _process_input(self) -> None: ...  # the receive path's (ReceivePath)

    # -- driving the connection --------------------------------------------------------

    def connect(self, now: float) -> None:
        """Queue the WebSocket handshake for :attr:`url` (state stays CONNECTING).

        Raises:
            LocalProtocolError: if called twice.

        """
        if self._started:
            raise LocalProtocolError("connect() was already called on this connection")
        self._started = True
        self._now = now
        self._wire.initiate()

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the socket now; ``b""`` if none.

        Processes pending input first, so the replies the protocol owes (a
        heartbeat for op 1, pongs, close replies) are there whether or not the
        events were drained. Drain :meth:`events` first to keep parsing per message.
        """
        if self._pending:
            self._process_input()
        out = self._out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    def next_deadline(self) -> float | None:
        """Return when :meth:`handle_timeout` must be called next (``None``: no timer).

        The earliest of: the HELLO timeout, the next heartbeat (also the zombie
        check), the next rate-limit permit (only while commands wait), and the
        closing-handshake timeout. Calling ``handle_timeout`` early is harmless.
        Processes pending input first.
        """
        if self._pending:
            self._process_input()
        state = self._state
        if state is _S.AWAITING_HELLO:
            return self._hello_deadline
        if state is _S.CLOSING:
            return self._close_deadline
        if state not in HEARTBEATING or self._heart is None:
            return None
        deadline = self._heart.next_due
        if self._queue and state is _S.ACTIVE:
            deadline = min(deadline, self._limiter.next_available(self._now))
        return deadline

    def handle_timeout(self, now: float) -> None:
        """Do what is due at ``now``: heartbeat, zombie check, queued commands, timeouts.

        A heartbeat whose predecessor got no ACK means a zombie: the connection
        closes with 4000 (keeping the session) and queues ``Closed(cause=ZOMBIE)``.
        No HELLO by the HELLO timeout, or no close reply by the close timeout, ends
        in ``Closed(cause=TIMEOUT)``. May queue ``PayloadSent`` events.

        Pending input is processed first, at its arrival time: a heartbeat ACK
        that arrived before the deadline counts even if it was not drained yet.
        """
        if self._pending:
            self._process_input()
        state = self._state
        if state is _CLOSED:
            return
        self._now = now
        if state is _S.AWAITING_HELLO:
            if self._hello_deadline is not None and now >= self._hello_deadline:
                self._abort(RESUMABLE_CLOSE, "HELLO did not arrive in time", CloseCause.TIMEOUT)
            return
        if state is _S.CLOSING:
            if self._close_deadline is not None and now >= self._close_deadline:
                self._finish_closing(
                    CloseInitiator.TRANSPORT,
                    CloseCause.TIMEOUT,
                    " (the closing handshake timed out)",
                )
            return
        heart = self._heart
        if heart is not None and state in HEARTBEATING and now >= heart.next_due:
            if heart.is_zombie():
                reason = "no heartbeat ACK since the last heartbeat (zombie connection)"
                self._abort(RESUMABLE_CLOSE, reason, CloseCause.ZOMBIE)
                return
            self._send_heartbeat(now, periodic=True)
            heart.beat(now)
        if self._queue and state is _S.ACTIVE:
            self._flush_commands(now)

    def identify(self, now: float) -> None:
        """Send IDENTIFY: AWAITING_IDENTIFY -> IDENTIFYING. Queues ``PayloadSent``.

        Call it after ``IdentifyNeeded``, once the identify limiter gave a permit.
        If the connection started closing meanwhile (op 7, op 9, a close: a race a
        driver can't avoid while it waits for the permit), it does nothing.

        Raises:
            LocalProtocolError: in any other state (before HELLO, when resuming, a
                second time on this connection: Discord would close with 4005).
            InvalidCommandError: if the encoded IDENTIFY is over 4096 bytes (a
                very large presence); nothing is sent and the state is unchanged.

        """
        if self._pending:
            self._process_input()
        if self._state is _S.CLOSING or self._state is _CLOSED:
            return
        new_state = next_state(self._state, Input.SEND_IDENTIFY)
        if new_state is None:
            raise LocalProtocolError(
                f"identify() is only allowed once, after IdentifyNeeded "
                f"(state is {self._state.name})"
            )
        d = self._config.identify_payload()
        try:
            encoded = self._wire.encode(Opcode.IDENTIFY, d)
        except InvalidCommandError:
            raise InvalidCommandError(
                "the IDENTIFY payload is over 4096 bytes encoded (is the presence too large?)"
            ) from None
        self._now = now
        self._write(Opcode.IDENTIFY, encoded, {**d, "token": _REDACTED})
        self._limiter.record(now)
        self._state = new_state

    def send(self, command: Command, now: float) -> None:
        """Queue a command; it leaves once the session is live and the limiter allows.

        Commands sent before READY/RESUMED wait for it; the rest wait for a rate
        limit permit (see :meth:`next_deadline`). May write at once and queue
        ``PayloadSent``.

        Raises:
            InvalidCommandError: if the encoded payload is over 4096 bytes, or
                ``command`` is not a sendable :class:`~gateway_proto.commands.Command`.
            LocalProtocolError: if the connection is closing or closed, or
                ``config.max_pending_commands`` commands are already waiting.

        """
        if self._pending:
            self._process_input()
        if self._state is _S.CLOSING or self._state is _CLOSED:
            raise LocalProtocolError(f"cannot send: the connection is {self._state.name}")
        if not isinstance(command, Command) or command.opcode in _RESERVED_OPS:
            raise InvalidCommandError(
                f"send() takes a Command (not heartbeat, identify or resume), got {command!r}"
            )
        if len(self._queue) >= self._config.max_pending_commands:
            raise LocalProtocolError(
                f"{len(self._queue)} commands are already waiting (max_pending_commands)"
            )
        d = command.to_payload()
        encoded = self._wire.encode(command.opcode, d)
        self._queue.append((command, encoded, d, now))
        self._now = now
        if self._state is _S.ACTIVE:
            self._flush_commands(now)

    def close(self, code: int = 1000, reason: str = "", *, now: float) -> bool:
        """Start the closing handshake with ``code``: state becomes CLOSING.

        1000 and 1001 invalidate the session (``session`` becomes ``None``); any
        other code keeps it resumable (use
        :data:`~gateway_proto.close_codes.RESUMABLE_CLOSE`, 4000, for a planned
        restart). The ``Closed`` event, queued when the peer answers (or at EOF,
        or after ``config.close_timeout``), has ``cause=REQUESTED`` and
        ``can_reconnect=False``: a caller's close means "stop" unless the driver
        decides otherwise (a driver's reconnect resumes with ``Closed.session``).
        Before the WebSocket is open there is nothing to close politely: the
        ``Closed`` event is queued at once. Queued commands are dropped.

        Closing what is already closing or closed (pending input included: a close
        frame the peer sent is processed first) does nothing: the first close
        stands, with its code and its effect on the session. So a ``stop()`` that
        runs twice, or races the peer's close, needs no guard.

        Returns:
            ``True`` if this call closed (started the handshake, or ended a
            connection whose WebSocket was not open yet); ``False`` if the
            connection was already closing or closed and nothing was done.

        Raises:
            LocalProtocolError: for a close code one may not send (e.g. 1005,
                1006, 2000) or a reason over 123 bytes, in any state.

        """
        if not is_sendable(code):
            raise LocalProtocolError(f"{code} is not a close code a client may send")
        if len(reason.encode()) > 123:
            raise LocalProtocolError("the close reason must be at most 123 bytes in UTF-8")
        if self._pending:
            self._process_input()
        if self._state is _S.CLOSING or self._state is _CLOSED:
            return False
        self._now = now
        if not keeps_session(code):
            self._forget_session()
        text = reason or "closed by the caller"
        if self._state is _S.CONNECTING:  # no WebSocket yet: nothing to close politely
            self._finish(
                code, text, CloseInitiator.LOCAL, CloseCause.REQUESTED, can_reconnect=False
            )
            return True
        self._start_close(code, text, CloseCause.REQUESTED, now, can_reconnect=False, wire=reason)
        return True

    # -- internals ---------------------------------------------------------------------

    def _write(self, op: int, encoded: bytes, shown: Any) -> None:
        if self._wire.close_sent:
            # One receive_data can hold a payload and, after it, a close the wire
            # already answered: nothing may follow our close frame.
            return
        self._wire.write_message(encoded)
        self._events.append(PayloadSent(op, shown))

    def _send_heartbeat(self, now: float, *, periodic: bool = False) -> None:
        seq = self._seq
        self._write(Opcode.HEARTBEAT, self._wire.encode(Opcode.HEARTBEAT, seq), seq)
        if not periodic:  # the limiter's reserve stands for the periodic ones
            self._limiter.record(now)

    def _flush_commands(self, now: float) -> None:
        queue = self._queue
        limiter = self._limiter
        live = self._live_since
        while queue and limiter.try_acquire(now):
            command, encoded, d, queued = queue.popleft()
            waited = now - (queued if queued > live else live)
            if waited > 0.0:
                self._limiter_wait += waited
            self._write(command.opcode, encoded, d)
        if not queue:
            self._held = False
        elif not self._held:
            # Said at once, once per backlog: a command held back is never silent.
            self._held = True
            _log.warning(
                "shard %d: the command rate limit (%d per %g s, %d kept for heartbeats) "
                "holds back %d command(s); the next goes out in %.1f s",
                self._config.shard[0],
                limiter.limit,
                limiter.window,
                limiter.reserved,
                len(queue),
                limiter.next_available(now) - now,
            )

    def _transition(self, event: Input) -> bool:
        new_state = next_state(self._state, event)
        if new_state is None:
            return False
        self._state = new_state
        return True

    def _current_session(self) -> Session | None:
        session_id = self._session_id
        if session_id is None or self._resume_url is None:
            return None
        cached = self._session_cache
        seq = self._seq
        if cached is None or cached.sequence != seq or cached.session_id != session_id:
            cached = self._session_cache = Session(
                session_id=session_id, sequence=seq, resume_url=self._resume_url
            )
        return cached

    def _start_close(
        self,
        code: int,
        reason: str,
        cause: CloseCause,
        now: float,
        *,
        can_reconnect: bool = True,
        retry_after: float = 0.0,
        wire: str = "",
    ) -> None:
        # Say goodbye and wait for the peer's answer (or EOF, or close_timeout).
        self._transition(Input.START_CLOSE)  # callers checked the state is open
        self._wire.send_close(code, wire)
        self._queue.clear()
        self._close_deadline = now + self._config.close_timeout
        self._closing = {
            "code": code,
            "reason": reason,
            "cause": cause,
            "can_reconnect": can_reconnect,
            "retry_after": retry_after,
        }

    def _finish_closing(
        self, initiator: CloseInitiator, cause: CloseCause | None = None, suffix: str = ""
    ) -> None:
        pending = self._closing or {}
        self._finish(
            pending["code"],
            pending["reason"] + suffix,
            initiator,
            cause or pending["cause"],
            can_reconnect=pending["can_reconnect"],
            retry_after=pending["retry_after"],
        )

    def _abort(
        self, code: int, reason: str, cause: CloseCause, error: GatewayError | None = None
    ) -> None:
        # The peer is dead or broke the protocol: say goodbye, don't wait for an answer.
        # A close code other than 1000/1001 keeps the session resumable.
        if not self._wire.close_sent:
            self._wire.send_close(code)
        self._finish(code, reason, CloseInitiator.LOCAL, cause, error=error)

    def _forget_session(self) -> None:
        self._session_id = self._resume_url = self._seq = self._session_cache = None

    def _finish(
        self,
        code: int | None,
        reason: str,
        initiator: CloseInitiator,
        cause: CloseCause,
        *,
        can_reconnect: bool = True,
        retry_after: float = 0.0,
        error: GatewayError | None = None,
    ) -> None:
        # Queue the one and only Closed event; nothing happens after it (input
        # still buffered is dropped, as eager parsing stopped at the close).
        self._pending = False
        self._wire.discard()
        self._transition(Input.FINISH)
        self._queue.clear()
        self._closing = self._hello_deadline = self._close_deadline = None
        session = self._current_session()
        self._events.append(
            Closed(
                code=code,
                reason=reason,
                initiator=initiator,
                cause=cause,
                can_reconnect=can_reconnect,
                can_resume=session is not None,
                session=session,
                retry_after=retry_after,
                error=error,
            )
        )
