"""The half of a ``Shard`` that runs on its I/O thread: connect, react, reconnect.

Theory of operation: the shard owns no protocol logic. Its I/O thread owns the
socket, the core's ``GatewayConnection`` and the ``Reconnector``. Per connection it
opens the transport (``_transport``) and hands it to :func:`~gateway_sync._pump.pump`,
which moves the bytes and keeps the clocks; this module supplies what the pump
cannot know: what the core's events mean for the shard (state, handlers,
deadlines: ``driver_support.ConnectionReactor`` decides, this module does it) and
what the mailbox's messages ask (``_mailbox``). When the core reports ``Closed``,
``driver_support.after_connection`` and the ``Reconnector`` say whether and when to
connect again, resume or identify; the shard only sleeps.

User handlers run on their own threads (``_consumers``) and identify permits are
awaited on a helper thread (``_limiter``), so neither can delay a heartbeat; a
shard made with ``inline_handlers=True`` calls its handlers here instead
(``_inline``), and they must be quick.

Thread ownership: only the I/O thread touches the connection, the socket, the
``Reconnector`` and the run state below. What the public ``Shard`` API reads
(state, session, latency, whether a connection is live) it publishes as a
:class:`~gateway_sync._snapshot.ShardSnapshot` (``_publish``); what other threads
ask for arrives through the mailbox. The identify helper hands the connection back
in its permit only as a token of identity, to be compared, never called.

Direction: ``Shard`` (``_shard``) extends :class:`ShardIO` and sets the attributes
declared at the top of the class; this module never names ``Shard``. Where the
thread hands the shard to someone (the events it emits, a cluster's ``_on_state``
and ``_on_stopped`` hooks) it hands ``self``, typed ``Self``: the subclass.

Why one I/O thread per shard rather than one selector thread for a cluster: a
shard's thread then only ever blocks on its own socket, one shard's slow TLS
handshake or large READY never stalls another's heartbeats, and the shard keeps
the same shape alone or in a cluster. Most bots run few shards per process; a
thread each is cheap at that scale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import ssl
import threading
import time
from collections.abc import Callable

from typing_extensions import Self

from gateway_proto.backoff import Backoff
from gateway_proto.config import ShardConfig
from gateway_proto.connection import GatewayConnection
from gateway_proto.driver_support import (
    DISCONNECT,
    ERROR,
    IDENTIFY_WAIT,
    ConnectionReactor,
    ConnectionTally,
    Done,
    EarlyEnds,
    EventDrain,
    Reaction,
    ShardCounters,
    ShardLogger,
    ShardReporting,
    ShardState,
    StepDeadline,
    Stopped,
    UnsentCommands,
    after_connection,
    note_identify_sent,
)
from gateway_proto.errors import CommandNotSentError, GatewayError, LocalProtocolError
from gateway_proto.events import Closed
from gateway_proto.reconnect import Reconnector
from gateway_proto.session import Session

from ._events import Emitter
from ._gateway import Gateway
from ._limiter import IdentifyCancelledError, IdentifyLimiter
from ._mailbox import CloseRequest, IdentifyPermit, Mailbox, SendRequest
from ._pump import pump
from ._snapshot import ShardSnapshot
from ._transport import TransportClosedError, close_stream, open_stream

__all__ = ["ShardIO"]


class ShardIO(ShardReporting):
    """What a :class:`~gateway_sync.Shard` does on its I/O thread.

    ``Shard`` subclasses it and adds the public API, which runs on the caller's
    threads and reaches this side only through the mailbox, the published
    :class:`ShardSnapshot` and a few ``threading.Event`` s. ``Shard.__init__`` sets
    the configuration declared below, then calls ``ShardIO.__init__`` for the run state.
    """

    # -- set by Shard.__init__: what the thread runs with --------------------------

    gateway: Gateway
    id: int
    counters: ShardCounters
    _config: ShardConfig
    _url_given: bool
    # Given by the caller, then whatever the last connection left to resume.
    _session: Session | None
    _limiter: IdentifyLimiter
    _ssl_context: ssl.SSLContext | None
    # (connect, WebSocket handshake, READY/RESUMED) in seconds.
    _timeouts: tuple[float, float, float]
    _rng: random.Random
    _log: ShardLogger
    _emitter: Emitter

    # -- hooks a cluster sets: called with the shard itself ------------------------

    #: Called on the I/O thread as it ends (a cluster collects errors with it).
    _on_stopped: Callable[[Self], None] | None
    #: Called after every state change (a cluster paces its spawns with it).
    _on_state: Callable[[Self], None] | None

    def __init__(self) -> None:
        # How the last connection that ended closed (published in the snapshot).
        self._last_close: Closed | None = None
        #: What other threads may read; replaced (never changed) by the I/O thread.
        self._snapshot = ShardSnapshot(session=self._session)
        self._conn: GatewayConnection | None = None
        self._reconnector: Reconnector | None = None
        self._closed: Closed | None = None
        self._deadline = StepDeadline()
        self._connect_error: BaseException | None = None
        self._mailbox = Mailbox()
        self._thread: threading.Thread | None = None
        self._helpers: list[threading.Thread] = []
        self._stopping = threading.Event()
        # Set as the I/O thread's very last action.
        self._finished = threading.Event()
        # Set to cut a reconnect backoff short (reconnect() or disconnect()).
        self._kick = threading.Event()
        self._restart: int | None = None
        self._error: BaseException | None = None
        self._on_stopped = None
        # Accepted by send(), not written yet: carried over to the next connection.
        self._unsent = UnsentCommands()
        # Connections in a row that ended before READY/RESUMED (each one is reported).
        self._early_ends = EarlyEnds(self._config.token)
        self._on_state = None
        # The core counts bytes, messages and rate limit waits per connection.
        self._tally = ConnectionTally(self.counters)

    # -- what other threads may read -------------------------------------------------

    @property
    def _state(self) -> ShardState:
        # The state lives in the snapshot, so that every change (ShardReporting's
        # _set_state assigns it) is published before it is logged or emitted.
        return self._snapshot.state

    @_state.setter
    def _state(self, new: ShardState) -> None:
        self._publish(new)

    def _publish(self, state: ShardState | None = None) -> None:
        """Publish a fresh :class:`ShardSnapshot` if anything in it changed (I/O thread only).

        Called after each batch of events drained, on state changes, and when a
        connection starts or ends: never per event.
        """
        old = self._snapshot
        conn = self._conn
        session = latency = None
        if conn is not None:
            # The core's properties never parse: reading them here, even while
            # the I/O thread is inside conn.events(), changes nothing.
            session, latency = conn.session, conn.latency
        if session is None:
            session = self._session
        connected = conn is not None and self._closed is None
        if state is None:
            state = old.state
        if (
            state is not old.state
            or session is not old.session
            or latency != old.latency
            or connected is not old.connected
            or self._last_close is not old.last_close
        ):
            since = time.monotonic() if state is not old.state else old.since
            self._snapshot = ShardSnapshot(
                state, session, latency, connected, since, self._last_close
            )

    # -- the thread's life ---------------------------------------------------------

    def _run_thread(self: Self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self._error = exc
            if self._state is not ShardState.STOPPED:
                self._set_state(ShardState.STOPPED, str(exc))
                self._emit(DISCONNECT, self._stop_report(str(exc), error=exc))
            if not isinstance(exc, GatewayError):
                # A bug must not die silently in a thread; expected errors are
                # logged once where they arise and raised from connect().
                self._log.exception("shard %d: the I/O thread failed", self.id)
        finally:
            self._stopping.set()
            for helper in self._helpers:
                helper.join()
            self._helpers.clear()
            self._reject_sends("the shard stopped")
            self._conn = None
            self._publish()
            if self._mailbox.waker is not None:
                # Late wake() calls on a closed waker are harmless no-ops.
                self._mailbox.waker.close()
            if self._on_stopped is not None:
                self._on_stopped(self)
            # The shard's own iterators end with it (a cluster's end on close()).
            self._emitter.end_streams()
            self._finished.set()

    def _run(self) -> None:
        if self._stopping.is_set():  # disconnect() before start(): never connect
            self._set_state(ShardState.STOPPED, "disconnected before it started")
            self._emit(DISCONNECT, self._stop_report("disconnected before it started"))
            return
        if not self._url_given:
            info = self.gateway.fetch(user_agent=self._config.user_agent)
            self._config = dataclasses.replace(self._config, url=info.url)
        reconnector = self._reconnector = Reconnector(
            self._config, session=self._session, rng=self._rng, backoff=Backoff(self._rng)
        )
        # Counted by the core; copied into the counters (see _sync_counters).
        self.counters.reconnects = {}
        self.counters.reconnect_codes = {}
        while True:
            conn = reconnector.new_connection()
            self._tally.track(conn)
            self._unsent.requeue(conn, time.monotonic(), log=self._log)
            closed = self._run_connection(conn, reconnector)
            self._reject_sends(f"shard {self.id} is not connected")
            restart, self._restart = self._restart is not None, None
            step = after_connection(
                reconnector,
                closed,
                connect_error=self._connect_error,
                restart=restart,
                stopping=self._stopping.is_set(),
                now=time.monotonic(),
            )
            # What the next connection resumes (None: it identifies).
            self._session = reconnector.session
            self._sync_counters()
            self.counters.count_close(closed)
            if closed is not None:
                self._last_close = closed
            self._set_state(step.state, step.state_reason)
            if step.delay is None:
                self._emit(DISCONNECT, step.stopped(self._unsent, closed, self._log))
                step.raise_error()
                return
            self._kick.clear()
            if not self._stopping.is_set():  # disconnect() sets _stopping before _kick
                # Clamped: Event.wait overflows beyond TIMEOUT_MAX (~292 years).
                self._kick.wait(min(step.delay, threading.TIMEOUT_MAX))
            if self._stopping.is_set():
                self._set_state(ShardState.STOPPED, "disconnected")
                self._emit(DISCONNECT, self._stop_report("disconnected", closed=closed))
                return

    def _run_connection(self, conn: GatewayConnection, reconnector: Reconnector) -> Closed | None:
        url = conn.url
        self._set_state(ShardState.CONNECTING, f"connecting to {url}")
        waker = self._mailbox.waker
        assert waker is not None
        try:
            sock = open_stream(
                url,
                ssl_context=self._ssl_context,
                waker=waker,
                should_stop=self._stopping.is_set,
                timeout=self._timeouts[0],
            )
        except TransportClosedError as exc:
            self._connect_error = exc  # the shard is stopping: no warning
            return None
        except OSError as exc:
            self._connect_error = exc
            self._log.warning("connecting to %s failed: %r", url, exc)
            self._emit(ERROR, exc)
            return None
        self.counters.connections += 1
        self._conn, self._closed = conn, None
        self._publish()
        reactor = ConnectionReactor(
            conn, ready_timeout=self._timeouts[2], early_ends=self._early_ends
        )
        # A handler thread woken per event took the GIL from this thread once per
        # event, which cost more than decoding the event: EventDrain hands batches over.
        drain = EventDrain(
            shard=self,
            shard_id=self.id,
            counters=self.counters,
            reconnector=reconnector,
            reactor=reactor,
            unsent=self._unsent,
            hand_over=self._emitter.emit_batch,
            wants=self._emitter.wants,
            on_reaction=lambda reaction: self._react(reaction, conn),
            on_counts=self._sync_counters,
            clock=time.perf_counter,
        )
        try:
            pump(
                conn,
                sock,
                waker,
                self._deadline,
                self._log,
                handshake_timeout=self._timeouts[1],
                handle_mailbox=lambda: self._handle_mailbox(conn),
                handle_events=lambda: self._process(drain, conn),
                closed=lambda: self._closed is not None,
            )
        finally:
            close_stream(sock)
        return self._closed

    # -- what other threads ask (the mailbox) -------------------------------------------

    def _handle_mailbox(self, conn: GatewayConnection) -> None:
        for message in self._mailbox.drain():
            now = time.monotonic()
            if isinstance(message, SendRequest):
                self._take_send(message, conn, now)
            elif isinstance(message, CloseRequest):
                if self._closed is None:
                    # Already closing (close() returns False): the pending close
                    # ends the connection anyway, and it is no restart.
                    with contextlib.suppress(GatewayError):
                        started = conn.close(message.code, now=now)
                        if started and message.restart:  # the connection took it
                            self._restart = message.code
            elif message.connection is conn and self._closed is None:
                conn.identify(now)
                # Written at once (the pump flushes before it blocks): the limiter
                # measures the identify window from now, not from the permit.
                note_identify_sent(self._limiter, self.id)

    def _take_send(self, message: SendRequest, conn: GatewayConnection, now: float) -> None:
        # A send() from the mailbox, or from an inline handler on this thread.
        if self._closed is not None:
            message.done.set_exception(LocalProtocolError(f"shard {self.id} is not connected"))
            return
        try:
            conn.send(message.command, now)
        except GatewayError as exc:
            message.done.set_exception(exc)
        else:
            self._unsent.accepted(message.command, self._written_callback(message))
            message.done.set_result(None)

    def _written_callback(self, message: SendRequest) -> Done | None:
        # A waiting send learns on the I/O thread whether its command was written.
        written = message.written
        if written is None:
            return None
        command, shard_id = message.command, self.id

        def done(ok: bool) -> None:
            if ok:
                written.set_result(None)
            else:
                written.set_exception(CommandNotSentError.stopped_first(shard_id, command))

        return done

    def _reject_sends(self, why: str) -> None:
        # Between connections nothing can take a command; say so instead of holding
        # the caller. Other messages (close, permits) are moot once the connection
        # ends: a restart whose close came too late gets the reconnect policy's wait.
        for message in self._mailbox.drain():
            if isinstance(message, SendRequest):
                message.done.set_exception(LocalProtocolError(why))

    # -- what the core reports ------------------------------------------------------------

    def _process(self, drain: EventDrain, conn: GatewayConnection) -> None:
        drain.drain(conn)
        self._publish()  # once per batch: what other threads read of the connection

    def _react(self, reaction: Reaction, conn: GatewayConnection) -> None:
        # Do what the core's last event asks of the shard (see ConnectionReactor).
        self._deadline.follow(reaction, time.monotonic())
        if reaction.log is not None:
            self._log.log(*reaction.log)
        if reaction.state is not None:
            self._set_state(reaction.state, reaction.reason)
        if reaction.emit is not None:
            self._emit(*reaction.emit)
        if reaction.error is not None:
            self._emit(ERROR, reaction.error)
        if reaction.identify:
            self._start_identify(conn)
        if reaction.closed is not None:
            self._closed = reaction.closed
            self._publish()  # no longer connected: send() and reconnect() know at once

    def _start_identify(self, conn: GatewayConnection) -> None:
        limiter = self._limiter

        def wait_for_permit() -> None:
            try:
                limiter.acquire(
                    self.id,
                    on_wait=lambda wait: self._emit(IDENTIFY_WAIT, wait),
                    cancel=self._stopping,
                )
            except IdentifyCancelledError:
                return
            self._mailbox.post(IdentifyPermit(conn))

        # The wait happens off the I/O thread, so a long one never delays heartbeats.
        helper = threading.Thread(
            target=wait_for_permit, name=f"gateway-shard-{self.id}-identify", daemon=True
        )
        self._helpers = [h for h in self._helpers if h.is_alive()]
        self._helpers.append(helper)
        helper.start()

    # -- helpers ---------------------------------------------------------------------

    def _sync_counters(self) -> None:
        if self._reconnector is not None:
            self._tally.update(self._reconnector)

    def _stop_report(
        self, reason: str, *, error: BaseException | None = None, closed: Closed | None = None
    ) -> Stopped:
        """Build the ``disconnect`` payload, with the commands that never went out."""
        return self._unsent.stop_report(reason, error=error, closed=closed, log=self._log)
