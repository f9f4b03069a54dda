"""Running the fake from synchronous code: an event loop in a background thread.

Theory of operation: :func:`run_in_thread` starts an anyio blocking portal (its own
thread and event loop), enters the :class:`FakeGateway` there, and yields a
:class:`ThreadedFakeGateway`. Every method of the proxies forwards to the loop with
``portal.call`` and blocks until it is done; records (``sent``, ``connections``...)
are read directly, which is safe because the loop only ever appends to them or
assigns them whole. The proxies have every public name of the loop-side objects
except the fake's own plumbing (``tests/testing/test_thread_api.py`` keeps it so).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, Generic, TypeVar, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from gateway_testing._connection import FakeConnection
from gateway_testing._options import FakeOptions
from gateway_testing._records import ClientPayload, HttpRequest, ServerPayload
from gateway_testing._server import GatewayServer
from gateway_testing._session import Dispatch, FakeSession

__all__ = ["ThreadedConnection", "ThreadedFakeGateway", "run_in_thread"]

T = TypeVar("T")


class _Record(Generic[T]):
    """A record of the loop-side object, read from the calling thread.

    Safe without the portal: the loop only appends to a record or assigns it whole.
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Record[T]: ...
    @overload
    def __get__(self, obj: _Proxy, owner: type | None = None) -> T: ...
    def __get__(self, obj: _Proxy | None, owner: type | None = None) -> _Record[T] | T:
        if obj is None:
            return self
        value: T = getattr(obj._target, self.name)
        return value


class _Knob(_Record[T]):
    """A fault knob: read directly, set on the loop (through the portal)."""

    def __set__(self, obj: _Proxy, value: T) -> None:
        obj._portal.call(_assign, obj._target, self.name, value)


async def _assign(target: object, name: str, value: object) -> None:
    setattr(target, name, value)


class _Proxy:
    """What the two proxies share: the portal and the loop-side object."""

    def __init__(self, portal: BlockingPortal, target: object) -> None:
        self._portal = portal
        self._target = target


class ThreadedConnection(_Proxy):
    """A :class:`FakeConnection` seen from another thread: the same API, blocking."""

    def __init__(self, portal: BlockingPortal, conn: FakeConnection) -> None:
        super().__init__(portal, conn)
        #: The underlying connection (read its records; call its methods only on the loop).
        self.connection = conn

    number = _Record[int]("0-based arrival order.")
    path = _Record[str]("The request path the client used.")
    query = _Record[dict[str, str]]("The parsed query string (last value wins).")
    host = _Record[str]("The upgrade request's ``Host`` header.")
    encoding = _Record[str]("The encoding the query asked for.")
    compress = _Record[str | None]("The transport compression the query asked for.")
    session = _Record[FakeSession | None]("The session identified or resumed here.")
    resumed = _Record[bool]("Whether the session was resumed here (RESUME).")
    identify_rejected = _Record[int]("Identifies answered with op 9 (identify limits).")
    payload_compression = _Record[bool]("Whether Identify asked for payload compression.")
    close_code = _Record[int | None]("The code of the client's close frame, if it sent one.")
    close_reason = _Record[str | None]("The reason of the client's close frame.")
    server_close_code = _Record[int | None]("The code the fake closed with, if it did.")
    server_close_reason = _Record[str | None]("The reason the fake closed with.")
    closed = _Record[bool]("Whether the socket is gone.")
    closed_at = _Record[float | None]("When the socket went away (the loop's clock).")
    dropped = _Record[bool]("Whether the fake dropped it without a close frame.")
    opened_at = _Record[float]("When the connection arrived (the loop's clock).")
    last_heartbeat = _Record[float]("When the last heartbeat arrived (the loop's clock).")
    user_agent = _Record[str | None]("The upgrade's ``User-Agent`` header.")
    hello_at = _Record[float | None]("When HELLO was queued.")
    first_heartbeat_at = _Record[float | None]("When the first heartbeat arrived.")
    acking = _Knob[bool]("Fault knob: ``False`` stops answering heartbeats.")
    fragment_frames = _Knob[int]("Fault knob: frames per WebSocket message.")
    split_messages = _Knob[int]("Fault knob: zlib-stream WebSocket messages per payload.")
    write_delay = _Knob[float]("Fault knob: seconds before each write.")

    @property
    def sent(self) -> list[ClientPayload]:
        """What the client sent (see :attr:`FakeConnection.sent`)."""
        return list(self.connection.sent)

    @property
    def delivered(self) -> list[ServerPayload]:
        """What the fake wrote (see :attr:`FakeConnection.delivered`)."""
        return list(self.connection.delivered)

    @property
    def heartbeats(self) -> list[Any]:
        """The ``d`` of every heartbeat (op 1) the client sent (as ``payloads(1)``)."""
        return self.connection.heartbeats

    @property
    def identifies(self) -> list[Any]:
        """The ``d`` of every Identify (op 2) the client sent (as ``payloads(2)``)."""
        return self.connection.identifies

    @property
    def identified(self) -> bool:
        """Whether a session is live here (READY or RESUMED was queued)."""
        return self.connection.identified

    @property
    def backlog(self) -> int:
        """Payloads queued for this connection and not yet written."""
        return self.connection.backlog

    def records(self, op: int) -> list[ClientPayload]:
        """Return the records of every payload the client sent with opcode ``op``."""
        return self.connection.records(op)

    def dispatches(self) -> list[ServerPayload]:
        """Return the dispatches (op 0) the fake wrote to this connection."""
        return self.connection.dispatches()

    def payloads(self, op: int) -> list[Any]:
        """Return the ``d`` of every payload the client sent with opcode ``op``."""
        return self.connection.payloads(op)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true (it runs on the fake's loop, after each change).

        Raises:
            TimeoutError: after ``timeout`` seconds.

        """
        self._portal.call(self.connection.wait_until, predicate, timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything queued so far was written (or the connection ended)."""
        self._portal.call(self.connection.flush, timeout)

    def wait_for_op(self, op: int, *, count: int = 1, timeout: float = 5.0) -> ClientPayload:
        """Block until the client sent ``count`` payloads with opcode ``op``."""
        return self._portal.call(
            partial(self.connection.wait_for_op, op, count=count, timeout=timeout)
        )

    def wait_identified(self, timeout: float = 5.0) -> FakeSession:
        """Block until a session is live on this connection."""
        return self._portal.call(self.connection.wait_identified, timeout)

    def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Block until the socket is gone; return the client's close code."""
        return self._portal.call(self.connection.wait_closed, timeout)

    def stop_acking(self) -> None:
        """Stop answering heartbeats."""
        self._portal.call(self._stop_acking)

    async def _stop_acking(self) -> None:
        self.connection.stop_acking()

    def set_faults(self, **knobs: Any) -> None:
        """Set fault knobs: ``fragment_frames``, ``split_messages``, ``write_delay``, ``acking``."""
        self._portal.call(self._set, knobs)

    async def _set(self, knobs: dict[str, Any]) -> None:
        for name, value in knobs.items():
            if name not in ("fragment_frames", "split_messages", "write_delay", "acking"):
                raise AttributeError(f"not a fault knob: {name}")
            setattr(self.connection, name, value)

    def request_heartbeat(self) -> None:
        """Send op 1."""
        self._portal.call(self.connection.request_heartbeat)

    def reconnect(self) -> None:
        """Send op 7."""
        self._portal.call(self.connection.reconnect)

    def invalid_session(self, *, resumable: bool = False) -> None:
        """Send op 9 (see :meth:`FakeConnection.invalid_session`)."""
        self._portal.call(lambda: self.connection.invalid_session(resumable=resumable))

    def close(self, code: int = 4000, reason: str = "") -> None:
        """Close with ``code`` and wait until the socket is gone."""
        self._portal.call(self.connection.close, code, reason)

    def drop(self, *, reset: bool = False) -> None:
        """Drop the TCP connection without a close frame."""
        self._portal.call(lambda: self.connection.drop(reset=reset))

    def send_raw(self, message: str | bytes) -> None:
        """Send ``message`` as one WebSocket message as-is (no encoding, no compression)."""
        self._portal.call(self.connection.send_raw, message)

    def send_corrupted(self) -> None:
        """Send a message no client can decompress or decode."""
        self._portal.call(self.connection.send_corrupted)

    def send_oversized(self, size: int = 8 * 1024 * 1024) -> Dispatch | None:
        """Dispatch a MESSAGE_CREATE at least ``size`` bytes long."""
        return self._portal.call(self.connection.send_oversized, size)

    def dispatch(self, t: str, d: Any) -> Dispatch | None:
        """Send ``(t, d)`` numbered in this connection's session."""
        result: Dispatch | None = self._portal.call(self.connection.dispatch, t, d)
        return result


class ThreadedFakeGateway(_Proxy):
    """A running :class:`FakeGateway` seen from another thread: blocking methods."""

    def __init__(self, portal: BlockingPortal, fake: GatewayServer) -> None:
        super().__init__(portal, fake)
        #: The underlying fake (read its records; call its methods only on the loop).
        self.fake = fake

    options = _Record[FakeOptions]("The fake's options (see :class:`FakeOptions`).")
    port = _Record[int]("The TCP port the fake listens on.")
    sessions = _Record[dict[str, FakeSession]]("Every session so far, by session id.")
    guild_ids = _Record[list[str]]("The bot's guilds, on every recommended shard.")
    session_start_remaining = _Record[int]("Identifies left in the session-start budget.")
    rest_rate_limits = _Record[list[float]]("``retry_after`` of each pending REST 429.")
    reconnects_before_hello = _Record[int]("Connections still to get op 7 instead of HELLO.")

    @property
    def gateway_url(self) -> str:
        """See :attr:`FakeGateway.gateway_url`."""
        return self.fake.gateway_url

    @property
    def api_base(self) -> str:
        """See :attr:`FakeGateway.api_base`."""
        return self.fake.api_base

    @property
    def resume_gateway_url(self) -> str:
        """See :attr:`FakeGateway.resume_gateway_url`."""
        return self.fake.resume_gateway_url

    @property
    def connections(self) -> list[ThreadedConnection]:
        """Every connection so far, in order of arrival."""
        return [ThreadedConnection(self._portal, c) for c in list(self.fake.connections)]

    @property
    def http_requests(self) -> list[HttpRequest]:
        """The REST requests answered so far."""
        return list(self.fake.http_requests)

    @property
    def session_starts_exhausted(self) -> bool:
        """Whether an Identify found the session start budget empty."""
        return self.fake.session_starts_exhausted

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true (it runs on the fake's loop, after each change)."""
        self._portal.call(self.fake.wait_until, predicate, timeout)

    def wait_for_connection(self, number: int, timeout: float = 5.0) -> ThreadedConnection:
        """Block until connection ``number`` (0-based arrival order) arrived; return it."""
        conn = self._portal.call(self.fake.wait_for_connection, number, timeout)
        return ThreadedConnection(self._portal, conn)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """Take the fake off the network while the block runs (:meth:`FakeGateway.unreachable`)."""
        with self._portal.wrap_async_context_manager(self.fake.unreachable()):
            yield

    def next_connection(self, timeout: float = 5.0) -> ThreadedConnection:
        """Block until the next connection arrives; return it."""
        conn = self._portal.call(self.fake.next_connection, timeout)
        return ThreadedConnection(self._portal, conn)

    def dispatch(self, t: str, d: Any, *, shard_id: int | None = None) -> list[Dispatch]:
        """See :meth:`FakeGateway.dispatch`."""
        return self._portal.call(lambda: self.fake.dispatch(t, d, shard_id=shard_id))

    def stream(self, events: Iterable[tuple[str, Any]], rate: float | None = None) -> int:
        """See :meth:`FakeGateway.stream`."""
        count: int = self._portal.call(self.fake.stream, list(events), rate)
        return count

    def burst(
        self,
        events: Iterable[tuple[str, Any]],
        *,
        shard_id: int | None = None,
        timeout: float = 60.0,
    ) -> int:
        """See :meth:`FakeGateway.burst`."""
        items = list(events)
        count: int = self._portal.call(
            lambda: self.fake.burst(items, shard_id=shard_id, timeout=timeout)
        )
        return count

    def rate_limit_rest(self, count: int = 1, retry_after: float = 0.05) -> None:
        """See :meth:`FakeGateway.rate_limit_rest`."""
        self._portal.call(self._rate_limit, count, retry_after)

    async def _rate_limit(self, count: int, retry_after: float) -> None:
        self.fake.rate_limit_rest(count, retry_after)

    def reconnect_before_hello(self, count: int = 1) -> None:
        """See :meth:`FakeGateway.reconnect_before_hello`."""
        self._portal.call(self._reconnect_before_hello, count)

    async def _reconnect_before_hello(self, count: int) -> None:
        self.fake.reconnect_before_hello(count)


@contextlib.contextmanager
def run_in_thread(fake: GatewayServer, backend: str = "asyncio") -> Iterator[ThreadedFakeGateway]:
    """Run ``fake`` on ``backend`` in a background thread; yield a blocking proxy."""
    with (
        start_blocking_portal(backend) as portal,
        portal.wrap_async_context_manager(fake) as running,
    ):
        yield ThreadedFakeGateway(portal, running)
