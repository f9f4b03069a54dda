"""``Shard``: one gateway connection kept alive on anyio (asyncio or trio).

This module is the shard's public face: its options, its observable state, its
events and the calls that start, stop and talk to it. The shard owns no protocol
logic and does no I/O itself; its :class:`~gateway_anyio._runner.ShardRunner`
connects, reads, times and reconnects, and reports back through the
:class:`~gateway_anyio._shard_hooks.ShardHooks` the shard hands it, whose state changes
and events are what applications see. This module imports the runner; the runner
never imports it.
"""

from __future__ import annotations

import logging
import random
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from gateway_proto.close_codes import RESUMABLE_CLOSE
from gateway_proto.commands import Command, RequestGuildMembers, Snowflake, UpdatePresence
from gateway_proto.config import Compression, Encoding, ShardConfig
from gateway_proto.driver_support import (
    DISCONNECT,
    NOT_GIVEN,
    MemberChunkCollector,
    NotGiven,
    ShardCounters,
    ShardLogger,
    ShardReporting,
    ShardState,
    compression_option,
)
from gateway_proto.errors import CommandNotSentError
from gateway_proto.events import Closed
from gateway_proto.session import Session

from ._events import DEFAULT_MAX_BUFFER, Emitter, Handler
from ._gateway import Gateway
from ._limiter import IdentifyLimiter, InProcessIdentifyLimiter
from ._runner import ShardRunner
from ._shard_hooks import ShardHooks
from ._typed import TypedEvents

__all__ = ["Shard"]


class Shard(TypedEvents["Shard"], ShardReporting):
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
        config_options: more :class:`~gateway_proto.config.ShardConfig` fields
            (``hello_timeout``, ``close_timeout``, ``max_message_size``, ...).

    """

    _emitter: Emitter

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
        config = ShardConfig(
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
        self._limiter = identify_limiter or InProcessIdentifyLimiter()
        self._log = ShardLogger(logging.getLogger(f"gateway_anyio.shard.{shard_id}"), gateway.token)
        self.counters = ShardCounters()
        self._emitter = Emitter(self._log, max_pending=max_buffer, on_drop=self._count_drop)
        self._max_buffer = max_buffer
        self._state = ShardState.IDLE
        #: When the current state began (``anyio.current_time()``; ``None`` while IDLE).
        self.state_since: float | None = None
        #: How the last connection that ended closed (``None`` before one did).
        self.last_close: Closed | None = None
        self._running = False
        # disconnect() came before the first connect(): that connect() returns at once.
        self._stop_first = False
        self._run_scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None
        #: Called after every state change (a cluster paces its spawns with it).
        self._on_state: Callable[[Shard], None] | None = None
        hooks = ShardHooks(
            shard=self,
            shard_id=shard_id,
            gateway=gateway,
            log=self._log,
            counters=self.counters,
            emitter=self._emitter,
            emit=self._emit,
            set_state=self._set_state,
            closed=self._record_close,
        )
        self._runner = ShardRunner(
            hooks,
            config,
            url_given=url is not None,
            session=session,
            limiter=self._limiter,
            ssl_context=ssl_context,
            timeouts=(connect_timeout, handshake_timeout, ready_timeout),
            rng=rng or random.Random(),
        )

    def __repr__(self) -> str:
        return f"<Shard {self.id}/{self._runner.config.shard[1]} {self._state.value}>"

    # -- observable state ------------------------------------------------------

    @property
    def state(self) -> ShardState:
        """Where the shard is in its life (a :class:`ShardState`)."""
        return self._state

    @property
    def session(self) -> Session | None:
        """The session to resume with (``None`` before READY or after it was lost)."""
        return self._runner.session

    @property
    def seq(self) -> int | None:
        """The last sequence number received."""
        session = self.session
        return None if session is None else session.sequence

    @property
    def latency(self) -> float | None:
        """Seconds between the last heartbeat and its ACK (``None`` before the first)."""
        return self._runner.latency

    # -- events ------------------------------------------------------------------

    def off(self, name: str, handler: Handler) -> None:
        """Unregister a handler."""
        self._emitter.off(name, handler)

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
        self._running = True
        self._stopped = anyio.Event()
        stop_first, self._stop_first = self._stop_first, False
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._emitter.attach(tg)
                try:
                    with anyio.CancelScope() as self._run_scope:
                        if not stop_first:
                            await self._runner.run()
                    if stop_first or self._run_scope.cancelled_caught:
                        self._set_state(ShardState.STOPPED, "disconnected by the user")
                        self._emit(DISCONNECT, self._runner.stop_report("disconnected by the user"))
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
            self._running = False
            self._runner.finish()
            self._stopped.set()
        if failure is not None:
            raise failure

    def _set_state(self, new: ShardState, reason: str) -> None:
        if new is not self._state:
            self.state_since = anyio.current_time()
        super()._set_state(new, reason)

    def _record_close(self, closed: Closed) -> None:
        self.last_close = closed

    def _stop_on(self, exc: BaseException) -> None:
        if self._state is not ShardState.STOPPED:
            self._set_state(ShardState.STOPPED, f"stopped by {type(exc).__name__}")
            self._emit(DISCONNECT, self._runner.stop_report(str(exc), error=exc))

    async def disconnect(self, code: int = 1000) -> None:
        """Close with ``code`` and stop for good; return once stopped.

        ``1000``/``1001`` end the session (the bot goes offline); any other code
        keeps it resumable, and :attr:`session` can be handed to a new shard.

        On a shard that has not started yet it is remembered: the next
        :meth:`connect` stops at once, without connecting (so ``tg.start_soon(
        shard.connect)`` followed by ``disconnect()`` stops, whichever task runs
        first). On a shard that stopped already it does nothing: a later
        :meth:`connect` runs as usual.
        """
        if not self._running:
            if self._state is ShardState.IDLE:
                self._stop_first = True
            return
        if not self._runner.request_stop(code) and self._run_scope is not None:
            self._run_scope.cancel()
        if self._stopped is not None:
            await self._stopped.wait()

    async def reconnect(self, code: int = RESUMABLE_CLOSE) -> None:
        """Close the current connection with ``code`` and connect again at once.

        With the default (4000) the session is resumed; ``1000`` starts a new one.
        Between connections (connecting, or waiting out a backoff) there is nothing
        to close and the call does nothing: a new connection is already on its way.
        """
        self._runner.request_restart(code)

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
        await self._runner.send(command)

    async def send_and_wait(self, command: Command) -> None:
        """Send ``command`` and return once the connection has written it.

        :meth:`send` returns as soon as the command is queued; this waits for the
        session to be live (READY/RESUMED, across a reconnect too) and for the rate
        limiter (120 per 60 s), until the connection wrote the command into its
        output, which the shard hands to the socket at once, in order. Bound the
        wait with ``anyio.fail_after``; a cancelled wait leaves the command queued.

        Raises:
            InvalidCommandError: the command is invalid or too large.
            LocalProtocolError: the shard is not connected.
            CommandNotSentError: the shard stopped before writing it (the command
                is then also in ``Stopped.unsent``).

        """
        written = anyio.Event()
        outcome: list[bool] = []

        def done(ok: bool) -> None:
            outcome.append(ok)
            written.set()

        await self._runner.send(command, done)
        await written.wait()
        if not outcome[0]:
            raise CommandNotSentError.stopped_first(self.id, command)

    async def update_presence(self, presence: UpdatePresence) -> None:
        """Set this shard's presence (op 3); return once written (see :meth:`send_and_wait`)."""
        await self.send_and_wait(presence)

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
        again; if the shard stops meanwhile, the iteration ends. Without ``query``
        and ``user_ids`` it asks for every member.
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
                    if await self._stops_within(outcome.retry_after):
                        return  # the shard stopped: nothing more will come
                    await self.send(command)
                    continue
                for member in outcome.members:
                    yield member
                if outcome.done:
                    return

    async def _stops_within(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if the shard stops first; return whether it stopped."""
        stopped = self._stopped
        if stopped is None:
            return True
        with anyio.move_on_after(seconds):
            await stopped.wait()
        return stopped.is_set()

    # -- reporting -------------------------------------------------------------------

    def _count_drop(self, count: int) -> None:
        self.counters.dropped_events += count
