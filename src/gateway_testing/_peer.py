"""A connection as its protocol sees it: records, waits and the write queue, no socket.

:class:`ConnectionBase` is what :mod:`gateway_testing._protocol` reads and writes (the
records, the session, the heartbeat times) and how it answers (it queues payloads or a
close); :class:`~gateway_testing.FakeConnection` adds the socket and the tasks that
serve it. :class:`Owner` is what a connection and its protocol may ask of the server
that owns it, so that imports point one way: server, then connection, then protocol.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from gateway_testing._options import FakeOptions
from gateway_testing._records import ClientPayload, ServerPayload
from gateway_testing._session import SESSION_ENDING_CODES, Dispatch, FakeSession

__all__ = ["ConnectionBase", "Owner"]

logger = logging.getLogger("gateway_testing")

#: Longest close reason a close frame can carry (125 bytes minus the 2-byte code).
_MAX_REASON = 123
#: Queue length below which a streaming producer may add more.
_LOW_WATER = 128


class Owner(Protocol):
    """What a connection and its protocol may use of the server (:class:`FakeGateway`).

    App-wide state lives on the server, as on Discord: the options, the bot's guilds,
    the sessions, the identify buckets and the session-start budget.
    """

    options: FakeOptions
    #: How many upcoming connections get op 7 Reconnect instead of HELLO.
    reconnects_before_hello: int

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` READY carries."""
        ...

    def guilds_for(self, shard_id: int, shard_count: int) -> list[str]:
        """Return the bot's guilds that route to ``[shard_id, shard_count]``."""
        ...

    def identify_allowed(self, shard_id: int, now: float) -> bool:
        """Take the identify bucket ``shard_id % max_concurrency`` if it is free."""
        ...

    def take_session_start(self, now: float) -> bool:
        """Count one session start; ``False`` when none are left."""
        ...

    def full_member_request(self, guild_id: str, now: float) -> float | None:
        """Take the guild's full-member-list window; else return ``retry_after`` seconds."""
        ...

    def new_session(
        self, shard: tuple[int, int], guild_ids: list[str], intents: int, conn: ConnectionBase
    ) -> FakeSession:
        """Create a session for ``conn`` (after a successful Identify)."""
        ...

    def live_session(self, session_id: str, now: float) -> FakeSession | None:
        """Return the session ``session_id`` if it can still be resumed."""
        ...

    def attach(self, session: FakeSession, conn: ConnectionBase) -> None:
        """Make ``conn`` the session's connection (an older one is detached)."""
        ...

    def detach(self, session: FakeSession, conn: ConnectionBase) -> None:
        """Stop sending the session's dispatches to ``conn`` (they are buffered instead)."""
        ...

    def connection_ended(self, conn: ConnectionBase) -> None:
        """Note that ``conn``'s socket is gone (called by the connection)."""
        ...


class ConnectionBase:
    """A client connection's records, waits and write queue (see :class:`FakeConnection`)."""

    def __init__(self, fake: Owner, number: int, *, path: str, query: dict[str, str]) -> None:
        self.fake = fake
        self.number = number
        self.path = path
        self.query = query
        self.host = ""
        self.encoding = query.get("encoding", "json")
        self.compress: str | None = query.get("compress") or None
        self.sent: list[ClientPayload] = []
        self.delivered: list[ServerPayload] = []
        self.session: FakeSession | None = None
        self.resumed = False
        self.identify_rejected = 0
        self.payload_compression = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.server_close_code: int | None = None
        self.server_close_reason: str | None = None
        self.closed = False
        self.closed_at: float | None = None
        self.dropped = False
        self.acking = True
        self.fragment_frames = 1
        self.split_messages = 1
        self.write_delay = 0.0
        self.opened_at = anyio.current_time()
        self.last_heartbeat = self.opened_at
        self.user_agent: str | None = None
        self.hello_at: float | None = None
        self.first_heartbeat_at: float | None = None
        self._queue: deque[tuple[str, Any]] = deque()
        self._queued = anyio.Event()
        self._changed = anyio.Event()
        self._closing = False

    # -- records -------------------------------------------------------------------------

    # One shape for the shortcuts: ``payloads(op)``, ``identifies`` and ``heartbeats``
    # give the ``d`` the client sent (``conn.identifies[0]["intents"]``), as Discord's
    # documentation shows payloads; ``records(op)`` and ``sent`` give the records
    # (``time``, ``size``) for the tests that need them.

    def payloads(self, op: int) -> list[Any]:
        """Return the ``d`` of every payload the client sent with opcode ``op``, in order."""
        return [p.d for p in self.sent if p.op == op]

    def records(self, op: int) -> list[ClientPayload]:
        """Return the records (time, op, d, size) of every payload with opcode ``op``."""
        return [p for p in self.sent if p.op == op]

    @property
    def heartbeats(self) -> list[Any]:
        """The ``d`` (the last sequence, or ``None``) of every heartbeat (op 1) sent."""
        return self.payloads(1)

    @property
    def identifies(self) -> list[Any]:
        """The ``d`` of every Identify (op 2) the client sent: ``identifies[0]["intents"]``."""
        return self.payloads(2)

    def dispatches(self) -> list[ServerPayload]:
        """Return the dispatches (op 0) the fake wrote to this connection."""
        return [p for p in self.delivered if p.op == 0]

    @property
    def identified(self) -> bool:
        """Whether a session is live here (READY or RESUMED was queued)."""
        return self.session is not None

    # -- waiting -------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (checked after every change here).

        Raises:
            TimeoutError: after ``timeout`` seconds.

        """
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_for_op(self, op: int, *, count: int = 1, timeout: float = 5.0) -> ClientPayload:
        """Wait until the client sent ``count`` payloads with opcode ``op``; return the last."""
        await self.wait_until(lambda: len([p for p in self.sent if p.op == op]) >= count, timeout)
        return [p for p in self.sent if p.op == op][count - 1]

    async def wait_identified(self, timeout: float = 5.0) -> FakeSession:
        """Wait until a session is live here (after READY or RESUMED); return it."""
        await self.wait_until(lambda: self.session is not None or self.closed, timeout)
        if self.session is None:
            raise ConnectionError(f"connection {self.number} closed before a session started")
        return self.session

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait until the socket is gone; return the client's close code (``None`` if none)."""
        await self.wait_until(lambda: self.closed, timeout)
        return self.close_code

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far was written (or the connection ended)."""
        await self.wait_until(lambda: not self._queue or self.closed, timeout)

    # -- queueing (used by the protocol and the server) ----------------------------------

    def send_payload(self, payload: dict[str, Any]) -> None:
        """Queue a non-dispatch payload (``s`` and ``t`` are filled in as null)."""
        self._enqueue("payload", {"t": None, "s": None, **payload})

    def send_dispatch(self, dispatch: Dispatch) -> None:
        """Queue a numbered dispatch."""
        self._enqueue("payload", {"t": dispatch.t, "s": dispatch.s, "op": 0, "d": dispatch.d})

    def send_burst(self, dispatches: list[Dispatch]) -> None:
        """Queue numbered dispatches to go out as a burst: many messages per socket write.

        A client then gets hundreds of messages per read, as from a busy gateway;
        the fault knobs do not apply to them (each is one whole frame).
        """
        self._enqueue("burst", [{"t": d.t, "s": d.s, "op": 0, "d": d.d} for d in dispatches])

    def close_with(self, code: int, reason: str = "") -> None:
        """Queue a close frame; nothing queued after it is sent."""
        if self._closing:
            return
        self._closing = True
        self.server_close_code = code
        self.server_close_reason = reason
        if code in SESSION_ENDING_CODES and self.session is not None:
            self.session.invalidated = True
        logger.debug("connection %d: closing with %d %s", self.number, code, reason)
        self._queue.append(("close", (code, reason.encode()[:_MAX_REASON].decode(errors="ignore"))))
        self._queued.set()

    def _enqueue(self, kind: str, item: Any) -> None:
        if self._closing or self.closed:
            return
        self._queue.append((kind, item))
        self._queued.set()

    def has_room(self) -> bool:
        """Tell whether the write queue is short enough to add more (streaming backpressure)."""
        return len(self._queue) <= _LOW_WATER

    @property
    def backlog(self) -> int:
        """How many items wait to be written."""
        return len(self._queue)

    def first_heartbeat_deadline(self) -> float | None:
        """When the first heartbeat is overdue (``first_heartbeat_limit``), while none came."""
        limit = self.fake.options.first_heartbeat_limit
        if limit is None or self.hello_at is None or self.first_heartbeat_at is not None:
            return None
        return self.hello_at + limit

    def first_heartbeat_late(self) -> None:
        """Close as the strict server does when the first heartbeat is late."""
        logger.info("connection %d: first heartbeat late, closing 4000", self.number)
        self.close_with(4000, "Heartbeat expired")
