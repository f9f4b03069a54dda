"""The receive path of a ``GatewayConnection``: socket bytes to events (the hot path).

Theory of operation: ``receive_data`` only buffers the bytes in the wire
(:meth:`~gateway_proto._wire.Wire.feed`, the upgrade reply aside) and stamps
their arrival time; ``events()`` and ``next_event()`` parse one message at a
time (the C hot path's ``fast_next``, else the wire's Python parser) and react
to each at its arrival time: a dispatch's sequence (replayed duplicates are
dropped), READY and RESUMED, the control opcodes (op 1, HELLO, op 7, op 9) and
the wire's own events (the upgrade, the peer's close, a protocol fault).
``_process_input`` does the same for all pending input, for every other method.
``take_dispatches`` is the drivers' way through the same input: runs of ordinary
dispatches (the C scanner's ``run``, else its Python reference here), and every
other message through the same reactions.

:class:`ReceivePath` sits on :class:`~gateway_proto._control_surface.ControlSurface`,
whose helpers write the replies and close; ``GatewayConnection`` sits on it.
``events()`` is the core's hot path: per dispatch it costs a compare on the sequence
and two on the name; keep it so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ._control_surface import _REDACTED, ControlSurface
from ._state import ConnectionState, Input
from ._urls import downgrades, without_userinfo
from ._wire import HandshakeAccepted, HandshakeRejected, PeerClosed, WireFailed
from .close_codes import RESUMABLE_CLOSE, CloseAction, action_for_close, close_code_meaning
from .errors import (
    DecodeError,
    GatewayError,
    LocalProtocolError,
    UnsafeResumeUrlError,
    fatal_error_for,
)
from .events import (
    CloseCause,
    CloseInitiator,
    Dispatch,
    Event,
    HeartbeatAck,
    Hello,
    IdentifyNeeded,
    InvalidSession,
    Opened,
    ProtocolWarning,
    ReconnectRequested,
)
from .heartbeat import MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS, Heartbeater
from .opcodes import Opcode

__all__ = ["ReceivePath"]

_T = TypeVar("_T")

_S = ConnectionState
_CLOSED = ConnectionState.CLOSED
#: The longest READY ``session_id`` kept (Discord's have 32 characters): the RESUME
#: carrying a longer one could pass the 4096-byte payload limit and fail to encode.
_MAX_SESSION_ID = 256


def _resumable_id(value: Any) -> bool:
    r"""Whether READY's ``session_id`` can go into a RESUME; if not, the session is not kept.

    A str of 1 to 256 printable characters (a lone surrogate, which stdlib json
    decodes from ``"\ud800"``, is not printable and could not be encoded back).
    """
    return value.__class__ is str and 0 < len(value) <= _MAX_SESSION_ID and value.isprintable()


# The documented logger name (docs/core.md): the one users configure, whichever
# part of the connection logs.
_log = logging.getLogger("gateway_proto.connection")


class ReceivePath(ControlSurface):
    """The peer's side of a gateway connection (a part of ``GatewayConnection``)."""

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the socket at ``now``; ``b""`` means the peer closed (EOF).

        Only buffers the bytes, stamped with ``now`` (the WebSocket upgrade reply
        aside, which is handled at once): :meth:`events` and :meth:`next_event`
        parse them one message at a time, and every other method (not the
        properties) processes them all first, at ``now``, so heartbeat ACK latency and the
        zombie check use the arrival time, not the time of draining. Input still
        pending from an earlier call is processed before these bytes are buffered;
        EOF is processed after everything received before it.

        Processing queues events (``Opened``, ``Hello``, ``IdentifyNeeded``,
        ``Dispatch``, ``HeartbeatAck``, ``ReconnectRequested``, ``InvalidSession``,
        ``PayloadSent``, ``Closed``) and any automatic replies (RESUME, heartbeats,
        pongs, close replies). Peer faults never raise: they close the connection
        and end in ``Closed`` with ``cause=PROTOCOL_ERROR``. Data after ``Closed``
        is ignored.

        Raises:
            LocalProtocolError: if :meth:`connect` was not called first.

        """
        if self._pending:
            self._process_input()
        if self._state is _CLOSED:
            return
        if not self._started:
            raise LocalProtocolError("call connect() before receive_data()")
        self._now = now
        if not data:
            self._on_eof()
            return
        self._arrival = now
        self._received += len(data)
        try:
            items = self._wire.feed(data)
        except Exception as exc:  # the wire's own bug must not escape as a peer fault
            self._wire_bug(exc)
            return
        for item in items:  # the upgrade reply: rare, so handled at once
            self._on_wire_event(item, now)
            if self._state is _CLOSED:
                return
        self._pending = True

    def next_event(self) -> Event | None:
        """Remove and return the oldest event, or ``None`` if there is none.

        When no event is queued, parses buffered input one message at a time
        until one produces an event (or the input runs out).
        """
        events = self._events
        while not events:
            if not self._pending or not self._step():
                return None
        return events.popleft()

    def events(self) -> Iterator[Event]:
        """Drain the events, oldest first (``Closed`` is always the last ever).

        Parses buffered input one message at a time, each only when the queued
        events are gone: a ``Dispatch`` is decoded just before it is handed out.
        Calling other methods of the connection while iterating is fine: they
        process the rest of the input first, and the iterator hands out what they
        queued, in order. Reading a property while iterating parses nothing.
        """
        events = self._events
        popleft = events.popleft
        fast = self._wire.fast_next
        parser = self._wire.parser
        while True:
            if events:
                yield popleft()
                continue
            if not self._pending:
                return
            # _step() inlined for the hot path (Wire.next_item() too): a Dispatch
            # from the wire is handed out without passing through the queue.
            try:
                if fast is None or (item := fast()) is None:
                    item = next(parser)
            except Exception as exc:  # the wire's own bug must not escape as a peer fault
                self._wire_bug(exc)
                continue
            if item is None:
                self._pending = False
                return
            if type(item) is Dispatch:  # not isinstance(): exact, and faster
                s = item.sequence
                if s is not None:
                    # One compare per dispatch; the rest only for s <= the last one.
                    if s > self._last_s:
                        self._seq = self._last_s = s
                    elif s > 0 and self._replayed(item):
                        continue
                t = item.name
                # Two length-mismatched compares beat hashing a fresh str (~10 ns).
                if t == "READY" or t == "RESUMED":  # noqa: PLR1714
                    events.append(item)
                    self._on_session_dispatch(t, item.data, self._arrival, s)
                    continue
                yield item
            elif type(item) is tuple:
                self._on_control(item[0], item[1], self._arrival)
            else:
                self._on_wire_event(item, self._arrival)

    def take_dispatches(
        self,
        make: Callable[[str, Any, int | None, bytes | None], _T],
        into: list[_T],
        limit: int,
        *,
        counts: dict[str, int] | None = None,
        payload_bound: int = -1,
    ) -> int:
        """Append the next ordinary dispatches to ``into`` as ``make(name, data, sequence, raw)``.

        A driver's hot path: what :meth:`events` would hand out next, without a
        ``Dispatch`` per event or Python code per event (with the C extension; the
        same in Python without it). An ordinary dispatch is one that needs nothing
        of the state machine: not READY or RESUMED, and a sequence above every one
        handed out so far (or none: anything else may be a replayed duplicate,
        which the connection drops). With ``counts``, it must also be of a name
        already in ``counts``, and its count goes up by one (a new name is left to
        the caller, which may bound how many it counts).

        Stops after ``limit`` dispatches, after the one that takes
        :attr:`payload_bytes` above ``payload_bound`` (when not negative), when
        events are queued (they come first: call :meth:`next_event`), or at the
        first message that is not an ordinary dispatch or needs the careful path:
        that one is processed (its events queued for :meth:`next_event`), or left
        for it. So a driver alternates the two: ``take_dispatches`` until it
        returns 0, then one :meth:`next_event`, until that returns ``None``.

        Returns:
            How many were appended (``sequence`` is then the last one's, or that of
            the dispatch that ended the run).

        """
        if self._events or not self._pending or limit <= 0:
            return 0
        run = self._wire.fast_run
        if run is None:
            return self._take_dispatches(make, into, limit, counts, payload_bound)
        taken, last_s, item = run(into, make, limit, self._last_s, counts, payload_bound)
        self._end_run(last_s, item)
        return taken

    def _take_dispatches(
        self,
        make: Callable[[str, Any, int | None, bytes | None], _T],
        into: list[_T],
        limit: int,
        counts: dict[str, int] | None,
        payload_bound: int,
    ) -> int:
        """``take_dispatches`` without the C extension (``Scanner.run`` in Python)."""
        wire = self._wire
        # Without the extension there is no fast_next: next_item() is the parser's next.
        parser = wire.parser
        meter = wire.meter
        last_s = self._last_s
        taken = 0
        item: Any = None
        try:
            while taken < limit:
                item = next(parser)
                if item is None:
                    self._pending = False
                    break
                if type(item) is not Dispatch:
                    break
                t, s = item.name, item.sequence
                if t == "READY" or t == "RESUMED" or (s is not None and s <= last_s):  # noqa: PLR1714
                    break
                if counts is not None:
                    count = counts.get(t)
                    if count is None:
                        break
                    counts[t] = count + 1
                into.append(make(t, item.data, s, item.raw))
                item = None
                taken += 1
                if s is not None:
                    last_s = s
                if 0 <= payload_bound < meter.payload_bytes:
                    break
        except Exception as exc:  # the wire's own bug (or make's): what was taken stays
            item = exc
        self._end_run(last_s, item)
        return taken

    def _end_run(self, last_s: int, item: Any) -> None:
        # After a run of ordinary dispatches: the sequence moves to its last one's,
        # then the message that ended it (or the error) is processed, as _step would.
        if last_s > self._last_s:
            self._seq = self._last_s = last_s
        if item is None:
            return
        if isinstance(item, BaseException):
            if not isinstance(item, Exception):
                raise item
            self._wire_bug(item)
            return
        self._take_item(item)

    def _step(self) -> bool:
        """Process the next buffered message or wire event; ``False`` when none is whole."""
        try:
            item = self._wire.next_item()
        except Exception as exc:  # the wire's own bug must not escape as a peer fault
            self._wire_bug(exc)
            return True
        if item is None:
            self._pending = False
            return False
        self._take_item(item)
        return True

    def _take_item(self, item: Any) -> None:
        """Process one message or wire event from the wire (queueing its events)."""
        now = self._arrival
        if type(item) is Dispatch:
            s = item.sequence
            if s is not None:
                if s > self._last_s:
                    self._seq = self._last_s = s
                elif s > 0 and self._replayed(item):
                    return
            self._events.append(item)
            if item.name == "READY" or item.name == "RESUMED":  # noqa: PLR1714
                self._on_session_dispatch(item.name, item.data, now, s)
        elif type(item) is tuple:
            self._on_control(item[0], item[1], now)
        else:
            self._on_wire_event(item, now)

    def _process_input(self) -> None:
        """Process all buffered input, queueing its events (every observer calls this first)."""
        step = self._step
        while self._pending and step():
            pass

    def _wire_bug(self, exc: Exception) -> None:
        error = DecodeError(f"undecodable input ({type(exc).__name__})")
        error.__cause__ = exc
        self._abort(error.close_code, str(error), CloseCause.PROTOCOL_ERROR, error)

    def _replayed(self, item: Dispatch) -> bool:
        """Whether ``item`` (``0 < s <= the last s``) repeats one; count and log it if so."""
        if item.name == "READY":
            return False  # a new session: its numbering starts over (_on_session_dispatch)
        self._duplicates += 1
        _log.debug("dropped a replayed %s (s=%s, last %s)", item.name, item.sequence, self._seq)
        return True

    def _on_session_dispatch(self, t: str, d: Any, now: float, s: int | None) -> None:
        if t == "READY":
            # A new session numbers its dispatches afresh.
            self._last_s = s if s is not None and s > 0 else 0
            self._seq = self._last_s or None
            if isinstance(d, dict) and _resumable_id(d.get("session_id")):
                self._session_id = d["session_id"]
                url = d.get("resume_gateway_url")
                if isinstance(url, str) and url.startswith(("ws://", "wss://")):
                    parts = urlsplit(without_userinfo(url))
                    url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))
                    url = self._safe_resume_url(url, self.url)
                else:
                    url = without_userinfo(self._config.url)
                self._resume_url = url
            moved = self._transition(Input.RECV_READY)
        else:
            moved = self._transition(Input.RECV_RESUMED)
        if moved:
            self._live_since = now
            if self._queue:
                self._flush_commands(now)

    def _safe_resume_url(self, url: str, current: str) -> str:
        """Return ``url``, or the base URL (and queue a warning) if it would drop TLS."""
        if not downgrades(url, current):
            return url
        base = without_userinfo(self._config.url)
        error = UnsafeResumeUrlError(
            f"refused resume_gateway_url {url!r}: the connection uses wss:// and the "
            f"RESUME would carry the token in clear text; resuming on {base!r} instead"
        )
        self._events.append(ProtocolWarning(error))
        return base

    def _on_control(self, op: int, d: Any, now: float) -> None:
        state = self._state
        if op == Opcode.HEARTBEAT_ACK:
            latency = self._heart.ack(now) if self._heart is not None else None
            self._events.append(HeartbeatAck(latency))
        elif state is _S.CLOSING:
            return  # we said goodbye: only dispatches and ACKs still matter
        elif op == Opcode.HEARTBEAT:
            self._send_heartbeat(now)
            if self._heart is not None:
                self._heart.beat_requested(now)
        elif op == Opcode.HELLO:
            if state is _S.AWAITING_HELLO:
                self._on_hello(d, now)
        elif op == Opcode.RECONNECT:
            self._events.append(ReconnectRequested())
            self._start_close(
                RESUMABLE_CLOSE, "Discord asked to reconnect", CloseCause.RECONNECT_REQUESTED, now
            )
        elif op == Opcode.INVALID_SESSION:
            resumable = d is True
            self._events.append(InvalidSession(resumable))
            retry_after = 0.0
            if not resumable:
                self._forget_session()
                retry_after = self._rng.uniform(1.0, 5.0)
            self._start_close(
                RESUMABLE_CLOSE,
                "Discord invalidated the session"
                + (" (resumable)" if resumable else "; identify again"),
                CloseCause.INVALID_SESSION,
                now,
                retry_after=retry_after,
            )
        # Any other opcode: Discord adds opcodes without a version bump; ignore it.

    def _on_hello(self, d: Any, now: float) -> None:
        interval = d.get("heartbeat_interval") if isinstance(d, dict) else None
        # Compared before any arithmetic: NaN fails both compares, and an int too
        # large for a float (10**400) never reaches the division.
        if (
            interval.__class__ is not int and interval.__class__ is not float
        ) or not MIN_HEARTBEAT_INTERVAL_MS <= interval <= MAX_HEARTBEAT_INTERVAL_MS:
            error = DecodeError(
                "HELLO without a heartbeat_interval between "
                f"{MIN_HEARTBEAT_INTERVAL_MS} and {MAX_HEARTBEAT_INTERVAL_MS} ms"
            )
            self._abort(error.close_code, str(error), CloseCause.PROTOCOL_ERROR, error)
            return
        seconds = interval / 1000.0
        self._heart = Heartbeater(
            seconds, now=now, jitter=self._rng.random(), grid=self._config.heartbeat_grid
        )
        if self._limiter.set_heartbeat_interval(seconds):
            _log.info(
                "shard %d: heartbeats every %g s exceed the command budget by themselves; "
                "commands get %d per %g s",
                self._config.shard[0],
                seconds,
                self._limiter.capacity,
                self._limiter.window,
            )
        self._hello_deadline = None
        self._events.append(Hello(seconds))
        if not self._resume:
            self._transition(Input.RECV_HELLO)
            self._events.append(IdentifyNeeded())
            return
        self._transition(Input.RECV_HELLO_RESUME)
        d_resume = {"token": self._config.token, "session_id": self._session_id, "seq": self._seq}
        self._write(
            Opcode.RESUME,
            self._wire.encode(Opcode.RESUME, d_resume),
            {**d_resume, "token": _REDACTED},
        )
        self._limiter.record(now)

    def _on_wire_event(self, item: object, now: float) -> None:
        if isinstance(item, HandshakeAccepted):
            if self._transition(Input.HANDSHAKE_ACCEPTED):
                self._hello_deadline = now + self._config.hello_timeout
                self._events.append(Opened())
        elif isinstance(item, PeerClosed):
            if self._closing is not None:  # the answer to our close frame
                self._finish_closing(CloseInitiator.LOCAL)
                return
            code, reason = item.code, item.reason
            action = action_for_close(code)
            meaning = close_code_meaning(code)
            error: GatewayError | None = None
            if action is not CloseAction.RESUME:
                self._forget_session()
                if action is CloseAction.FATAL and code is not None:
                    error = fatal_error_for(code, meaning, reason)
            self._finish(
                code,
                reason or meaning,
                CloseInitiator.PEER,
                CloseCause.SERVER_CLOSED,
                can_reconnect=error is None,
                error=error,
            )
        elif isinstance(item, WireFailed):  # the wire already sent its close frame
            self._abort(
                item.error.close_code, str(item.error), CloseCause.PROTOCOL_ERROR, item.error
            )
        elif isinstance(item, HandshakeRejected):
            reason = f"the WebSocket handshake was refused (HTTP {item.status_code})"
            self._finish(
                None, reason, CloseInitiator.PEER, CloseCause.HANDSHAKE_FAILED, error=item.error
            )

    def _on_eof(self) -> None:
        if self._closing is not None:
            self._finish_closing(CloseInitiator.LOCAL)
        else:
            reason = close_code_meaning(None)
            self._finish(None, reason, CloseInitiator.TRANSPORT, CloseCause.CONNECTION_LOST)
