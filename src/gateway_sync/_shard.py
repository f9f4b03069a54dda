"""``Shard``: the public face of one gateway connection and its I/O thread.

Everything here runs on the caller's threads. What the shard does on its I/O thread
(connect, feed the core, reconnect) is :class:`~gateway_sync._io_thread.ShardIO`,
which ``Shard`` extends; the methods here only start and stop that thread, read
the :class:`~gateway_sync._snapshot.ShardSnapshot` it publishes (state, session,
latency, whether a connection is live), and post to its mailbox (``send``,
``reconnect``, ``disconnect``), never touching the socket or the core's
connection themselves. That is what makes them safe from any thread.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from gateway_proto.close_codes import RESUMABLE_CLOSE
from gateway_proto.commands import Command, RequestGuildMembers, Snowflake, UpdatePresence
from gateway_proto.config import Compression, Encoding, ShardConfig
from gateway_proto.driver_support import (
    NOT_GIVEN,
    MemberChunkCollector,
    NotGiven,
    ShardCounters,
    ShardLogger,
    ShardState,
    compression_option,
)
from gateway_proto.errors import GatewayError, LocalProtocolError
from gateway_proto.session import Session

from ._events import DEFAULT_MAX_BUFFER, Emitter, Handler
from ._gateway import Gateway
from ._inline import in_inline_handler, refuse_to_wait
from ._io_thread import ShardIO
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter
from ._mailbox import CloseRequest, SendRequest
from ._transport import Waker
from ._typed import TypedEvents

__all__ = ["Shard"]


class Shard(TypedEvents["Shard"], ShardIO):
    """One shard: connects, heartbeats, resumes and reconnects until told to stop.

    Args:
        token_or_gateway: a bot token, or a :class:`Gateway` (whose ``fetch`` gives
            the URL; a token gets ``Gateway.for_token(token)``).
        shard_id: this shard's id.
        shard_count: the total number of shards.
        intents: the intents bitfield.
        encoding: ``"json"`` or ``"etf"``.
        compression: ``"zlib-stream"``, ``"zstd-stream"``, ``"payload"`` or ``None``
            (``"none"`` too). ``compress=``, the old name, still works and warns.
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
        user_agent: the ``User-Agent`` of this shard's WebSocket upgrades and of its
            ``GET /gateway/bot`` (default: the gateway's :attr:`~Gateway.user_agent`).
        inline_handlers: call handlers on the shard's I/O thread, as each batch is
            decoded, instead of each on its own thread: the fastest delivery, for
            quick handlers only (while one runs the shard reads nothing and sends
            no heartbeat). From one, :meth:`send` does not wait for other shards,
            and what must wait (:meth:`send_and_wait`, :meth:`update_presence`,
            :meth:`request_guild_members`) raises ``LocalProtocolError``.
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
        compression: Compression = "zlib-stream",
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
        user_agent: str | None = None,
        inline_handlers: bool = False,
        compress: Compression | NotGiven = NOT_GIVEN,
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
            compression=compression_option(compression, compress),
            presence=presence,
            large_threshold=large_threshold,
            user_agent=user_agent or gateway.user_agent,
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
        self._refused_lock = threading.Lock()  # commands_refused is counted on callers' threads
        self._emitter = Emitter(
            self._log,
            max_pending=max_buffer,
            on_drop=self._count_drop,
            thread_prefix=f"gateway-shard-{shard_id}",
            inline=inline_handlers,
        )
        self._max_buffer = max_buffer
        self._start_lock = threading.Lock()
        # disconnect() came before the first start(): that run stops at once.
        self._stop_first = False
        super().__init__()

    def __repr__(self) -> str:
        return f"<Shard {self.id}/{self._config.shard[1]} {self._snapshot.state.value}>"

    # -- observable state ------------------------------------------------------
    # Read from the snapshot the I/O thread publishes after each batch of events
    # and on every state change: safe from any thread, at most a batch old.

    @property
    def state(self) -> ShardState:
        """Where the shard is in its life (a :class:`~gateway_proto.driver_support.ShardState`)."""
        return self._snapshot.state

    @property
    def session(self) -> Session | None:
        """The session to resume with (``None`` before READY or after it was lost)."""
        return self._snapshot.session

    @property
    def seq(self) -> int | None:
        """The last sequence number received."""
        session = self._snapshot.session
        return None if session is None else session.sequence

    @property
    def latency(self) -> float | None:
        """Seconds between the last heartbeat and its ACK (``None`` before the first)."""
        return self._snapshot.latency

    @property
    def running(self) -> bool:
        """Whether the shard's I/O thread is still at work."""
        return self._thread is not None and not self._finished.is_set()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the shard for good, if one did."""
        return self._error

    # -- events ------------------------------------------------------------------

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        """Start the shard's I/O thread and return at once (the blocking form is :meth:`connect`).

        Raises:
            RuntimeError: the shard is already running.

        """
        with self._start_lock:  # two threads must not both find it stopped and start it
            if self.running:
                raise RuntimeError(f"shard {self.id} is already running")
            # No I/O thread runs: this thread may set up the next run's state.
            self._reject_sends(f"shard {self.id} is not connected")  # a past run's messages
            if self._stop_first:  # disconnect() came first: the run stops before connecting
                self._stop_first = False
                self._stopping.set()
            else:
                self._stopping.clear()
            self._finished.clear()
            self._restart, self._error = None, None
            self._mailbox.waker = Waker()
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
        stop (a handler cannot wait for its own thread). On a shard that has not
        started yet it is remembered: the next :meth:`start` / :meth:`connect`
        stops at once, without connecting. On a stopped shard it does nothing
        (a later start runs as usual) but wait for its handlers.
        """
        self._request_stop(code)
        if self._emitter.is_handler_thread():
            return
        self.wait()
        self._emitter.close()

    def _request_stop(self, code: int) -> None:
        """Ask the I/O thread to close with ``code`` and stop; do not wait."""
        # Under start()'s lock: a start() halfway through on another thread would
        # otherwise miss the stop, or keep it for the run after.
        with self._start_lock:
            if not self.running:
                # Before the first start it is remembered (the next run stops at once);
                # once stopped, a later start() runs as usual.
                if self._thread is None:
                    self._stop_first = True
                return
        self._stopping.set()
        self._kick.set()
        self._mailbox.post(CloseRequest(code, restart=False))

    def reconnect(self, code: int = RESUMABLE_CLOSE) -> None:
        """Close the current connection with ``code`` and connect again at once.

        With the default (4000) the session is resumed; ``1000`` starts a new one.
        While the shard waits to reconnect, it cuts the wait short.
        """
        if not self._snapshot.connected:
            self._kick.set()
        else:
            self._mailbox.post(CloseRequest(code, restart=True))

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
        self._post_send(command, None, timeout)

    def send_and_wait(self, command: Command, *, timeout: float | None = 10.0) -> None:
        """Send ``command`` and return once the connection has written it.

        Thread-safe. :meth:`send` returns as soon as the command is queued; this
        waits for the session to be live (READY/RESUMED, across a reconnect too)
        and for the rate limiter (120 per 60 s), until the connection wrote the
        command into its output, which the I/O thread hands to the socket at once.

        Raises:
            InvalidCommandError: the command is invalid or too large.
            LocalProtocolError: the shard is not connected.
            CommandNotSentError: the shard stopped before writing it (the command
                is then also in ``Stopped.unsent``).
            TimeoutError: not written within ``timeout`` seconds (it stays queued).

        """
        refuse_to_wait("send_and_wait()")
        written: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._post_send(command, written, timeout)
        try:
            written.result(timeout)
        except concurrent.futures.TimeoutError:
            # Before 3.11 a distinct class: raise the builtin one everywhere.
            raise TimeoutError(f"{type(command).__name__} not sent in {timeout} s") from None

    def update_presence(self, presence: UpdatePresence, *, timeout: float | None = 10.0) -> None:
        """Set this shard's presence (op 3); return once written (see :meth:`send_and_wait`)."""
        self.send_and_wait(presence, timeout=timeout)

    def _post_send(
        self,
        command: Command,
        written: concurrent.futures.Future[None] | None,
        timeout: float | None,
    ) -> None:
        try:
            if not self._snapshot.connected or not self.running:
                raise LocalProtocolError(f"shard {self.id} is not connected")
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            request = SendRequest(command, done, written)
            if not in_inline_handler():
                self._mailbox.post(request)
            elif threading.current_thread() is self._thread and self._conn is not None:
                # This shard's own inline handler, on its I/O thread: the owner of
                # the connection takes the command now (the mailbox would wait for it).
                self._take_send(request, self._conn, time.monotonic())
            else:
                # Another shard's I/O thread may be waiting for this one: never wait
                # for it from there. A refusal is logged instead of raised.
                done.add_done_callback(self._log_refusal)
                self._mailbox.post(request)
                return
            done.result(timeout)
        except GatewayError:
            # Counted on the caller's thread (refusals are rare): callers on
            # several threads must not lose an increment to each other.
            with self._refused_lock:
                self.counters.commands_refused += 1
            raise

    def _log_refusal(self, done: concurrent.futures.Future[None]) -> None:
        error = done.exception()
        if error is not None:
            with self._refused_lock:
                self.counters.commands_refused += 1
            self._log.warning(
                "shard %d refused a command sent by an inline handler: %s", self.id, error
            )

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
        refuse_to_wait("request_guild_members()")
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
                    # Clamped: Event.wait overflows beyond TIMEOUT_MAX (~292 years).
                    if self._stopping.wait(min(outcome.retry_after, threading.TIMEOUT_MAX)):
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

    # -- helpers ---------------------------------------------------------------------

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _count_drop(self, count: int) -> None:
        self.counters.dropped_events += count
