"""``Shard``: one gateway connection kept alive on anyio (asyncio or trio).

Theory of operation: the shard owns no protocol logic. Per connection it opens TCP
(+ TLS), then runs two tasks around one ``GatewayConnection``: a *reader* that feeds
received bytes (``b""`` at EOF) to the core, and a *timer* that sleeps until the
core's ``next_deadline()`` (or a wake-up) and calls ``handle_timeout``. After every
input the shard drains the core's events (handing them to handlers and streams,
which never block it) and writes ``data_to_send()`` under a lock, so writes keep
their order. When the core reports ``Closed``, the ``Reconnector`` (also core) says
whether and when to connect again, resume or identify; the shard only sleeps.
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
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from gateway_proto.backoff import Backoff
from gateway_proto.close_codes import RESUMABLE_CLOSE
from gateway_proto.commands import Command, RequestGuildMembers, Snowflake, UpdatePresence
from gateway_proto.config import Compression, Encoding, ShardConfig
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
    STATE,
    Connected,
    GatewayEvent,
    IdentifyWait,
    MemberChunkCollector,
    ShardCounters,
    ShardLogger,
    ShardState,
    StateChange,
    Stopped,
    UnsentCommands,
)
from gateway_proto.errors import GatewayError, LocalProtocolError
from gateway_proto.events import CloseCause, Closed, Dispatch, IdentifyNeeded, Opened, PayloadSent
from gateway_proto.reconnect import Reconnector
from gateway_proto.session import Session

from ._events import DEFAULT_MAX_BUFFER, Emitter, EventStream, Handler, _Signal
from ._gateway import Gateway
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter

__all__ = ["Shard"]

_H = TypeVar("_H", bound=Handler)
_TRANSPORT_ERRORS = (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream)


class Shard:
    """One shard: connects, heartbeats, resumes and reconnects until told to stop.

    Args:
        token_or_gateway: a bot token, or a :class:`Gateway` (whose ``fetch`` gives
            the URL; a token gets ``Gateway.for_token(token)``).
        shard_id: this shard's id.
        shard_count: the total number of shards.
        intents: the intents bitfield.
        encoding: ``"json"`` or ``"etf"``.
        compress: ``"zlib-stream"``, ``"zstd-stream"``, ``"payload"`` or ``None``.
        url: connect here instead of asking ``GET /gateway/bot``.
        session: a saved :class:`~gateway_proto.Session` to resume.
        identify_limiter: shared identify limiter (a cluster passes its own);
            default: a private one with ``max_concurrency`` 1.
        ssl_context: the TLS context for ``wss://`` (default: verified system trust).
        presence: the presence sent with IDENTIFY.
        large_threshold: see :class:`~gateway_proto.config.ShardConfig`.
        connect_timeout: seconds for TCP connect, and again for the TLS handshake.
        handshake_timeout: seconds for the WebSocket upgrade.
        ready_timeout: seconds from IDENTIFY/RESUME to READY/RESUMED.
        max_buffer: per-consumer event buffer (see ``events()``).
        rng: randomness for heartbeat jitter and backoff (seed it in tests).
        config_options: more :class:`~gateway_proto.config.ShardConfig` fields
            (``hello_timeout``, ``close_timeout``, ``max_message_size``, ...).

    """

    def __init__(
        self,
        token_or_gateway: str | Gateway,
        shard_id: int = 0,
        *,
        shard_count: int = 1,
        intents: int,
        encoding: Encoding = "json",
        compress: Compression = "zlib-stream",
        url: str | None = None,
        session: Session | None = None,
        identify_limiter: IdentifyLimiter | None = None,
        ssl_context: ssl.SSLContext | None = None,
        presence: UpdatePresence | None = None,
        large_threshold: int = 50,
        connect_timeout: float = 10.0,
        handshake_timeout: float = 10.0,
        ready_timeout: float = 60.0,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        rng: random.Random | None = None,
        **config_options: Any,
    ) -> None:
        gateway = (
            token_or_gateway
            if isinstance(token_or_gateway, Gateway)
            else Gateway.for_token(token_or_gateway)
        )
        self.gateway = gateway
        self.id = shard_id
        self._config = ShardConfig(
            token=gateway.token,
            intents=int(intents),
            shard=(shard_id, shard_count),
            url=url or "wss://gateway.discord.gg/",
            encoding=encoding,
            compression=compress,
            presence=presence,
            large_threshold=large_threshold,
            **config_options,
        )
        self._url_given = url is not None
        self._session = session
        self._limiter = identify_limiter or InProcessIdentifyLimiter()
        self._ssl_context = ssl_context
        self._timeouts = (connect_timeout, handshake_timeout, ready_timeout)
        self._rng = rng or random.Random()
        self._log = ShardLogger(logging.getLogger(f"gateway_anyio.shard.{shard_id}"), gateway.token)
        self.counters = ShardCounters()
        self._emitter = Emitter(self._log, max_pending=max_buffer, on_drop=self._count_drop)
        self._max_buffer = max_buffer
        self._state = ShardState.IDLE
        self._conn: GatewayConnection | None = None
        self._stream: anyio.abc.ByteStream | None = None
        self._write_lock: anyio.Lock | None = None
        self._wake = _Signal()
        self._deadline: tuple[float, str] | None = None
        self._closed: Closed | None = None
        self._running = False
        self._stopping = False
        self._restart: int | None = None
        self._run_scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None
        self._resuming = False
        self._reconnector: Reconnector
        self._task_group: anyio.abc.TaskGroup
        # Accepted by send(), not written yet: carried over to the next connection.
        self._unsent = UnsentCommands()
        #: Called after every state change (a cluster paces its spawns with it).
        self._on_state: Callable[[Shard], None] | None = None

    def __repr__(self) -> str:
        return f"<Shard {self.id}/{self._config.shard[1]} {self._state.value}>"

    # -- observable state ------------------------------------------------------

    @property
    def state(self) -> ShardState:
        """Where the shard is in its life (a :class:`ShardState`)."""
        return self._state

    @property
    def session(self) -> Session | None:
        """The session to resume with (``None`` before READY or after it was lost)."""
        if self._conn is not None and self._closed is None:
            return self._conn.session
        return self._session

    @property
    def seq(self) -> int | None:
        """The last sequence number received."""
        session = self.session
        return None if session is None else session.sequence

    @property
    def latency(self) -> float | None:
        """Seconds between the last heartbeat and its ACK (``None`` before the first)."""
        return None if self._conn is None else self._conn.latency

    # -- events ------------------------------------------------------------------

    @overload
    def on(self, name: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, name: str, handler: _H) -> _H: ...

    def on(self, name: str, handler: _H | None = None) -> _H | Callable[[_H], _H]:
        """Register a handler for an event name (``"*"``: all); usable as a decorator.

        Each handler runs in its own task, in event order, with a bounded buffer
        (``max_buffer``; the oldest events are dropped when it falls behind).
        """
        return self._emitter.on(name) if handler is None else self._emitter.on(name, handler)

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

    def events(self, *names: str, max_buffer: int | None = None) -> EventStream:
        """Iterate over events (only ``names`` if given) as they come.

        The stream has its own buffer (``max_buffer`` events, default the shard's);
        a consumer that falls behind loses the oldest events, counted in
        ``stream.dropped``. Iteration ends when the shard stops.
        """
        return self._emitter.events(*names, max_buffer=max_buffer or self._max_buffer)

    # -- control -------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and stay connected until :meth:`disconnect`; return then.

        Reconnects (resuming when the session allows) with jittered exponential
        backoff. Run it in a task group to do other things meanwhile.

        Raises:
            FatalCloseError: Discord refused the shard for good (bad token,
                intents, shard, API version); it does not reconnect.
            InvalidTokenError: ``GET /gateway/bot`` refused the token.
            RuntimeError: the shard is already running.

        """
        if self._running:
            raise RuntimeError(f"shard {self.id} is already running")
        self._running, self._restart = True, None
        self._stopped = anyio.Event()
        self._write_lock = anyio.Lock()
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._emitter.attach(tg)
                try:
                    with anyio.CancelScope() as self._run_scope:
                        await self._run()
                    if self._run_scope.cancelled_caught:
                        self._set_state(ShardState.STOPPED, "disconnected by the user")
                        self._emit(DISCONNECT, self._stop_report("disconnected by the user"))
                except Exception as exc:
                    # Re-raised below, outside the task group, so callers catch the
                    # typed error itself rather than an ExceptionGroup around it.
                    failure = exc
                    self._stop_on(exc)
                except BaseException as exc:  # cancelled from outside
                    self._stop_on(exc)
                    raise
                finally:
                    # Handlers drain their buffers, then end (bounded by a grace period).
                    self._emitter.close()
                    tg.cancel_scope.deadline = anyio.current_time() + 5.0
        finally:
            self._running = self._stopping = False
            self._conn = None
            self._stopped.set()
        if failure is not None:
            raise failure

    def _stop_on(self, exc: BaseException) -> None:
        if self._state is not ShardState.STOPPED:
            self._set_state(ShardState.STOPPED, f"stopped by {type(exc).__name__}")
            self._emit(DISCONNECT, self._stop_report(str(exc), error=exc))

    async def disconnect(self, code: int = 1000) -> None:
        """Close with ``code`` and stop for good; return once stopped.

        ``1000``/``1001`` end the session (the bot goes offline); any other code
        keeps it resumable, and :attr:`session` can be handed to a new shard.
        """
        self._stopping = True
        if not self._close_current(code) and self._run_scope is not None:
            self._run_scope.cancel()
        if self._stopped is not None:
            await self._stopped.wait()

    async def reconnect(self, code: int = RESUMABLE_CLOSE) -> None:
        """Close the current connection with ``code`` and connect again at once.

        With the default (4000) the session is resumed; ``1000`` starts a new one.
        Between connections (connecting, or waiting out a backoff) there is nothing
        to close and the call does nothing: a new connection is already on its way.
        """
        self._restart = code
        if not self._close_current(code):
            self._restart = None

    async def send(self, command: Command) -> None:
        """Queue a command; it goes out once the session is live, within rate limits.

        A command still queued when the connection ends is queued again on the
        shard's next connection (resumed or new), in order; if the shard stops
        first, it is reported in the ``disconnect`` event (``Stopped.unsent``)
        and logged as a warning. It is never dropped silently.

        Raises:
            InvalidCommandError: the command is invalid or too large.
            LocalProtocolError: the shard is not connected.

        """
        conn = self._conn
        if conn is None or self._closed is not None:
            raise LocalProtocolError(f"shard {self.id} is not connected")
        conn.send(command, anyio.current_time())
        self._unsent.accepted(command)
        self._process(conn)
        await self._flush(conn)
        self._wake.set()  # the core may have a new deadline (rate limiter)

    async def request_guild_members(
        self,
        guild_id: Snowflake,
        *,
        query: str | None = None,
        limit: int = 0,
        presences: bool = False,
        user_ids: list[Snowflake] | None = None,
    ) -> AsyncIterator[Any]:
        """Ask for a guild's members (op 8) and yield them as the chunks arrive.

        Matches ``GUILD_MEMBERS_CHUNK`` s by a fresh nonce and stops after the last
        chunk. A ``RATE_LIMITED`` answer is honoured: wait ``retry_after``, then ask
        again. Without ``query`` and ``user_ids`` it asks for every member.
        """
        if query is None and user_ids is None:
            query = ""
        nonce = secrets.token_hex(16)
        collector = MemberChunkCollector(nonce, str(guild_id))
        command = RequestGuildMembers(
            guild_id=guild_id,
            query=query,
            limit=limit,
            presences=presences,
            user_ids=user_ids,
            nonce=nonce,
        )
        async with self.events("GUILD_MEMBERS_CHUNK", "RATE_LIMITED") as stream:
            await self.send(command)
            async for event in stream:
                outcome = collector.feed(event.name, event.data)
                if outcome is None:
                    continue
                if outcome.retry_after is not None:
                    self._log.info(
                        "member request rate limited; retrying in %.2f s", outcome.retry_after
                    )
                    await anyio.sleep(outcome.retry_after)
                    await self.send(command)
                    continue
                for member in outcome.members:
                    yield member
                if outcome.done:
                    return

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        if not self._url_given:
            info = await self.gateway.fetch()
            self._config = dataclasses.replace(self._config, url=info.url)
        reconnector = self._reconnector = Reconnector(
            self._config, session=self._session, rng=self._rng, backoff=Backoff(self._rng)
        )
        # One dict, shared: the core counts reconnects by cause, the driver adds its own.
        self.counters.reconnects = reconnector.reconnects
        while True:
            resuming = reconnector.session is not None
            conn = reconnector.new_connection()
            self._requeue(conn)
            closed: Closed | None = None
            try:
                ended = await self._run_connection(conn, resuming)
            except (*_TRANSPORT_ERRORS, TimeoutError) as exc:
                self._log.warning("connecting to %s failed: %r", conn.url, exc)
                self._emit(ERROR, exc)
                delay: float | None = reconnector.after_connect_failure(repr(exc))
                reason = f"connect failed ({type(exc).__name__})"
            else:
                closed = ended
                restart, self._restart = self._restart, None
                if restart is not None and ended.cause is CloseCause.REQUESTED:
                    # shard.reconnect(): skip the policy, go again now (resuming what
                    # the Closed event left, which observe() already took).
                    self.counters.count_reconnect("requested")
                    delay, reason = 0.0, "reconnect requested"
                else:
                    delay = reconnector.after_close(ended)
                    reason = f"{ended.cause.value} (code {ended.code}): {ended.reason}"
            self._session = reconnector.session
            self._sync_counters()
            if delay is None or self._stopping:
                error = None if self._stopping else reconnector.fatal_error
                why = "disconnected" if error is None else str(error)
                self._set_state(ShardState.STOPPED, why)
                self._emit(DISCONNECT, self._stop_report(why, error=error, closed=closed))
                if error is not None:
                    self._log.error("stopping: %s", error)
                    raise error
                return
            self._set_state(ShardState.RECONNECTING, f"{reason}; next attempt in {delay:.2f} s")
            await anyio.sleep(delay)

    async def _run_connection(self, conn: GatewayConnection, resuming: bool) -> Closed:
        self._set_state(ShardState.CONNECTING, f"connecting to {conn.url}")
        stream = await self._open(conn.url)
        self.counters.connections += 1
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

    async def _open(self, url: str) -> anyio.abc.ByteStream:
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        connect_timeout = self._timeouts[0]
        with anyio.fail_after(connect_timeout):
            tcp = await anyio.connect_tcp(host, port)
        if not secure:
            return tcp
        try:
            with anyio.fail_after(connect_timeout):
                return await TLSStream.wrap(
                    tcp,
                    hostname=host,
                    ssl_context=self._ssl_context or ssl.create_default_context(),
                    standard_compatible=False,
                )
        except BaseException:
            await anyio.aclose_forcefully(tcp)
            raise

    async def _reader(self, conn: GatewayConnection, stream: anyio.abc.ByteStream) -> None:
        while self._closed is None:
            try:
                data = await stream.receive()
            except (*_TRANSPORT_ERRORS, anyio.ClosedResourceError):
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
            except (*_TRANSPORT_ERRORS, anyio.ClosedResourceError):
                conn.receive_data(b"", anyio.current_time())
                self._process(conn)
                self._wake.set()

    def _process(self, conn: GatewayConnection) -> None:
        observe = self._reconnector.observe
        # Checked once per batch: most applications don't listen to "receive", and
        # building an event nobody reads costs as much as the dispatch's own.
        receive = self._emitter.wants(RECEIVE)
        for event in conn.events():
            observe(event)
            if isinstance(event, Dispatch):
                self.counters.dispatches += 1
                if event.name in ("READY", "RESUMED"):
                    self._deadline = None
                    resumed = event.name == "RESUMED"
                    self._set_state(ShardState.READY, event.name)
                    self._emit(CONNECT, Connected(resumed, conn.session))
                self._emit(event.name, event.data, event.sequence)
                if receive:
                    self._emit(RECEIVE, event)
            elif isinstance(event, PayloadSent):
                self._unsent.observe(event)
                self._sync_counters()
                self._emit(SEND, {"op": event.opcode, "d": event.data})
            elif isinstance(event, IdentifyNeeded):
                self._set_state(ShardState.IDENTIFYING, "waiting for an identify permit")
                self._task_group.start_soon(self._identify, conn)
            elif isinstance(event, Opened):
                self._deadline = None  # HELLO is the core's to time
                self._emit(OPEN, conn.url)
                if self._resuming:
                    self._set_state(ShardState.RESUMING, "resuming the session")
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
                self._emit(CLOSE, event)
            else:
                self._emit(RECEIVE, event)

    def _sync_counters(self) -> None:
        self.counters.identifies = self._reconnector.identifies
        self.counters.resumes = self._reconnector.resumes

    async def _identify(self, conn: GatewayConnection) -> None:
        await self._limiter.acquire(self.id, on_wait=self._identify_wait)
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
        self._emit(IDENTIFY_WAIT, wait)

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

    def _emit(self, name: str, data: Any, sequence: int | None = None) -> None:
        self._emitter.emit(GatewayEvent(name, self.id, data, sequence, self))

    def _set_state(self, new: ShardState, reason: str) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._log.info("%s -> %s: %s", old.value, new.value, reason)
            self._emit(STATE, StateChange(old, new, reason))
            if self._on_state is not None:
                self._on_state(self)

    def _requeue(self, conn: GatewayConnection) -> None:
        """Hand the commands the last connection did not write to ``conn``."""
        if self._unsent:
            refused = self._unsent.requeue(conn, anyio.current_time())
            self._log.info("re-queued %d unsent command(s)", len(self._unsent))
            if refused:
                self._log.warning("dropped %d unsent command(s): queue full", len(refused))

    def _stop_report(
        self, reason: str, *, error: BaseException | None = None, closed: Closed | None = None
    ) -> Stopped:
        """Build the ``disconnect`` payload, with the commands that never went out."""
        unsent = self._unsent.take()
        if unsent:
            self._log.warning("stopped with %d command(s) not sent", len(unsent))
        return Stopped(reason, error=error, closed=closed, unsent=unsent)

    def _count_drop(self, count: int) -> None:
        self.counters.dropped_events += count
