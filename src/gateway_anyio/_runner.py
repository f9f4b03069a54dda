"""The I/O side of a ``Shard``: the reconnect loop and each connection's tasks.

Theory of operation: the runner owns no protocol logic. Per connection it opens TCP
(+ TLS), then runs two tasks around one ``GatewayConnection``: a *reader* that feeds
received bytes (``b""`` at EOF) to the core, and a *timer* that sleeps until the
core's ``next_deadline()`` (or a wake-up) and calls ``handle_timeout``. After every
input the runner drains the core's events (handing them to handlers and streams,
which never block it) and writes ``data_to_send()`` under a lock, so writes keep
their order. When the core reports ``Closed``, the ``Reconnector`` (also core) says
whether and when to connect again, resume or identify; the runner only sleeps.
Identify permits come from an :class:`~gateway_anyio.IdentifyLimiter`, in a task of
their own, so waiting for one never delays heartbeats.

The driver adds the timeouts only it can see: TCP connect, TLS handshake,
WebSocket handshake, and READY/RESUMED after IDENTIFY/RESUME (HELLO and the
closing handshake are timed by the core). When one expires the transport is
aborted, which the core treats as a dropped connection (resumable).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import ssl
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from gateway_proto.backoff import Backoff
from gateway_proto.commands import Command
from gateway_proto.config import ShardConfig
from gateway_proto.connection import GatewayConnection
from gateway_proto.driver_support import (
    CLOSE,
    CONNECT,
    DISCONNECT,
    ERROR,
    IDENTIFY_WAIT,
    OPEN,
    RECEIVE,
    SEND,
    Connected,
    IdentifyWait,
    ShardState,
    Stopped,
    UnsentCommands,
)
from gateway_proto.errors import GatewayError, LocalProtocolError
from gateway_proto.events import CloseCause, Closed, Dispatch, IdentifyNeeded, Opened, PayloadSent
from gateway_proto.reconnect import Reconnector
from gateway_proto.session import Session

from ._events import _Signal
from ._limiter import IdentifyLimiter
from ._transport import TRANSPORT_ERRORS, open_stream

if TYPE_CHECKING:
    from ._shard import Shard

__all__ = ["ShardRunner"]


class ShardRunner:
    """Connects one shard again and again until it is told to stop.

    It lives as long as its :class:`~gateway_anyio.Shard` and owns what only the
    loop touches: the connection and its stream, the driver's deadline, the
    reconnect policy and the commands not written yet. It reports through the
    shard, because every event and state change carries the shard itself.
    """

    def __init__(
        self,
        shard: Shard,
        config: ShardConfig,
        *,
        url_given: bool,
        session: Session | None,
        limiter: IdentifyLimiter,
        ssl_context: ssl.SSLContext | None,
        timeouts: tuple[float, float, float],
        rng: random.Random,
    ) -> None:
        self._shard = shard
        self._log = shard._log
        self._counters = shard.counters
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
        self._write_lock: anyio.Lock | None = None
        self._wake = _Signal()
        self._deadline: tuple[float, str] | None = None
        self._closed: Closed | None = None
        self._stopping = False
        self._restart: int | None = None
        self._resuming = False
        self._reconnector: Reconnector
        self._task_group: anyio.abc.TaskGroup
        # Accepted by send(), not written yet: carried over to the next connection.
        self._unsent = UnsentCommands()

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

    async def send(self, command: Command) -> None:
        """Hand ``command`` to the live connection and write what it lets out."""
        conn = self._conn
        if conn is None or self._closed is not None:
            raise LocalProtocolError(f"shard {self._shard.id} is not connected")
        conn.send(command, anyio.current_time())
        self._unsent.accepted(command)
        self._process(conn)
        await self._flush(conn)
        self._wake.set()  # the core may have a new deadline (rate limiter)

    def request_stop(self, code: int) -> bool:
        """Stop after the current connection; close it with ``code``.

        Returns ``False`` when there is no connection to close.
        """
        self._stopping = True
        return self._close_current(code)

    def request_restart(self, code: int) -> None:
        """Close the current connection with ``code`` and connect again at once."""
        self._restart = code
        if not self._close_current(code):
            self._restart = None

    def finish(self) -> None:
        """Forget the last connection: the shard has stopped."""
        self._stopping = False
        self._conn = None

    def stop_report(
        self, reason: str, *, error: BaseException | None = None, closed: Closed | None = None
    ) -> Stopped:
        """Build the ``disconnect`` payload, with the commands that never went out."""
        unsent = self._unsent.take()
        if unsent:
            self._log.warning("stopped with %d command(s) not sent", len(unsent))
        return Stopped(reason, error=error, closed=closed, unsent=unsent)

    # -- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and connect again after every close, until told to stop.

        Raises:
            FatalCloseError: Discord refused the shard for good.
            InvalidTokenError: ``GET /gateway/bot`` refused the token.

        """
        shard = self._shard
        self._restart = None
        self._write_lock = anyio.Lock()
        if not self._url_given:
            info = await shard.gateway.fetch()
            self.config = dataclasses.replace(self.config, url=info.url)
        reconnector = self._reconnector = Reconnector(
            self.config, session=self._session, rng=self._rng, backoff=Backoff(self._rng)
        )
        # One dict, shared: the core counts reconnects by cause, the driver adds its own.
        self._counters.reconnects = reconnector.reconnects
        while True:
            resuming = reconnector.session is not None
            conn = reconnector.new_connection()
            self._requeue(conn)
            closed: Closed | None = None
            try:
                ended = await self._run_connection(conn, resuming)
            except (*TRANSPORT_ERRORS, TimeoutError) as exc:
                self._log.warning("connecting to %s failed: %r", conn.url, exc)
                shard._emit(ERROR, exc)
                delay: float | None = reconnector.after_connect_failure(repr(exc))
                reason = f"connect failed ({type(exc).__name__})"
            else:
                closed = ended
                restart, self._restart = self._restart, None
                if restart is not None and ended.cause is CloseCause.REQUESTED:
                    # shard.reconnect(): skip the policy, go again now (resuming what
                    # the Closed event left, which observe() already took).
                    self._counters.count_reconnect("requested")
                    delay, reason = 0.0, "reconnect requested"
                else:
                    delay = reconnector.after_close(ended)
                    reason = f"{ended.cause.value} (code {ended.code}): {ended.reason}"
            self._session = reconnector.session
            self._sync_counters()
            if delay is None or self._stopping:
                error = None if self._stopping else reconnector.fatal_error
                why = "disconnected" if error is None else str(error)
                shard._set_state(ShardState.STOPPED, why)
                shard._emit(DISCONNECT, self.stop_report(why, error=error, closed=closed))
                if error is not None:
                    self._log.error("stopping: %s", error)
                    raise error
                return
            shard._set_state(ShardState.RECONNECTING, f"{reason}; next attempt in {delay:.2f} s")
            await anyio.sleep(delay)

    async def _run_connection(self, conn: GatewayConnection, resuming: bool) -> Closed:
        self._shard._set_state(ShardState.CONNECTING, f"connecting to {conn.url}")
        stream = await open_stream(
            conn.url, ssl_context=self._ssl_context, connect_timeout=self._timeouts[0]
        )
        self._counters.connections += 1
        self._conn, self._stream, self._closed = conn, stream, None
        self._resuming = resuming
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                now = anyio.current_time()
                self._deadline = (now + self._timeouts[1], "the WebSocket handshake timed out")
                conn.connect(now)
                await self._flush(conn)
                tg.start_soon(self._reader, conn, stream)
                await self._timer(conn)
                tg.cancel_scope.cancel()
        finally:
            self._stream = None
            await anyio.aclose_forcefully(stream)
        assert self._closed is not None
        return self._closed

    async def _reader(self, conn: GatewayConnection, stream: anyio.abc.ByteStream) -> None:
        while self._closed is None:
            try:
                data = await stream.receive()
            except (*TRANSPORT_ERRORS, anyio.ClosedResourceError):
                data = b""
            conn.receive_data(data, anyio.current_time())
            self._process(conn)
            await self._flush(conn)
            self._wake.set()
            if not data:
                return

    async def _timer(self, conn: GatewayConnection) -> None:
        while self._closed is None:
            deadline = conn.next_deadline()
            if self._deadline is not None:
                mine = self._deadline[0]
                deadline = mine if deadline is None else min(deadline, mine)
            with anyio.CancelScope(deadline=deadline if deadline is not None else float("inf")):
                await self._wake.wait()
            now = anyio.current_time()
            if self._deadline is not None and now >= self._deadline[0]:
                # A step only the driver can time is stuck: drop the transport, which
                # the core handles like any lost connection (resumable).
                self._log.warning("%s; dropping the connection", self._deadline[1])
                self._deadline = None
                conn.receive_data(b"", now)
            core_deadline = conn.next_deadline()
            if core_deadline is not None and now >= core_deadline:
                conn.handle_timeout(now)
            self._process(conn)
            await self._flush(conn)

    async def _flush(self, conn: GatewayConnection) -> None:
        assert self._write_lock is not None
        async with self._write_lock:
            # Drain under the lock: two writers can then never reorder bytes.
            data = conn.data_to_send()
            stream = self._stream
            if not data or stream is None or self._conn is not conn:
                return
            try:
                await stream.send(data)
            except (*TRANSPORT_ERRORS, anyio.ClosedResourceError):
                conn.receive_data(b"", anyio.current_time())
                self._process(conn)
                self._wake.set()

    def _process(self, conn: GatewayConnection) -> None:
        shard = self._shard
        observe = self._reconnector.observe
        # Checked once per batch: most applications don't listen to "receive", and
        # building an event nobody reads costs as much as the dispatch's own.
        receive = shard._emitter.wants(RECEIVE)
        for event in conn.events():
            observe(event)
            if isinstance(event, Dispatch):
                self._counters.dispatches += 1
                if event.name in ("READY", "RESUMED"):
                    self._deadline = None
                    resumed = event.name == "RESUMED"
                    shard._set_state(ShardState.READY, event.name)
                    shard._emit(CONNECT, Connected(resumed, conn.session))
                shard._emit(event.name, event.data, event.sequence)
                if receive:
                    shard._emit(RECEIVE, event)
            elif isinstance(event, PayloadSent):
                self._unsent.observe(event)
                self._sync_counters()
                shard._emit(SEND, {"op": event.opcode, "d": event.data})
            elif isinstance(event, IdentifyNeeded):
                shard._set_state(ShardState.IDENTIFYING, "waiting for an identify permit")
                self._task_group.start_soon(self._identify, conn)
            elif isinstance(event, Opened):
                self._deadline = None  # HELLO is the core's to time
                shard._emit(OPEN, conn.url)
                if self._resuming:
                    shard._set_state(ShardState.RESUMING, "resuming the session")
                    self._deadline = (
                        anyio.current_time() + self._timeouts[2],
                        "RESUMED did not arrive in time",
                    )
            elif isinstance(event, Closed):
                self._closed = event
                self._deadline = None
                level = logging.ERROR if event.error is not None else logging.INFO
                self._log.log(
                    level,
                    "connection closed: %s (code %s, %s)",
                    event.reason,
                    event.code,
                    event.cause.value,
                )
                shard._emit(CLOSE, event)
            else:
                shard._emit(RECEIVE, event)

    def _sync_counters(self) -> None:
        self._counters.identifies = self._reconnector.identifies
        self._counters.resumes = self._reconnector.resumes

    async def _identify(self, conn: GatewayConnection) -> None:
        await self._limiter.acquire(self._shard.id, on_wait=self._identify_wait)
        if self._conn is not conn or self._closed is not None:
            return
        now = anyio.current_time()
        conn.identify(now)
        self._deadline = (now + self._timeouts[2], "READY did not arrive in time")
        self._process(conn)
        await self._flush(conn)
        self._wake.set()

    def _identify_wait(self, wait: IdentifyWait) -> None:
        self._log.info(
            "waiting %.2f s to identify (bucket %d%s)",
            wait.delay,
            wait.bucket,
            ", session start budget spent: waiting for its reset" if wait.waits_for_reset else "",
        )
        self._shard._emit(IDENTIFY_WAIT, wait)

    def _close_current(self, code: int) -> bool:
        conn = self._conn
        if conn is None or self._closed is not None or self._stream is None:
            return False
        try:
            conn.close(code, now=anyio.current_time())
        except GatewayError:
            return False
        self._process(conn)
        self._wake.set()
        return True

    def _requeue(self, conn: GatewayConnection) -> None:
        """Hand the commands the last connection did not write to ``conn``."""
        if self._unsent:
            refused = self._unsent.requeue(conn, anyio.current_time())
            self._log.info("re-queued %d unsent command(s)", len(self._unsent))
            if refused:
                self._log.warning("dropped %d unsent command(s): queue full", len(refused))
