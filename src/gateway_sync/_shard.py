"""``Shard``: one gateway connection, kept alive by one I/O thread.

Theory of operation: the shard owns no protocol logic. Its I/O thread owns the
socket, the core's ``GatewayConnection`` and the ``Reconnector``, and blocks in one
``select`` over the gateway socket and a :class:`~gateway_sync._transport.Waker`,
with a timeout equal to the earliest deadline (the core's ``next_deadline()``, or
one of the driver's own handshake/READY timeouts). It feeds what it reads to the
core (``b""`` at EOF), writes what ``data_to_send()`` returns, and calls
``handle_timeout`` when a deadline passes. When the core reports ``Closed``, the
``Reconnector`` says whether and when to connect again, resume or identify; the
shard only sleeps.

Other threads never touch the connection: ``send``, ``disconnect`` and
``reconnect`` put a message in the shard's mailbox (a ``queue.SimpleQueue``) and
write a byte to the waker. User handlers run on their own threads (``_events``)
and identify permits are awaited on a helper thread (``_limiter``), so neither can
delay a heartbeat.

Why one I/O thread per shard rather than one selector thread for a cluster: a
shard's thread then only ever blocks on its own socket, one shard's slow TLS
handshake or large READY never stalls another's heartbeats, and the shard keeps
the same shape alone or in a cluster. Most bots run few shards per process; a
thread each is cheap at that scale.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import queue
import random
import secrets
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar, overload

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
    MemberChunkCollector,
    ShardCounters,
    ShardLogger,
    ShardState,
    StateChange,
    Stopped,
    UnsentCommands,
)
from gateway_proto.errors import GatewayError, LocalProtocolError
from gateway_proto.events import Closed, Dispatch, IdentifyNeeded, Opened, PayloadSent
from gateway_proto.reconnect import Reconnector
from gateway_proto.session import Session

from ._events import DEFAULT_MAX_BUFFER, Emitter, EventStream, Handler
from ._gateway import Gateway
from ._limiter import IdentifyCancelledError, IdentifyLimiter, InProcessIdentifyLimiter
from ._transport import (
    TransportClosedError,
    Waker,
    close_stream,
    open_stream,
    recv_some,
    send_some,
)

__all__ = ["Shard"]

_H = TypeVar("_H", bound=Handler)

#: Reads (of up to 256 KiB each) per wake-up before the loop looks at its mailbox again.
_MAX_READS_PER_WAKE = 64
#: Seconds a write may stay stuck (the peer reads nothing) before the transport is dropped.
WRITE_STALL_TIMEOUT = 30.0


# -- mailbox messages (other threads -> the I/O thread) -------------------------------


@dataclasses.dataclass(slots=True)
class _Send:
    command: Command
    done: concurrent.futures.Future[None]


@dataclasses.dataclass(slots=True)
class _Close:
    code: int
    restart: bool


@dataclasses.dataclass(slots=True)
class _IdentifyPermit:
    connection: GatewayConnection


_Message = _Send | _Close | _IdentifyPermit


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
        # Built now so bad options fail in the caller's thread, not in the I/O thread.
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
        self._log = ShardLogger(logging.getLogger(f"gateway_sync.shard.{shard_id}"), gateway.token)
        #: Counters for metrics and tests (identifies, resumes, reconnects, ...).
        self.counters = ShardCounters()
        self._emitter = Emitter(
            self._log,
            max_pending=max_buffer,
            on_drop=self._count_drop,
            thread_prefix=f"gateway-shard-{shard_id}",
        )
        self._max_buffer = max_buffer
        self._state = ShardState.IDLE
        self._conn: GatewayConnection | None = None
        self._reconnector: Reconnector | None = None
        self._closed: Closed | None = None
        self._deadline: tuple[float, str] | None = None
        self._resuming = False
        self._connect_error = ""
        self._mailbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._waker: Waker | None = None
        self._thread: threading.Thread | None = None
        self._helpers: list[threading.Thread] = []
        self._stopping = threading.Event()
        # Set as the I/O thread's very last action.
        self._finished = threading.Event()
        # Set to cut a reconnect backoff short (reconnect() or disconnect()).
        self._kick = threading.Event()
        self._restart: int | None = None
        self._error: BaseException | None = None
        #: Called on the I/O thread as it ends (a cluster collects errors with it).
        self._on_stopped: Callable[[Shard], None] | None = None
        # Accepted by send(), not written yet: carried over to the next connection.
        self._unsent = UnsentCommands()
        #: Called after every state change (a cluster paces its spawns with it).
        self._on_state: Callable[[Shard], None] | None = None

    def __repr__(self) -> str:
        return f"<Shard {self.id}/{self._config.shard[1]} {self._state.value}>"

    # -- observable state ------------------------------------------------------

    @property
    def state(self) -> ShardState:
        """Where the shard is in its life (a :class:`~gateway_proto.driver_support.ShardState`)."""
        return self._state

    @property
    def session(self) -> Session | None:
        """The session to resume with (``None`` before READY or after it was lost)."""
        conn = self._conn
        if conn is not None and conn.session is not None:
            return conn.session
        return self._session

    @property
    def seq(self) -> int | None:
        """The last sequence number received."""
        session = self.session
        return None if session is None else session.sequence

    @property
    def latency(self) -> float | None:
        """Seconds between the last heartbeat and its ACK (``None`` before the first)."""
        conn = self._conn
        return None if conn is None else conn.latency

    @property
    def running(self) -> bool:
        """Whether the shard's I/O thread is still at work."""
        return self._thread is not None and not self._finished.is_set()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the shard for good, if one did."""
        return self._error

    # -- events ------------------------------------------------------------------

    @overload
    def on(self, name: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, name: str, handler: _H) -> _H: ...

    def on(self, name: str, handler: _H | None = None) -> _H | Callable[[_H], _H]:
        """Register a handler for an event name (``"*"``: all); usable as a decorator.

        Each handler runs in its own thread, in event order, with a bounded buffer
        (``max_buffer``; the oldest events are dropped when it falls behind).
        """
        return self._emitter.on(name) if handler is None else self._emitter.on(name, handler)

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

    def events(self, *names: str, max_buffer: int | None = None) -> EventStream:
        """Iterate over events (only ``names`` if given) as they come.

        The iterator has its own buffer (``max_buffer`` events, default the
        shard's); a consumer that falls behind loses the oldest events, counted in
        ``stream.dropped``. Iteration ends when the shard stops.
        """
        return self._emitter.events(*names, max_buffer=max_buffer or self._max_buffer)

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        """Start the shard's I/O thread and return at once (the blocking form is :meth:`connect`).

        Raises:
            RuntimeError: the shard is already running.

        """
        if self.running:
            raise RuntimeError(f"shard {self.id} is already running")
        self._reject_sends(f"shard {self.id} is not connected")  # stale messages of a past run
        self._stopping.clear()
        self._finished.clear()
        self._restart, self._error = None, None
        self._waker = Waker()
        self._emitter.start()
        self._thread = threading.Thread(
            target=self._run_thread, name=f"gateway-shard-{self.id}", daemon=True
        )
        self._thread.start()

    def connect(self) -> None:
        """Connect and stay connected until :meth:`disconnect`; return then.

        Reconnects (resuming when the session allows) with jittered exponential
        backoff. The work happens on the shard's I/O thread; this thread only
        waits, so Ctrl-C here disconnects cleanly (code 1000) and returns.

        Raises:
            FatalCloseError: Discord refused the shard for good (bad token,
                intents, shard, API version); it does not reconnect.
            InvalidTokenError: ``GET /gateway/bot`` refused the token.
            RuntimeError: the shard is already running.

        """
        self.start()
        try:
            self.wait()
        except KeyboardInterrupt:
            self._log.info("interrupted: disconnecting")
        self.disconnect()
        self._raise_error()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the shard stopped (``True``), or ``timeout`` passed (``False``).

        Handlers may still be running the last events (``disconnect`` among them)
        when this returns; :meth:`disconnect` (which :meth:`connect` ends with) also
        waits for them.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        # Wait on an Event, not on Thread.join: a join interrupted by Ctrl-C can
        # leave the Thread object claiming it ended (CPython gh-90882 and kin).
        # Short steps keep Ctrl-C responsive on every platform.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if step <= 0 or self._finished.wait(step):
                break
        if not self._finished.is_set():
            return False
        thread.join()  # the thread is past its last statement: this returns at once
        return True

    def disconnect(self, code: int = 1000) -> None:
        """Close with ``code`` and stop for good; return once stopped.

        ``1000``/``1001`` end the session (the bot goes offline); any other code
        keeps it resumable, and :attr:`session` can be handed to a new shard.
        Thread-safe; from one of this shard's handlers it does not wait for the
        stop (a handler cannot wait for its own thread).
        """
        self._request_stop(code)
        if self._emitter.is_handler_thread():
            return
        self.wait()
        self._emitter.close()

    def _request_stop(self, code: int) -> None:
        """Ask the I/O thread to close with ``code`` and stop; do not wait."""
        self._stopping.set()
        self._kick.set()
        self._post(_Close(code, restart=False))

    def reconnect(self, code: int = RESUMABLE_CLOSE) -> None:
        """Close the current connection with ``code`` and connect again at once.

        With the default (4000) the session is resumed; ``1000`` starts a new one.
        While the shard waits to reconnect, it cuts the wait short.
        """
        if self._conn is None or self._closed is not None:
            self._kick.set()
        else:
            self._post(_Close(code, restart=True))

    def send(self, command: Command, *, timeout: float | None = 10.0) -> None:
        """Queue a command; it goes out once the session is live, within rate limits.

        Thread-safe. Returns once the connection has accepted (queued) it. A
        command still queued when the connection ends is queued again on the
        shard's next connection (resumed or new), in order; if the shard stops
        first, it is reported in the ``disconnect`` event (``Stopped.unsent``)
        and logged as a warning. It is never dropped silently.

        Raises:
            InvalidCommandError: the command is invalid or too large.
            LocalProtocolError: the shard is not connected.

        """
        if self._conn is None or self._closed is not None or not self.running:
            raise LocalProtocolError(f"shard {self.id} is not connected")
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._post(_Send(command, done))
        done.result(timeout)

    def request_guild_members(
        self,
        guild_id: Snowflake,
        *,
        query: str | None = None,
        limit: int = 0,
        presences: bool = False,
        user_ids: list[Snowflake] | None = None,
        timeout: float = 30.0,
    ) -> Iterator[Any]:
        """Ask for a guild's members (op 8) and yield them as the chunks arrive.

        Matches ``GUILD_MEMBERS_CHUNK`` s by a fresh nonce and stops after the last
        chunk. A ``RATE_LIMITED`` answer is honoured: wait ``retry_after``, then ask
        again. Without ``query`` and ``user_ids`` it asks for every member.

        Raises:
            TimeoutError: no answer came for ``timeout`` seconds.

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
        with self.events("GUILD_MEMBERS_CHUNK", "RATE_LIMITED") as stream:
            self.send(command)
            while True:
                event = stream.get(timeout)
                if event is None:
                    raise TimeoutError(f"no member chunk for guild {guild_id} in {timeout} s")
                outcome = collector.feed(event.name, event.data)
                if outcome is None:
                    continue
                if outcome.retry_after is not None:
                    self._log.info(
                        "member request rate limited; retrying in %.2f s", outcome.retry_after
                    )
                    if self._stopping.wait(outcome.retry_after):
                        return
                    self.send(command)
                    continue
                yield from outcome.members
                if outcome.done:
                    return

    def __enter__(self) -> Shard:
        """Start the shard in the background (see :meth:`start`)."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- the I/O thread -----------------------------------------------------------------

    def _run_thread(self) -> None:
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
            if self._waker is not None:
                # Late wake() calls on a closed waker are harmless no-ops.
                self._waker.close()
            if self._on_stopped is not None:
                self._on_stopped(self)
            # The shard's own iterators end with it (a cluster's end on close()).
            self._emitter.end_streams()
            self._finished.set()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        if not self._url_given:
            info = self.gateway.fetch()
            self._config = dataclasses.replace(self._config, url=info.url)
        reconnector = self._reconnector = Reconnector(
            self._config, session=self._session, rng=self._rng, backoff=Backoff(self._rng)
        )
        # One dict, shared: the core counts reconnects by cause, the driver adds its own.
        self.counters.reconnects = reconnector.reconnects
        while True:
            conn = reconnector.new_connection()
            self._requeue(conn)
            closed = self._run_connection(conn, reconnector)
            self._reject_sends(f"shard {self.id} is not connected")
            delay: float | None
            if closed is None:
                delay = reconnector.after_connect_failure(self._connect_error)
                reason = f"connect failed ({self._connect_error})"
            elif self._restart is not None and not self._stopping.is_set():
                # shard.reconnect(): skip the policy, go again now (resuming what the
                # Closed event left, which observe() already took).
                self._restart = None
                self.counters.count_reconnect("requested")
                delay, reason = 0.0, "reconnect requested"
            else:
                delay = reconnector.after_close(closed)
                reason = f"{closed.cause.value} (code {closed.code}): {closed.reason}"
            # What the next connection resumes (None: it identifies).
            self._session = reconnector.session
            self._sync_counters()
            if delay is None or self._stopping.is_set():
                error = None if self._stopping.is_set() else reconnector.fatal_error
                why = "disconnected" if error is None else str(error)
                self._set_state(ShardState.STOPPED, why)
                self._emit(DISCONNECT, self._stop_report(why, error=error, closed=closed))
                if error is not None:
                    self._log.error("stopping: %s", error)
                    raise error
                return
            self._set_state(ShardState.RECONNECTING, f"{reason}; next attempt in {delay:.2f} s")
            self._kick.clear()
            if not self._stopping.is_set():  # disconnect() sets _stopping before _kick
                self._kick.wait(delay)
            if self._stopping.is_set():
                self._set_state(ShardState.STOPPED, "disconnected")
                self._emit(DISCONNECT, self._stop_report("disconnected", closed=closed))
                return

    def _sync_counters(self) -> None:
        reconnector = self._reconnector
        if reconnector is not None:
            self.counters.identifies = reconnector.identifies
            self.counters.resumes = reconnector.resumes

    def _run_connection(self, conn: GatewayConnection, reconnector: Reconnector) -> Closed | None:
        url = conn.url
        self._set_state(ShardState.CONNECTING, f"connecting to {url}")
        assert self._waker is not None
        try:
            sock = open_stream(
                url,
                ssl_context=self._ssl_context,
                waker=self._waker,
                should_stop=self._stopping.is_set,
                timeout=self._timeouts[0],
            )
        except TransportClosedError:
            self._connect_error = "stopped"
            return None
        except OSError as exc:
            self._connect_error = f"{type(exc).__name__}: {exc}"
            self._log.warning("connecting to %s failed: %r", url, exc)
            self._emit(ERROR, exc)
            return None
        self.counters.connections += 1
        self._conn, self._closed = conn, None
        self._resuming = conn.session is not None
        try:
            self._pump(conn, sock, reconnector)
        finally:
            close_stream(sock)
        return self._closed

    def _pump(self, conn: GatewayConnection, sock: socket.socket, reconnector: Reconnector) -> None:
        """Drive one connection until the core reports it closed."""
        assert self._waker is not None
        waker = self._waker
        tls = sock if isinstance(sock, ssl.SSLSocket) else None
        outgoing = bytearray()
        stalled_since: float | None = None
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            selector.register(waker.fileno(), selectors.EVENT_READ)
            now = time.monotonic()
            self._deadline = (now + self._timeouts[1], "WebSocket handshake timed out")
            conn.connect(now)
            while True:
                self._handle_mailbox(conn)
                self._process(conn, reconnector)
                outgoing += conn.data_to_send()
                if self._closed is not None:
                    # Last words (a close frame): best effort, the peer may be gone.
                    send_some(sock, memoryview(outgoing))
                    return
                now = time.monotonic()
                if outgoing:
                    sent = send_some(sock, memoryview(outgoing))
                    if sent is None:
                        conn.receive_data(b"", now)  # the transport broke while writing
                        outgoing.clear()
                        continue
                    del outgoing[:sent]
                    stalled_since = (stalled_since or now) if outgoing else None
                    if stalled_since is not None and now - stalled_since > WRITE_STALL_TIMEOUT:
                        self._log.warning(
                            "writes stalled for %.0f s; dropping the connection",
                            WRITE_STALL_TIMEOUT,
                        )
                        conn.receive_data(b"", now)
                        outgoing.clear()
                        continue
                core_deadline = conn.next_deadline()
                deadline = core_deadline
                if self._deadline is not None:
                    mine = self._deadline[0]
                    deadline = mine if deadline is None else min(deadline, mine)
                timeout = None if deadline is None else max(0.0, deadline - now)
                if tls is not None and tls.pending():
                    # Decrypted bytes already buffered in the TLS layer are invisible
                    # to select: read them before blocking.
                    timeout = 0.0
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if outgoing else 0)
                selector.modify(sock, events)
                ready = selector.select(timeout)
                now = time.monotonic()
                # Woken by the core's own deadline: it is due even if the clock reads
                # a hair earlier than the deadline after rounding.
                core_due = not ready and deadline is not None and deadline == core_deadline
                readable = tls is not None and tls.pending() > 0
                for key, mask in ready:
                    if key.fd == waker.fileno():
                        waker.drain()
                    elif mask & selectors.EVENT_READ:
                        readable = True
                # Judged before reading: the events _read drains must not change it.
                stuck: tuple[float, str] | None = self._deadline
                if stuck is not None and now < stuck[0]:
                    stuck = None  # not due yet
                if readable:
                    self._read(conn, sock, now, reconnector)
                if stuck is not None:
                    # A step only the driver can time is stuck: drop the transport,
                    # which the core handles like any lost connection (resumable).
                    self._log.warning("%s; dropping the connection", stuck[1])
                    self._deadline = None
                    conn.receive_data(b"", now)
                core_deadline = conn.next_deadline()
                if core_deadline is not None and (core_due or now >= core_deadline):
                    conn.handle_timeout(max(core_deadline, now))

    def _read(
        self, conn: GatewayConnection, sock: socket.socket, now: float, reconnector: Reconnector
    ) -> None:
        # Read everything that has arrived (up to a bound, so the mailbox is not
        # starved), TLS's already-decrypted bytes included, before any deadline is
        # handled: a heartbeat ACK queued behind a large READY must count. Each
        # chunk's events are drained before anything else asks the core: the core
        # then decodes one message at a time as they are handed out, instead of
        # all at once (the next receive_data, next_deadline or data_to_send would
        # process the rest first; the arrival time is the same either way).
        for _ in range(_MAX_READS_PER_WAKE):
            data = recv_some(sock)
            if data is None:
                return
            conn.receive_data(data, now)
            self._process(conn, reconnector)
            if not data:
                return

    def _handle_mailbox(self, conn: GatewayConnection) -> None:
        while True:
            try:
                message = self._mailbox.get_nowait()
            except queue.Empty:
                return
            now = time.monotonic()
            if isinstance(message, _Send):
                if self._closed is not None:
                    message.done.set_exception(
                        LocalProtocolError(f"shard {self.id} is not connected")
                    )
                    continue
                try:
                    conn.send(message.command, now)
                except GatewayError as exc:
                    message.done.set_exception(exc)
                else:
                    self._unsent.accepted(message.command)
                    message.done.set_result(None)
            elif isinstance(message, _Close):
                if message.restart:
                    self._restart = message.code
                if self._closed is None:
                    # Already closing: the pending close ends the connection anyway.
                    with contextlib.suppress(GatewayError):
                        conn.close(message.code, now=now)
            elif message.connection is conn and self._closed is None:
                conn.identify(now)
                self._deadline = (now + self._timeouts[2], "READY did not arrive in time")

    def _reject_sends(self, why: str) -> None:
        # Between connections nothing can take a command; say so instead of holding
        # the caller. Other messages (close, permits) are moot once the connection ends.
        while True:
            try:
                message = self._mailbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(message, _Send):
                message.done.set_exception(LocalProtocolError(why))
            elif isinstance(message, _Close) and message.restart and not self._stopping.is_set():
                self._restart = message.code

    def _process(self, conn: GatewayConnection, reconnector: Reconnector) -> None:
        for event in conn.events():
            reconnector.observe(event)
            if isinstance(event, Dispatch):
                self.counters.dispatches += 1
                if event.name in ("READY", "RESUMED"):
                    self._deadline = None
                    resumed = event.name == "RESUMED"
                    self._set_state(ShardState.READY, event.name)
                    self._emit(CONNECT, Connected(resumed, conn.session))
                self._emit(event.name, event.data, event.sequence)
                self._emit(RECEIVE, event)
            elif isinstance(event, PayloadSent):
                self._unsent.observe(event)
                self._sync_counters()  # the core counts IDENTIFY and RESUME payloads
                self._emit(SEND, {"op": event.opcode, "d": event.data})
            elif isinstance(event, IdentifyNeeded):
                self._set_state(ShardState.IDENTIFYING, "waiting for an identify permit")
                self._start_identify(conn)
            elif isinstance(event, Opened):
                self._deadline = None  # HELLO is the core's to time
                self._emit(OPEN, conn.url)
                if self._resuming:
                    self._set_state(ShardState.RESUMING, "resuming the session")
                    self._deadline = (
                        time.monotonic() + self._timeouts[2],
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
            self._post(_IdentifyPermit(conn))

        # The wait happens off the I/O thread, so a long one never delays heartbeats.
        helper = threading.Thread(
            target=wait_for_permit, name=f"gateway-shard-{self.id}-identify", daemon=True
        )
        self._helpers = [h for h in self._helpers if h.is_alive()]
        self._helpers.append(helper)
        helper.start()

    # -- helpers ---------------------------------------------------------------------

    def _post(self, message: _Message) -> None:
        self._mailbox.put(message)
        waker = self._waker
        if waker is not None:
            waker.wake()

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
            refused = self._unsent.requeue(conn, time.monotonic())
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
