"""The fake gateway's server: listener, REST, connections' arrival and dispatch routing.

Theory of operation: :class:`GatewayServer` is an async context manager. Entering it
binds a loopback port (optionally TLS) and serves each TCP connection in its own
task: HTTP requests are answered by :mod:`gateway_testing._http`, WebSocket upgrades
become a :class:`~gateway_testing.FakeConnection`, which the server owns and which
runs the protocol itself. The app-wide state (sessions, guilds, limits) is
:class:`~gateway_testing._app.AppState`'s, which the server is. Clocks are
``anyio.current_time()``. :class:`~gateway_testing.FakeGateway` (in
:mod:`gateway_testing._gateway`) is this server plus :meth:`run_in_thread`.
"""

from __future__ import annotations

import contextlib
import logging
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
from gateway_testing._app import AppState
from gateway_testing._connection import FakeConnection
from gateway_testing._http import header, is_websocket_upgrade, rate_limited, rest_reply
from gateway_testing._options import FakeOptions, FakeOptionsDict, check_option_names
from gateway_testing._records import HttpRequest
from gateway_testing._session import Dispatch, FakeSession

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = ["GatewayServer"]

logger = logging.getLogger("gateway_testing")

#: Connections whose queue is longer than this make :meth:`FakeGateway.stream` wait.
_HIGH_WATER = 256
#: Dispatches per queue item of :meth:`FakeGateway.burst`.
_BURST_ITEM = 1000


class GatewayServer(AppState):
    """The fake gateway as it runs on its event loop (see :class:`FakeGateway`)."""

    def __init__(self, **options: Unpack[FakeOptionsDict]) -> None:
        # Typed (FakeOptionsDict), so mypy catches a misspelled option; at run time the
        # TypeError names it, with the nearest option's name.
        check_option_names(dict(options))
        super().__init__(FakeOptions(**options))
        self.http_requests: list[HttpRequest] = []
        self.rest_rate_limits: list[float] = []
        #: How many upcoming connections get op 7 Reconnect instead of HELLO.
        self.reconnects_before_hello = 0
        self._cursor = 0
        self._port = 0
        self._stack: contextlib.AsyncExitStack | None = None
        self._down = False  # unreachable(): every new connection is reset at once

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
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
