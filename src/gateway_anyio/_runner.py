"""The I/O side of a ``Shard``: the reconnect loop and each connection's tasks.

Theory of operation: the runner owns no protocol logic. Per connection it opens TCP
(+ TLS), then runs three tasks around one ``GatewayConnection``: a *reader* that
feeds received bytes (``b""`` at EOF) to the core, a *timer* that sleeps until the
core's ``next_deadline()`` (or a wake-up) and calls ``handle_timeout``, and a
*writer*, the only task that waits to write. After every input the runner
drains the core's events (handing them to handlers and streams, which never block
it) and appends ``data_to_send()`` to one outgoing buffer, which the writer empties
in order (on asyncio, bytes that find that buffer and the transport's empty go to
the transport at once: an idle shard's heartbeat wakes no writer). Nothing but the
writer ever waits for the peer to take bytes, so a peer
that stops reading cannot hold up heartbeats, zombie detection or ``disconnect()``;
a write that makes no progress for ``WRITE_STALL_TIMEOUT`` drops the transport, as
the sync driver does. What each event means for the shard (state, lifecycle events, the
READY/RESUMED timer) ``driver_support.ConnectionReactor`` says; when the core
reports ``Closed``, ``driver_support.after_connection`` and the ``Reconnector``
(both pure) say whether and when to connect again, resume or identify; the runner
only does it, and sleeps.
Identify permits come from an :class:`~gateway_anyio.IdentifyLimiter`, in a task of
their own, so waiting for one never delays heartbeats.

Ownership: the runner owns the connection and everything the loop touches; the
public :class:`~gateway_anyio.Shard` owns what applications see (its state, its
events, how the last connection closed). The shard hands its runner a
``ShardHooks`` (``_shard_hooks``: its identity and the callbacks to report through),
so this module never names the ``Shard`` class: ``_shard`` imports ``_runner``,
never the other way round.

The driver adds the timeouts only it can see: TCP connect, TLS handshake,
WebSocket handshake, and READY/RESUMED after IDENTIFY/RESUME (HELLO and the
closing handshake are timed by the core). When one expires the transport is
aborted, which the core treats as a dropped connection (resumable).
"""

from __future__ import annotations

import dataclasses
import math
import random
import ssl
from collections.abc import Callable
from time import perf_counter

import anyio
import anyio.abc
import anyio.lowlevel

from gateway_proto.backoff import Backoff
from gateway_proto.commands import Command
from gateway_proto.config import ShardConfig
from gateway_proto.connection import GatewayConnection
from gateway_proto.driver_support import (
    DISCONNECT,
    ERROR,
    HAND_OVER_EVERY,
    HANDSHAKE_TIMED_OUT,
    IDENTIFY_WAIT,
    WRITE_STALL_TIMEOUT,
    WRITE_STALLED,
    ConnectionReactor,
    ConnectionTally,
    Done,
    EarlyEnds,
    EventDrain,
    IdentifyWait,
    Reaction,
    ShardState,
    StepDeadline,
    Stopped,
    UnsentCommands,
    after_connection,
    note_identify_sent,
)
from gateway_proto.errors import GatewayError, LocalProtocolError
from gateway_proto.events import Closed
from gateway_proto.reconnect import Reconnector
from gateway_proto.session import Session

from ._asyncio_stream import AsyncioByteStream, asyncio_checkpoint
from ._events import _Signal
from ._limiter import IdentifyLimiter
from ._shard_hooks import ShardHooks
from ._timer_wake import TimerWake
from ._transport import TRANSPORT_ERRORS, current_async_library, open_stream

__all__ = ["ShardRunner"]

#: Bytes per ``send``: the stall limit applies to each, so a large backlog that the
#: peer takes slowly but steadily is progress, not a stall.
_WRITE_CHUNK = 64 * 1024
#: Bytes per read: asyncio reads up to 256 KiB at a time, and asking for less splits
#: each read (a copy of the rest, and another trip through the loop, per 64 KiB).
_READ_SIZE = 262_144
#: Seconds the writer gets, once the connection ended, to write its last bytes (a
#: close frame): enough for any peer that reads, and a bound for one that does not.
_LAST_WORDS_TIMEOUT = 1.0


class ShardRunner:
    """Connects one shard again and again until it is told to stop.

    It lives as long as its :class:`~gateway_anyio.Shard` and owns what only the
    loop touches: the connection and its stream, the driver's deadline, the
    reconnect policy and the commands not written yet. It reports through the
    shard's :class:`ShardHooks`, because every event and state change carries the
    shard itself.
    """

    def __init__(
        self,
        hooks: ShardHooks,
        config: ShardConfig,
        *,
        url_given: bool,
        session: Session | None,
        limiter: IdentifyLimiter,
        ssl_context: ssl.SSLContext | None,
        timeouts: tuple[float, float, float],
        rng: random.Random,
    ) -> None:
        self._hooks = hooks
        self._shard_id = hooks.shard_id
        self._log = hooks.log
        self._counters = hooks.counters
        self._emit = hooks.emit
        self._set_state = hooks.set_state
        # The core counts bytes, messages and rate limit waits per connection.
        self._tally = ConnectionTally(hooks.counters)
        self.config = config
        self._url_given = url_given
        self._session = session
        self._limiter = limiter
        self._ssl_context = ssl_context
        # (connect, handshake, ready): see the Shard's arguments of those names.
        self._timeouts = timeouts
        self._rng = rng
        self._conn: GatewayConnection | None = None
        self._stream: anyio.abc.ByteStream | None = None
        # What the writer writes next, in order; only the writer takes from it.
        self._outgoing = bytearray()
        # Writes a few bytes at once if the stream can take them without waiting
        # (AsyncioByteStream.send_nowait), else None: everything goes to the writer.
        self._write_now: Callable[[bytes], bool] | None = None
        self._write_wanted = _Signal()
        # Set once the connection's writer ended (made per connection: an anyio.Event
        # needs a running event loop, and a Shard may be built before one runs).
        self._writer_done: anyio.Event | None = None
        self._wake = TimerWake(self._next_wake)
        self._deadline = StepDeadline()
        self._closed: Closed | None = None
        self._stopping = False
        self._restart: int | None = None
        self._drain: EventDrain
        self._reconnector: Reconnector
        self._task_group: anyio.abc.TaskGroup
        # Accepted by send(), not written yet: carried over to the next connection.
        self._unsent = UnsentCommands()
        # Connections in a row that ended before READY/RESUMED (each one is reported).
        self._early_ends = EarlyEnds(config.token)

    @property
    def session(self) -> Session | None:
        """The live connection's session, else the one saved from the last."""
        if self._conn is not None and self._closed is None:
            return self._conn.session
        return self._session

    @property
    def latency(self) -> float | None:
        """The current connection's heartbeat latency (``None`` without one)."""
        return None if self._conn is None else self._conn.latency

    # -- what the shard asks for ---------------------------------------------------

    async def send(self, command: Command, done: Done | None = None) -> None:
        """Hand ``command`` to the live connection and write what it lets out.

        ``done``: told once whether the command was written (see ``UnsentCommands``).
        """
        conn = self._conn
        try:
            if conn is None or self._closed is not None:
                raise LocalProtocolError(f"shard {self._shard_id} is not connected")
            conn.send(command, anyio.current_time())
        except GatewayError:
            self._counters.commands_refused += 1
            raise
        self._unsent.accepted(command, done)
        self._process(conn)
        self._flush(conn)
        self._wake.set()  # the core may have a new deadline (rate limiter)

    def request_stop(self, code: int) -> bool:
        """Stop after the current connection; close it with ``code``.

        Call it only while the shard runs: the request lasts until the run ends
        (:meth:`finish`). Returns ``False`` when there is no connection to close.
        """
        self._stopping = True
        return self._close_current(code)

    def request_restart(self, code: int) -> None:
        """Close the current connection with ``code`` and connect again at once."""
        if self._close_current(code):
            self._restart = code

    def finish(self) -> None:
        """Forget the last connection: the shard has stopped."""
        self._stopping = False
        conn = self._conn
        if conn is not None and self._closed is None and conn.session is not None:
            # Cancelled mid-connection: no close frame went out, so the live session
            # (with its last sequence) is still resumable; keep it for `Shard.session`.
            self._session = conn.session
        self._conn = None

    def stop_report(
        self, reason: str, *, error: BaseException | None = None, closed: Closed | None = None
    ) -> Stopped:
        """Build the ``disconnect`` payload, with the commands that never went out."""
        return self._unsent.stop_report(reason, error=error, closed=closed, log=self._log)

    # -- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and connect again after every close, until told to stop.

        Raises:
            FatalCloseError: Discord refused the shard for good.
            InvalidTokenError: ``GET /gateway/bot`` refused the token.

        """
        self._restart = None
        if not self._url_given:
            info = await self._hooks.gateway.fetch(user_agent=self.config.user_agent)
            self.config = dataclasses.replace(self.config, url=info.url)
        reconnector = self._reconnector = Reconnector(
            self.config, session=self._session, rng=self._rng, backoff=Backoff(self._rng)
        )
        # Counted by the core; copied into the counters (see _sync_counters).
        self._counters.reconnects = {}
        self._counters.reconnect_codes = {}
        while True:
            conn = reconnector.new_connection()
            self._tally.track(conn)
            self._unsent.requeue(conn, anyio.current_time(), log=self._log)
            closed: Closed | None = None
            failure: Exception | None = None
            try:
                closed = await self._run_connection(conn)
            except (*TRANSPORT_ERRORS, TimeoutError) as exc:
                self._log.warning("connecting to %s failed: %r", conn.url, exc)
                self._emit(ERROR, exc)
                failure = exc
            restart, self._restart = self._restart is not None, None
            step = after_connection(
                reconnector,
                closed,
                connect_error=failure,
                restart=restart,
                stopping=self._stopping,
                now=anyio.current_time(),
            )
            self._session = reconnector.session
            self._sync_counters()
            self._counters.count_close(closed)
            if closed is not None:
                self._hooks.closed(closed)
            self._set_state(step.state, step.state_reason)
            if step.delay is None:
                self._emit(DISCONNECT, step.stopped(self._unsent, closed, self._log))
                step.raise_error()
                return
            await anyio.sleep(step.delay)

    async def _run_connection(self, conn: GatewayConnection) -> Closed:
        self._set_state(ShardState.CONNECTING, f"connecting to {conn.url}")
        stream = await open_stream(
            conn.url, ssl_context=self._ssl_context, connect_timeout=self._timeouts[0]
        )
        self._counters.connections += 1
        self._conn, self._stream, self._closed = conn, stream, None
        self._outgoing = bytearray()
        self._write_now = stream.send_nowait if isinstance(stream, AsyncioByteStream) else None
        writer_done = self._writer_done = anyio.Event()
        reactor = ConnectionReactor(
            conn, ready_timeout=self._timeouts[2], early_ends=self._early_ends
        )
        hooks = self._hooks
        self._drain = EventDrain(
            shard=hooks.shard,
            shard_id=hooks.shard_id,
            counters=self._counters,
            reconnector=self._reconnector,
            reactor=reactor,
            unsent=self._unsent,
            hand_over=hooks.emitter.emit_batch,
            wants=hooks.emitter.wants,
            on_reaction=lambda reaction: self._apply(reaction, conn),
            on_counts=self._sync_counters,
            clock=perf_counter,
        )
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._writer, conn, stream)
                now = anyio.current_time()
                self._deadline.set(now + self._timeouts[1], HANDSHAKE_TIMED_OUT)
                conn.connect(now)
                self._flush(conn)
                tg.start_soon(self._reader, conn, stream)
                await self._timer(conn)
                # Last words (a close frame): written if the peer takes them at once.
                self._write_wanted.set()
                with anyio.move_on_after(_LAST_WORDS_TIMEOUT):
                    await writer_done.wait()
                tg.cancel_scope.cancel()
        finally:
            self._stream = None
            await anyio.aclose_forcefully(stream)
        assert self._closed is not None
        return self._closed

    async def _reader(self, conn: GatewayConnection, stream: anyio.abc.ByteStream) -> None:
        # Asked once per connection, as open_stream and TimerWake ask it.
        on_asyncio = current_async_library() == "asyncio"
        checkpoint = asyncio_checkpoint if on_asyncio else anyio.lowlevel.checkpoint
        while self._closed is None:
            try:
                data = await stream.receive(_READ_SIZE)
            except (*TRANSPORT_ERRORS, anyio.ClosedResourceError):
                data = b""
            conn.receive_data(data, anyio.current_time())
            while self._process(conn, HAND_OVER_EVERY):
                await checkpoint()
            self._flush(conn)
            self._wake.set()
            if not data:
                return

    async def _timer(self, conn: GatewayConnection) -> None:
        wake = self._wake
        while self._closed is None:
            deadline = self._deadline.earliest(conn.next_deadline())
            # Other tasks end the sleep early only when the deadline moved sooner.
            on_time = await wake.sleep_until(deadline)
            now = anyio.current_time()
            if on_time:
                # Woken by the deadline itself: it is due, even if the clock reads
                # a hair earlier after the loop's rounding.
                now = max(now, wake.armed)
            stuck = self._deadline.expired(now)
            if stuck is not None:
                # A step only the driver can time is stuck: drop the transport, which
                # the core handles like any lost connection (resumable).
                self._log.warning(stuck)
                conn.receive_data(b"", now)
            core_deadline = conn.next_deadline()
            if core_deadline is not None and now >= core_deadline:
                conn.handle_timeout(now)
            self._process(conn)
            self._flush(conn)

    def _next_wake(self) -> float:
        # When the timer must wake next (see TimerWake): at once once the connection
        # ended, else at the earliest of the core's and the step's deadlines.
        conn = self._conn
        if self._closed is not None or conn is None:
            return -math.inf
        deadline = self._deadline.earliest(conn.next_deadline())
        return math.inf if deadline is None else deadline

    def _flush(self, conn: GatewayConnection) -> None:
        # Never waits: the bytes join the writer's buffer, in the order drained. When
        # that buffer is empty, every byte before them is on the transport already
        # (the writer hands a chunk over as it takes it), so a transport that takes
        # them without waiting (an idle shard's heartbeat) gets them here, in order,
        # and the writer is not woken: it is left what must wait, with its stall limit.
        data = conn.data_to_send()
        if data and self._conn is conn and self._stream is not None:
            write_now = self._write_now
            if not self._outgoing and write_now is not None and write_now(data):
                return
            self._outgoing += data
            self._write_wanted.set()

    async def _writer(self, conn: GatewayConnection, stream: anyio.abc.ByteStream) -> None:
        outgoing, done = self._outgoing, self._writer_done
        assert done is not None
        try:
            while True:
                if not outgoing:
                    if self._closed is not None:
                        return  # the last words are out
                    await self._write_wanted.wait()
                    continue
                if len(outgoing) <= _WRITE_CHUNK:
                    chunk = bytes(outgoing)
                    outgoing.clear()
                else:
                    chunk = bytes(outgoing[:_WRITE_CHUNK])
                    del outgoing[:_WRITE_CHUNK]
                with anyio.move_on_after(WRITE_STALL_TIMEOUT) as stall:
                    try:
                        await stream.send(chunk)
                    except (*TRANSPORT_ERRORS, anyio.ClosedResourceError):
                        self._lose_transport(conn, None)
                        return
                if stall.cancelled_caught:
                    self._lose_transport(conn, WRITE_STALLED)
                    return
        finally:
            done.set()

    def _lose_transport(self, conn: GatewayConnection, why: str | None) -> None:
        # The core handles a transport the driver gave up on like any lost
        # connection (resumable); the timer sees the Closed event and ends it.
        if self._closed is None:
            if why is not None:
                self._log.warning(why)
            conn.receive_data(b"", anyio.current_time())
            self._process(conn)
        self._wake.set()

    def _process(self, conn: GatewayConnection, limit: int = 0) -> bool:
        # See EventDrain: with a limit, True means more may be waiting.
        return self._drain.drain(conn, limit)

    def _apply(self, reaction: Reaction, conn: GatewayConnection) -> None:
        """Do what the core's last event asks of the shard (see ``ConnectionReactor``)."""
        self._deadline.follow(reaction, anyio.current_time())
        if reaction.log is not None:
            self._log.log(*reaction.log)
        if reaction.state is not None:
            self._set_state(reaction.state, reaction.reason)
        if reaction.emit is not None:
            self._emit(*reaction.emit)
        if reaction.error is not None:
            self._emit(ERROR, reaction.error)
        if reaction.identify:
            self._task_group.start_soon(self._identify, conn)
        if reaction.closed is not None:
            self._closed = reaction.closed

    def _sync_counters(self) -> None:
        self._tally.update(self._reconnector)

    async def _identify(self, conn: GatewayConnection) -> None:
        await self._limiter.acquire(self._shard_id, on_wait=self._identify_wait)
        if self._conn is not conn or self._closed is not None:
            return
        conn.identify(anyio.current_time())
        self._process(conn)
        self._flush(conn)
        # Handed to the writer, which writes it at once: the limiter measures the
        # identify window from now, not from the permit.
        note_identify_sent(self._limiter, self._shard_id)
        self._wake.set()

    def _identify_wait(self, wait: IdentifyWait) -> None:
        self._log.info(
            "waiting %.2f s to identify (bucket %d%s)",
            wait.delay,
            wait.bucket,
            ", session start budget spent: waiting for its reset" if wait.waits_for_reset else "",
        )
        self._emit(IDENTIFY_WAIT, wait)

    def _close_current(self, code: int) -> bool:
        conn = self._conn
        if conn is None or self._closed is not None or self._stream is None:
            return False
        try:
            if not conn.close(code, now=anyio.current_time()):
                return False  # already closing: that close ends the connection
        except GatewayError:
            return False
        self._process(conn)
        self._flush(conn)  # the close frame goes now, not when the timer next wakes
        self._wake.set()
        return True
