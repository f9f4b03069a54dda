"""The fake gateway server: listener, REST, sessions, identify limits and dispatch routing.

Theory of operation: :class:`FakeGateway` is an async context manager. Entering it
binds a loopback port (optionally TLS) and serves each TCP connection in its own
task: HTTP requests are answered by :mod:`gateway_testing._http`, WebSocket upgrades
become a :class:`FakeConnection`. App-wide state lives here, as on Discord: the
bot's guilds (``guilds_per_shard`` per recommended shard, routed by ``(id >> 22) %
shards``), the sessions, the identify buckets, the session-start budget and the
full-member-list windows. Clocks are ``anyio.current_time()``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import struct
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from gateway_testing import corpus
from gateway_testing._connection import FakeConnection
from gateway_testing._http import header, is_websocket_upgrade, rate_limited, rest_reply
from gateway_testing._options import FakeOptions, FakeOptionsDict, check_option_names
from gateway_testing._peer import ConnectionBase
from gateway_testing._records import HttpRequest
from gateway_testing._session import Dispatch, FakeSession

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["FakeGateway"]

logger = logging.getLogger("gateway_testing")

#: Connections whose queue is longer than this make :meth:`FakeGateway.stream` wait.
_HIGH_WATER = 256
#: Dispatches per queue item of :meth:`FakeGateway.burst`.
_BURST_ITEM = 1000


class FakeGateway:
    """A faithful fake of Discord's gateway (API v10) and its two REST endpoints.

    Use it as ``async with FakeGateway(token=..., shards=2) as fake:``; connect clients to
    :attr:`gateway_url` (or let them discover it from :attr:`api_base`). Every keyword
    is a field of :class:`~gateway_testing.FakeOptions`; the main ones:

    Args:
        token: the bot token accepted in Identify/Resume and ``Authorization: Bot``.
        shards: the recommended shard count (``GET /gateway/bot``); the bot has
            ``guilds_per_shard`` guilds on each of these shards.
        max_concurrency: identify buckets per ``identify_window`` (5 s on Discord).
        heartbeat_interval: seconds, sent in HELLO as milliseconds.
        heartbeat_grace: seconds past the interval before 4009 (default: one interval).
        members_per_guild: members in each guild (GUILD_CREATE, GUILD_MEMBERS_CHUNK).
        ssl_context: serve ``wss://`` and ``https://`` with this server context.
        host, port: where to listen (port 0 picks a free one).
        identify_window, session_start_total, session_start_reset,
        member_request_window: Discord's limits, shortened by tests.
        event_rate: if set, stream the lively corpus to identified sessions at this
            many dispatches per second (the demo mode).
        seed: the seed of every generated payload.
        zero_sequence_ready: READY, READY_SUPPLEMENTAL (then sent too) and
            GUILD_CREATE carry ``s`` = 0 and stay out of the replay buffer, as a
            server that exists does.
        resume_unsupported: answer every RESUME with op 9 ``false`` (and end the session).
        replay_inclusive: replay from the RESUME's ``seq`` inclusive: the client's
            last dispatch comes a second time.
        sessions_replace_before_ready: send a SESSIONS_REPLACE dispatch before READY.
        resume_url: READY's ``resume_gateway_url`` as given (``{port}`` becomes the
            fake's port) instead of this fake on ``resume_path``: e.g. a ``ws://``
            URL for a TLS fake, or one with ``user:password@``.

    :meth:`unreachable` takes the fake off the network for a while (an outage).

    """

    def __init__(self, **options: Unpack[FakeOptionsDict]) -> None:
        # Typed (FakeOptionsDict), so mypy catches a misspelled option; at run time the
        # TypeError names it, with the nearest option's name.
        check_option_names(dict(options))
        self.options = FakeOptions(**options)
        o = self.options
        self.connections: list[FakeConnection] = []
        self.sessions: dict[str, FakeSession] = {}
        self.http_requests: list[HttpRequest] = []
        #: Set (and logged as an error) when an Identify found no session starts left.
        self.session_starts_exhausted = False
        self.session_start_remaining = (
            o.session_start_total
            if o.session_start_remaining is None
            else o.session_start_remaining
        )
        self.rest_rate_limits: list[float] = []
        #: How many upcoming connections get op 7 Reconnect instead of HELLO.
        self.reconnects_before_hello = 0
        self.guild_ids: list[str] = [
            gid
            for shard in range(o.shards)
            for gid in corpus.guild_ids_for_shard(shard, o.shards, o.guilds_per_shard, seed=o.seed)
        ]
        self._session_reset_at = 0.0
        self._identify_buckets: dict[int, float] = {}
        self._member_requests: dict[str, float] = {}
        self._cursor = 0
        self._sessions_made = 0
        self._port = 0
        self._changed: anyio.Event | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._down = False  # unreachable(): every new connection is reset at once

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeGateway:
        o = self.options
        self._changed = anyio.Event()
        self._session_reset_at = anyio.current_time() + o.session_start_reset
        async with contextlib.AsyncExitStack() as stack:
            tcp = await anyio.create_tcp_listener(local_host=o.host, local_port=o.port)
            await stack.enter_async_context(tcp)
            self._port = tcp.extra(SocketAttribute.local_port)
            listener: anyio.abc.Listener[Any] = tcp
            if o.ssl_context is not None:
                listener = TLSListener(tcp, o.ssl_context, standard_compatible=False)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            tg.start_soon(listener.serve, self._serve_tcp)
            if o.event_rate is not None:
                tg.start_soon(self._lively, o.event_rate)
            self._stack = stack.pop_all()
        logger.info("fake gateway listening on %s (REST %s)", self.gateway_url, self.api_base)
        trap = o.heartbeats_fill_command_limit()
        if trap is not None:
            logger.warning("%s", trap)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is not None:
            # The body's own exception is not handed to the task group: it propagates as
            # it is, not wrapped in an ExceptionGroup, which reads better in test output.
            await stack.aclose()
        return None

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        """Take the fake off the network while the block runs (an outage), then back.

        Every connection is dropped without a close frame, and each new one is
        reset (RST) as soon as it is accepted, before a byte of HTTP, as a load
        balancer without a backend does: a client's attempt fails at once. The
        listening socket itself stays, so no descriptor changes hands. Sessions
        stay resumable (for ``session_ttl``).
        """
        self._down = True
        try:
            for conn in list(self.connections):
                if not conn.closed:
                    await conn.drop()
            logger.info("fake gateway unreachable")
            yield
        finally:
            self._down = False
            logger.info("fake gateway reachable again")

    def run_in_thread(self) -> contextlib.AbstractContextManager[Any]:
        """Run this fake on an event loop in a background thread (for synchronous tests).

        Returns a context manager that yields a :class:`~gateway_testing.ThreadedFakeGateway`,
        whose methods are plain blocking calls.
        """
        from gateway_testing._thread import run_in_thread  # noqa: PLC0415  (cycle)

        return run_in_thread(self)

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        return self._port

    def _origin(self, scheme: str) -> str:
        secure = "s" if self.options.ssl_context is not None else ""
        return f"{scheme}{secure}://{self.options.host}:{self._port}"

    @property
    def gateway_url(self) -> str:
        """The gateway WebSocket URL, ``ws://127.0.0.1:PORT/`` (``wss://`` with TLS)."""
        return self._origin("ws") + "/"

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` READY carries: this fake, on ``resume_path``.

        Or ``resume_url`` if that option is set (``{port}`` replaced by :attr:`port`).
        """
        if self.options.resume_url is not None:
            return self.options.resume_url.replace("{port}", str(self._port))
        return self._origin("ws") + self.options.resume_path

    @property
    def api_base(self) -> str:
        """The REST base, ``http://127.0.0.1:PORT/api/v10`` (``https://`` with TLS)."""
        return self._origin("http") + "/api/v10"

    # -- waiting for connections ---------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (checked on each change to the fake's state)."""
        with anyio.fail_after(timeout):
            while not predicate():
                assert self._changed is not None, "the fake is not running"
                await self._changed.wait()

    async def next_connection(self, timeout: float = 5.0) -> FakeConnection:
        """Return the next connection not yet returned by this method (waiting for it)."""
        await self.wait_until(lambda: len(self.connections) > self._cursor, timeout)
        self._cursor += 1
        return self.connections[self._cursor - 1]

    async def wait_for_connection(self, number: int, timeout: float = 5.0) -> FakeConnection:
        """Return connection ``number`` (0-based arrival order), waiting for it."""
        await self.wait_until(lambda: len(self.connections) > number, timeout)
        return self.connections[number]

    # -- REST fault injection ------------------------------------------------------------

    def rate_limit_rest(self, count: int = 1, retry_after: float = 0.05) -> None:
        """Answer the next ``count`` REST requests with 429 (``retry_after`` seconds)."""
        self.rest_rate_limits.extend([retry_after] * count)

    def reconnect_before_hello(self, count: int = 1) -> None:
        """Send op 7 Reconnect *instead of* HELLO to the next ``count`` connections.

        Discord documents that op 7 may arrive before (or instead of) HELLO; a
        client must then close that connection and open a new one.
        """
        self.reconnects_before_hello += count

    # -- dispatching ---------------------------------------------------------------------

    def _sessions_for(self, d: Any, shard_id: int | None) -> Iterator[FakeSession]:
        now = anyio.current_time()
        guild_id = d.get("guild_id") if isinstance(d, dict) else None
        for session in list(self.sessions.values()):
            if not self._alive(session, now):
                continue
            if shard_id is not None:
                if session.shard[0] == shard_id:
                    yield session
            elif isinstance(guild_id, str):
                if session.owns_guild(guild_id):
                    yield session
            elif session.shard[0] == 0:  # no guild: DMs and the like go to shard 0
                yield session

    async def dispatch(self, t: str, d: Any, *, shard_id: int | None = None) -> list[Dispatch]:
        """Send dispatch ``(t, d)`` to the sessions it routes to; return what was numbered.

        Routing: to sessions of ``shard_id`` if given; else by ``d["guild_id"]``; else to
        shard 0 (like DMs). Sessions without a live connection buffer it for RESUME.
        Returns once the dispatch was written to every live connection.
        """
        out = []
        targets = []
        for session in self._sessions_for(d, shard_id):
            dispatch = session.number(t, d)
            out.append(dispatch)
            conn = self.connection_of(session)
            if conn is not None:
                conn.send_dispatch(dispatch)
                targets.append(conn)
        for conn in targets:
            await conn.flush()
        return out

    async def stream(self, events: Iterable[tuple[str, Any]], rate: float | None = None) -> int:
        """Push ``(name, data)`` dispatches to every identified live connection.

        As fast as the clients read (``rate=None``), or ``rate`` dispatches per second.
        Returns the number of dispatches streamed (per connection).
        """
        start = anyio.current_time()
        count = 0
        for count, (t, d) in enumerate(events, start=1):
            if rate is not None:
                due = start + (count - 1) / rate
                delay = due - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)
            for conn in self.connections:
                if conn.session is not None and not conn.closed:
                    conn.send_dispatch(conn.session.number(t, d))
                    if conn.backlog > _HIGH_WATER:
                        await conn.wait_until(conn.has_room)
        for conn in self.connections:
            if conn.session is not None and not conn.closed:
                await conn.flush(timeout=60.0)
        return count

    async def burst(
        self,
        events: Iterable[tuple[str, Any]],
        *,
        shard_id: int | None = None,
        timeout: float = 60.0,
    ) -> int:
        """Push ``(name, data)`` dispatches to every identified live connection, in bursts.

        Like :meth:`stream` without a rate, but hundreds of messages go out per socket
        write (in queue items of ``_BURST_ITEM`` dispatches, so heartbeat ACKs still
        get through between them): the load of a busy gateway, at a fraction of the
        fake's cost per message. Only to shard ``shard_id``'s connections if given.
        Returns the number of dispatches (per connection).
        """
        events = list(events)
        targets = [
            c
            for c in self.connections
            if c.session is not None
            and not c.closed
            and (shard_id is None or c.session.shard[0] == shard_id)
        ]
        for start in range(0, len(events), _BURST_ITEM):
            chunk = events[start : start + _BURST_ITEM]
            for conn in targets:
                if conn.session is not None and not conn.closed:
                    conn.send_burst([conn.session.number(t, d) for t, d in chunk])
                    if conn.backlog > 4:
                        await conn.wait_until(lambda c=conn: c.backlog <= 2, timeout)  # type: ignore[misc]
        for conn in targets:
            if not conn.closed:
                await conn.flush(timeout=timeout)
        return len(events)

    async def _lively(self, rate: float) -> None:
        """Stream the corpus's everyday events forever (the demo mode), routed by guild."""
        o = self.options
        batch = 0
        start = anyio.current_time()
        sent = 0
        while True:
            events = corpus.everyday_events(
                seed=o.seed + batch,
                count=500,
                guild_ids=self.guild_ids,
                members_per_guild=o.members_per_guild,
            )
            batch += 1
            for t, d in events:
                delay = start + sent / rate - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)
                sent += 1
                with contextlib.suppress(TimeoutError):
                    await self.dispatch(t, d)

    # -- app-wide state used by the protocol ---------------------------------------------

    def guilds_for(self, shard_id: int, shard_count: int) -> list[str]:
        """Return the bot's guilds that route to ``[shard_id, shard_count]``."""
        return [g for g in self.guild_ids if (int(g) >> 22) % shard_count == shard_id]

    def identify_allowed(self, shard_id: int, now: float) -> bool:
        """Take the identify bucket ``shard_id % max_concurrency`` if it is free."""
        key = shard_id % self.options.max_concurrency
        last = self._identify_buckets.get(key)
        if last is not None and now - last < self.options.identify_window:
            logger.info("identify of shard %d over max_concurrency: op 9", shard_id)
            return False
        self._identify_buckets[key] = now
        return True

    def take_session_start(self, now: float) -> bool:
        """Count one session start; ``False`` (and a loud error) when none are left."""
        if now >= self._session_reset_at:
            self._session_reset_at = now + self.options.session_start_reset
            self.session_start_remaining = self.options.session_start_total
        if self.session_start_remaining <= 0:
            self.session_starts_exhausted = True
            logger.error(
                "session start limit exhausted: on Discord every session is terminated, "
                "the bot token is reset and the owner gets an email"
            )
            return False
        self.session_start_remaining -= 1
        return True

    def full_member_request(self, guild_id: str, now: float) -> float | None:
        """Take the guild's full-member-list window; else return ``retry_after`` seconds."""
        last = self._member_requests.get(guild_id)
        window = self.options.member_request_window
        if last is not None and now - last < window:
            return round(window - (now - last), 3)
        self._member_requests[guild_id] = now
        return None

    def new_session(
        self, shard: tuple[int, int], guild_ids: list[str], intents: int, conn: ConnectionBase
    ) -> FakeSession:
        """Create a session for ``conn`` (after a successful Identify)."""
        self._sessions_made += 1
        rng = random.Random(f"session:{self.options.seed}:{self._sessions_made}")
        session = FakeSession(
            session_id=f"{rng.getrandbits(128):032x}",
            shard=shard,
            guild_ids=guild_ids,
            intents=intents,
            buffer_size=self.options.resume_buffer,
        )
        self.sessions[session.session_id] = session
        self.attach(session, conn)
        return session

    def _alive(self, session: FakeSession, now: float) -> bool:
        if session.invalidated:
            return False
        if session.detached_at is not None and now - session.detached_at > self.options.session_ttl:
            session.invalidated = True
            return False
        return True

    def live_session(self, session_id: str, now: float) -> FakeSession | None:
        """Return the session ``session_id`` if it can still be resumed."""
        session = self.sessions.get(session_id)
        return session if session is not None and self._alive(session, now) else None

    def connection_of(self, session: FakeSession) -> FakeConnection | None:
        """Return the live connection the session is attached to, if any."""
        for conn in reversed(self.connections):
            if conn.session is session and not conn.closed:
                return conn
        return None

    def attach(self, session: FakeSession, conn: ConnectionBase) -> None:
        """Make ``conn`` the session's connection (an older one is detached)."""
        old = self.connection_of(session)
        if old is not None and old is not conn:
            old.session = None
        conn.session = session
        session.detached_at = None
        self._notify()

    def detach(self, session: FakeSession, conn: ConnectionBase) -> None:
        """Stop sending the session's dispatches to ``conn`` (they are buffered instead)."""
        if conn.session is session:
            conn.session = None
            session.detached_at = anyio.current_time()

    def connection_ended(self, conn: ConnectionBase) -> None:
        """Note that ``conn``'s socket is gone (called by the connection)."""
        session = conn.session
        if session is not None:
            if conn.close_code in (1000, 1001):
                session.invalidated = True  # a clean client close ends the session
            session.detached_at = anyio.current_time()
        self._forget_dead_sessions()
        self._notify()

    def _forget_dead_sessions(self) -> None:
        # A session that can never be resumed needs no replay buffer; with a
        # history_limit (a long-running fake) it is forgotten altogether.
        limited = self.options.history_limit is not None
        for session_id, session in list(self.sessions.items()):
            if session.invalidated:
                session.buffer.clear()
                if limited:
                    del self.sessions[session_id]

    # -- serving -------------------------------------------------------------------------

    async def _serve_tcp(self, stream: anyio.abc.ByteStream) -> None:
        if self._down:
            with contextlib.suppress(Exception):
                sock = stream.extra(SocketAttribute.raw_socket)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await anyio.aclose_forcefully(stream)
            return
        h = h11.Connection(h11.SERVER)
        raw = bytearray()
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive()
                    raw += data
                    h.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    if is_websocket_upgrade(event):
                        await self._serve_websocket(stream, bytes(raw))
                        return
                    await self._serve_rest(stream, h, event)
                    if h.our_state is h11.MUST_CLOSE:
                        return
                    raw.clear()
                elif isinstance(event, h11.ConnectionClosed):
                    return
                elif h.our_state is h11.DONE and h.their_state is h11.DONE:
                    h.start_next_cycle()
                    raw.clear()
        except (anyio.EndOfStream, anyio.BrokenResourceError, h11.RemoteProtocolError):
            return
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await stream.aclose()

    async def _serve_rest(
        self, stream: anyio.abc.ByteStream, h: h11.Connection, req: h11.Request
    ) -> None:
        # Read the (empty) body to the end of the message before answering.
        while not isinstance(event := h.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                h.receive_data(await stream.receive())
        target = req.target.decode("latin-1")
        path = urllib.parse.urlsplit(target).path
        auth = header(req, b"authorization")
        o = self.options
        if self.rest_rate_limits:
            reply = rate_limited(self.rest_rate_limits.pop(0))
        else:
            gateway = {
                "url": self.gateway_url.rstrip("/"),
                "shards": o.shards,
                "session_start_limit": {
                    "total": o.session_start_total,
                    "remaining": max(0, self.session_start_remaining),
                    "reset_after": max(
                        0, round((self._session_reset_at - anyio.current_time()) * 1000)
                    ),
                    "max_concurrency": o.max_concurrency,
                },
            }
            reply = rest_reply(req.method.decode(), path, auth, token=o.token, gateway=gateway)
        self.http_requests.append(
            HttpRequest(
                anyio.current_time(),
                req.method.decode(),
                path,
                auth,
                reply.status,
                header(req, b"user-agent"),
            )
        )
        self._notify()
        for event in reply.events(keep_alive=True):
            await stream.send(h.send(event) or b"")
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()

    async def _serve_websocket(self, stream: anyio.abc.ByteStream, request_bytes: bytes) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(request_bytes)
        request = next((e for e in ws.events() if isinstance(e, Request)), None)
        if request is None:
            return
        await stream.send(ws.send(AcceptConnection()))
        parts = urllib.parse.urlsplit(request.target)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        agent = next((v for k, v in request.extra_headers if k.lower() == b"user-agent"), None)
        conn = FakeConnection(
            self, len(self.connections), stream=stream, ws=ws, path=parts.path or "/", query=query
        )
        conn.user_agent = None if agent is None else agent.decode("latin-1")
        conn.host = request.host
        self.connections.append(conn)
        self._notify()
        logger.debug("connection %d: %s?%s", conn.number, conn.path, parts.query)
        await conn.run()
