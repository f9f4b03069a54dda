"""``GatewayConnection``: one gateway WebSocket as a pure state machine.

Theory of operation: bytes and times go in (``receive_data``, ``handle_timeout``,
the caller's ``identify``/``send``/``close``), events and bytes come out
(``events()``, ``data_to_send()``), and ``next_deadline()`` says when to come back.
Nothing here reads a clock, touches a socket or uses global randomness: ``now`` is
any monotonic float in seconds, and the heartbeat jitter and the op 9 wait come
from the injected :class:`random.Random`.

Input is parsed *on demand*, as in h11: ``receive_data`` only buffers the bytes
and stamps them with their arrival time; ``events()`` / ``next_event()`` parse
one message at a time when the event queue is empty, so each decoded payload is
handed out (and can be dropped) before the next one is decoded, as a bare
``decompress`` + ``loads`` loop does. Processing uses the *arrival* time (latency
and zombie detection need it), never the time the events are drained.

Every other *method* first processes all pending input
(:meth:`GatewayConnection._process_input`), so what the connection does does not
depend on whether, or when, events were drained: the state machine sees the same
inputs, in the same order, at the same times as if everything had been parsed in
``receive_data``. The connection answers on its own where the protocol says so
(heartbeats, the RESUME after HELLO, close replies), and it holds commands until
the session is live and the rate limiter allows them, so everything goes out
through one buffer, in order.

The read-only *properties* (``state``, ``session``, ``sequence``, ``latency``,
``heartbeat_interval``, ``pending_commands`` and the metrics' counters:
``commands_queued``, ``rate_limit_wait``, ``bytes_received``, ``payload_bytes``,
``messages_decoded``) and ``repr()`` never parse: reading
them changes nothing, and they describe the input processed so far, as h11's
state reflects the events ``next_event`` returned. ``events()`` parses a message
just before handing out its events, so while draining they are as of the event in
hand (``sequence`` is the last ``Dispatch``'s); after a full drain, or after any
method, they reflect everything received.

Every state change is a row of :data:`gateway_proto._state.TRANSITIONS`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._state import HEARTBEATING, ConnectionState, Input, next_state
from ._urls import downgrades, without_userinfo
from ._wire import HandshakeAccepted, HandshakeRejected, PeerClosed, Wire, WireFailed
from .close_codes import (
    RESUMABLE_CLOSE,
    CloseAction,
    action_for_close,
    close_code_meaning,
    is_sendable,
    keeps_session,
)
from .commands import Command
from .config import ShardConfig
from .errors import (
    DecodeError,
    GatewayError,
    InvalidCommandError,
    LocalProtocolError,
    UnsafeResumeUrlError,
    fatal_error_for,
)
from .events import (
    CloseCause,
    Closed,
    CloseInitiator,
    Dispatch,
    Event,
    HeartbeatAck,
    Hello,
    IdentifyNeeded,
    InvalidSession,
    Opened,
    PayloadSent,
    ProtocolWarning,
    ReconnectRequested,
)
from .heartbeat import MAX_HEARTBEAT_INTERVAL_MS, MIN_HEARTBEAT_INTERVAL_MS, Heartbeater
from .opcodes import Opcode
from .ratelimit import CommandRateLimiter
from .session import Session

__all__ = ["ConnectionState", "GatewayConnection"]

_S = ConnectionState
_CLOSED = ConnectionState.CLOSED
_REDACTED = "[REDACTED]"
_RESERVED_OPS = frozenset({Opcode.HEARTBEAT, Opcode.IDENTIFY, Opcode.RESUME})
#: The longest READY ``session_id`` kept (Discord's have 32 characters): the RESUME
#: carrying a longer one could pass the 4096-byte payload limit and fail to encode.
_MAX_SESSION_ID = 256


def _resumable_id(value: Any) -> bool:
    r"""Whether READY's ``session_id`` can go into a RESUME; if not, the session is not kept.

    A str of 1 to 256 printable characters (a lone surrogate, which stdlib json
    decodes from ``"\ud800"``, is not printable and could not be encoded back).
    """
    return value.__class__ is str and 0 < len(value) <= _MAX_SESSION_ID and value.isprintable()


_log = logging.getLogger(__name__)
class GatewayConnection:
    """One gateway connection: WebSocket, compression, codec, heartbeats, session, limits.

    Args:
        config: the shard's configuration (token, intents, encoding, compression...).
        session: a session to resume (from a previous ``Closed.session`` or
            ``conn.session``); the connection then goes to its resume URL and
            sends RESUME after HELLO instead of asking for an identify.
        rng: the random source for the heartbeat jitter and the op 9 wait; a
            fresh ``random.Random()`` if not given (pass a seeded one in tests).
        url: the WebSocket URL to connect to instead of the default (the
            session's resume URL when resuming, else ``config.url``), e.g. the
            base URL after the resume host failed; the config's query replaces
            any query string it has.

    The connection starts in :attr:`ConnectionState.CONNECTING` with nothing to
    send; call :meth:`connect`. After the :class:`~gateway_proto.events.Closed`
    event, write out what :meth:`data_to_send` still returns, then close the socket.

    """

    def __init__(
        self,
        config: ShardConfig,
        *,
        session: Session | None = None,
        rng: random.Random | None = None,
        url: str | None = None,
    ) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._resume = session is not None
        self._session_id = None if session is None else session.session_id
        self._resume_url = None if session is None else session.resume_url
        self._seq: int | None = None if session is None else session.sequence
        # The last positive sequence delivered in this session (0: none): a dispatch
        # numbered at or below it is a replayed duplicate. s = 0 means "no sequence"
        # (some servers number READY and GUILD_CREATE 0), so it never moves this; the
        # envelope check already refused a negative s.
        self._last_s = self._seq if self._seq is not None and self._seq > 0 else 0
        self._duplicates = 0
        self._session_cache: Session | None = session
        self._events: deque[Event] = deque()
        if url is None and self._resume_url is not None:
            url = self._safe_resume_url(self._resume_url, config.url)
        #: The WebSocket URL, query string included: the resume URL when resuming.
        self.url = config.gateway_url(url or self._resume_url)
        self._out = bytearray()
        self._wire = Wire(config, self.url, self._out)
        # Whether the wire may hold unparsed input, and when that input arrived
        # (receive_data processes older input first, so one time stamp is enough).
        self._pending = False
        self._arrival = 0.0
        self._state = _S.CONNECTING
        self._started = False
        self._now = 0.0
        self._heart: Heartbeater | None = None
        self._limiter = CommandRateLimiter()
        # (command, encoded, shown, when it was queued)
        self._queue: deque[tuple[Command, bytes, Any, float]] = deque()
        self._held = False  # whether the limiter holds commands back (warned once)
        # For metrics, counted off the per-event path: bytes fed to receive_data (per
        # call), seconds commands waited for a rate limit permit (per command sent),
        # and when the session went live (a wait for READY is not the limiter's).
        self._received = 0
        self._limiter_wait = 0.0
        self._live_since = 0.0
        self._hello_deadline: float | None = None
        self._close_deadline: float | None = None
        self._closing: dict[str, Any] | None = None  # Closed's fields once the peer answers

    def __repr__(self) -> str:
        shard_id, count = self._config.shard
        return (
            f"<GatewayConnection shard={shard_id}/{count} state={self._state.name} "
            f"session={self._session_id!r} seq={self._seq!r}>"
        )

    # -- read-only views ---------------------------------------------------------------
    # None of them parses pending input (see the module docstring): reading one
    # never changes what the connection delivers, and they describe the input
    # processed so far, i.e. the events handed out, unless a method processed more.

    @property
    def state(self) -> ConnectionState:
        """The current :class:`ConnectionState`, as of the input processed so far."""
        return self._state

    @property
    def session(self) -> Session | None:
        """The session to resume with, carrying the last sequence seen (``None``: identify).

        As of the input processed so far.
        """
        return self._current_session()

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

    @property
    def sequence(self) -> int | None:
        """The last non-null sequence number processed (``None`` before any).

        While draining :meth:`events`, the sequence of the last ``Dispatch`` handed out.
        """
        return self._seq

    @property
    def duplicates_dropped(self) -> int:
        """Dispatches dropped as replayed duplicates: in this session, ``s`` not above the last.

        Within one session each dispatch is delivered once: a server that replays
        from the resumed ``seq`` inclusive sends the last one again. A dispatch with
        ``s`` of 0 or less carries no sequence and is never a duplicate; READY starts
        a new session (and its numbering). Does not process pending input.
        """
        return self._duplicates

    @property
    def latency(self) -> float | None:
        """Seconds between the last acknowledged heartbeat and its ACK (``None`` before one).

        As of the input processed so far; measured at the ACK's arrival time.
        """
        return None if self._heart is None else self._heart.latency

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds between heartbeats, from HELLO (``None`` until HELLO is processed)."""
        return None if self._heart is None else self._heart.interval

    @property
    def pending_commands(self) -> tuple[Command, ...]:
        """Commands accepted by :meth:`send` and not written yet (waiting for READY or a permit).

        As of the input processed so far: a READY still pending releases them when
        it is processed.
        """
        return tuple(item[0] for item in self._queue)

    @property
    def commands_queued(self) -> int:
        """How many commands :meth:`send` accepted that are not written yet (cheap to read)."""
        return len(self._queue)

    @property
    def rate_limit_wait(self) -> float:
        """Seconds commands written so far waited for a rate limit permit, summed.

        A command's wait runs from when it was queued, or from when the session
        went live if it was queued before READY/RESUMED (that wait is not the
        limiter's), to when it was written. Measured on the caller's ``now``.
        """
        return self._limiter_wait

    @property
    def bytes_received(self) -> int:
        """Bytes fed to :meth:`receive_data` so far: as read from the socket, still compressed."""
        return self._received

    @property
    def payload_bytes(self) -> int:
        """The size of the messages decoded so far, after decompression, in bytes.

        Counts what was parsed, like the other read-only views: input still
        buffered is not in it yet.
        """
        return self._wire.payload_bytes

    @property
    def messages_decoded(self) -> int:
        """Whole messages decoded so far (gateway payloads handed to the codec)."""
        return self._wire.messages

    def rate_limit_available(self, now: float) -> int:
        """Return how many commands the rate limiter would let out at ``now``.

        Processes pending input first: an op 1 in it is answered with a heartbeat,
        which takes a permit.
        """
        if self._pending:
            self._process_input()
        return self._limiter.available(now)

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
        now = self._arrival
        if type(item) is Dispatch:
            s = item.sequence
            if s is not None:
                if s > self._last_s:
                    self._seq = self._last_s = s
                elif s > 0 and self._replayed(item):
                    return True
            self._events.append(item)
            if item.name == "READY" or item.name == "RESUMED":  # noqa: PLR1714
                self._on_session_dispatch(item.name, item.data, now, s)
        elif type(item) is tuple:
            self._on_control(item[0], item[1], now)
        else:
            self._on_wire_event(item, now)
        return True

    def _process_input(self) -> None:
        """Process all buffered input, queueing its events (every observer calls this first)."""
        step = self._step
        while self._pending and step():
            pass

    def _wire_bug(self, exc: Exception) -> None:
        error = DecodeError(f"undecodable input ({type(exc).__name__})")
        error.__cause__ = exc
        self._abort(error.close_code, str(error), CloseCause.PROTOCOL_ERROR, error)

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
        self._heart = Heartbeater(seconds, now=now, jitter=self._rng.random())
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
