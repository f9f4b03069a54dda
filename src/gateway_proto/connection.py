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
and zombie detection need it), never the time the events are drained. A driver's
hot path, ``take_dispatches()``, hands out runs of the ordinary dispatches among
them as the caller's own objects (in C with the extension), the rest is left to
``next_event()``: together they give what ``events()`` gives.

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

The class is three parts, one job each, stacked by plain inheritance (a call
costs what it did when they were one class): this module holds the
construction, the shared state and the read-only views;
:mod:`gateway_proto._receive_path` the receive path (bytes to events, the hot
path: ``receive_data``, ``events()``, ``next_event()``, ``take_dispatches()`` and
the reactions to what the peer sends); :mod:`gateway_proto._control_surface` the
control surface (the caller's commands, ``close``, the timers and the output
buffer); and
:mod:`gateway_proto._state` the state table they all go through.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from ._receive_path import ReceivePath
from ._state import ConnectionState
from ._wire import PayloadMeter, Wire
from .commands import Command
from .config import ShardConfig
from .events import Event
from .heartbeat import Heartbeater
from .ratelimit import CommandRateLimiter
from .session import Session

__all__ = ["ConnectionState", "GatewayConnection"]

_S = ConnectionState


class GatewayConnection(ReceivePath):
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
    def payload_meter(self) -> PayloadMeter:
        """What counts :attr:`payload_bytes`: its ``payload_bytes`` attribute, always the same.

        One attribute read instead of two properties, for a driver that looks after
        every event (``EventDrain`` bounds the decoded bytes it holds at once). Take
        it after :meth:`connect`; it then serves the connection's life.
        """
        return self._wire.meter

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
