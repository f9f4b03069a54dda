"""Running the fake from synchronous code: an event loop in a background thread.

Theory of operation: :func:`run_in_thread` starts an anyio blocking portal (its own
thread and event loop), enters the :class:`FakeGateway` there, and yields a
:class:`ThreadedFakeGateway`. Every method of the proxies forwards to the loop with
``portal.call`` and blocks until it is done; records (``sent``, ``connections``...)
are read directly, which is safe because the loop only ever appends to them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from gateway_testing._connection import FakeConnection
from gateway_testing._records import ClientPayload, HttpRequest, ServerPayload
from gateway_testing._session import Dispatch, FakeSession

if TYPE_CHECKING:
    from gateway_testing._server import FakeGateway

__all__ = ["ThreadedConnection", "ThreadedFakeGateway", "run_in_thread"]


class ThreadedConnection:
    """A :class:`FakeConnection` seen from another thread: the same API, blocking."""

    def __init__(self, portal: BlockingPortal, conn: FakeConnection) -> None:
        self._portal = portal
        #: The underlying connection (read its records; call its methods only on the loop).
        self.connection = conn

    @property
    def sent(self) -> list[ClientPayload]:
        """What the client sent (see :attr:`FakeConnection.sent`)."""
        return list(self.connection.sent)

    @property
    def delivered(self) -> list[ServerPayload]:
        """What the fake wrote (see :attr:`FakeConnection.delivered`)."""
        return list(self.connection.delivered)

    @property
    def path(self) -> str:
        """The request path the client used."""
        return self.connection.path

    @property
    def query(self) -> dict[str, str]:
        """The parsed query string."""
        return self.connection.query

    @property
    def close_code(self) -> int | None:
        """The code of the client's close frame, if it sent one."""
        return self.connection.close_code

    @property
    def server_close_code(self) -> int | None:
        """The code the fake closed with, if it did."""
        return self.connection.server_close_code

    @property
    def closed(self) -> bool:
        """Whether the socket is gone."""
        return self.connection.closed

    def payloads(self, op: int) -> list[Any]:
        """Return the ``d`` of every payload the client sent with opcode ``op``."""
        return self.connection.payloads(op)

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


class ThreadedFakeGateway:
    """A running :class:`FakeGateway` seen from another thread: blocking methods."""

    def __init__(self, portal: BlockingPortal, fake: FakeGateway) -> None:
        self._portal = portal
        #: The underlying fake (read its records; call its methods only on the loop).
        self.fake = fake

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
def run_in_thread(fake: FakeGateway, backend: str = "asyncio") -> Iterator[ThreadedFakeGateway]:
    """Run ``fake`` on ``backend`` in a background thread; yield a blocking proxy."""
    with (
        start_blocking_portal(backend) as portal,
        portal.wrap_async_context_manager(fake) as running,
    ):
        yield ThreadedFakeGateway(portal, running)
