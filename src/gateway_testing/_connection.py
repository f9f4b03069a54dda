"""One client's WebSocket connection to the fake: the tasks that serve it, and its faults.

Theory of operation: three tasks share a connection. The *reader* feeds socket bytes
to a server-side ``wsproto`` connection, reassembles messages and hands decoded
payloads to :mod:`gateway_testing._protocol`, which answers by queueing payloads.
The *writer* is the only task that encodes and compresses (so the shared compression
context sees payloads in wire order); it applies the fault knobs (``write_delay``,
``fragment_frames``, ``split_messages``) and records what went out. The *watchdog*
closes with 4009 when heartbeats stop for ``heartbeat_interval + heartbeat_grace``.
``ws.send`` and the socket write happen under one lock, so frames never interleave.
The records, the waits and the write queue the protocol uses are
:class:`~gateway_testing._peer.ConnectionBase`'s; the server that owns the connection
is seen through :class:`~gateway_testing._peer.Owner` only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from gateway_testing import _protocol
from gateway_testing._codec import DecodeFailure, encode
from gateway_testing._compress import Compressor, compress_payload
from gateway_testing._peer import ConnectionBase, Owner
from gateway_testing._records import ClientPayload, ServerPayload
from gateway_testing._session import Dispatch

__all__ = ["FakeConnection"]

logger = logging.getLogger("gateway_testing")

#: Bytes of frames a burst (:meth:`FakeConnection.send_burst`) puts in one socket write.
_BURST_WRITE = 256 * 1024


class FakeConnection(ConnectionBase):
    """A client connection as the fake sees it (create through :class:`FakeGateway` only).

    Records (read them in assertions):
        number: 0-based arrival order. ``path``: the request path (``"/"`` or the resume
        path). ``host``: the upgrade request's ``Host`` header. ``query``: the parsed
        query string (last value wins). ``encoding`` and
        ``compress``: what the query asked for. ``sent``: :class:`ClientPayload` records
        of everything the client sent. ``delivered``: :class:`ServerPayload` records of
        everything the fake wrote. ``session``: the session identified or resumed here.
        ``resumed``: whether that happened by RESUME. ``close_code``/``close_reason``:
        what the client's close frame carried (``None`` if it never sent one).
        ``server_close_code``: the code the fake closed with. ``closed``: set once the
        socket is gone (``closed_at``: when, on ``anyio.current_time()``).
        ``dropped``: the fake dropped it without a close frame.
        ``user_agent``: the upgrade's ``User-Agent`` header (``None`` without one).
        ``hello_at``: when HELLO was queued (``None`` before). ``first_heartbeat_at``:
        when the first heartbeat arrived (``None`` before).

    Fault knobs (set any time): ``acking`` (``False`` = a zombie server that never ACKs),
    ``fragment_frames`` (frames per WebSocket message), ``split_messages`` (zlib-stream
    only: WebSocket messages per payload), ``write_delay`` (seconds before each write).
    """

    def __init__(
        self,
        fake: Owner,
        number: int,
        *,
        stream: anyio.abc.ByteStream,
        ws: WSConnection,
        path: str,
        query: dict[str, str],
    ) -> None:
        super().__init__(fake, number, path=path, query=query)
        self._stream = stream
        self._ws = ws
        self._compressor: Compressor | None = None
        self._write_lock = anyio.Lock()
        self._peer_closed = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._reset_on_drop = False
        self._window = fake.options.command_window_limiter()

    # -- fault injection and scripted sends ----------------------------------------------

    def stop_acking(self) -> None:
        """Stop answering heartbeats (a zombie connection, from the client's view)."""
        self.acking = False

    async def request_heartbeat(self) -> None:
        """Send op 1: the client must heartbeat at once."""
        self.send_payload({"op": 1, "d": None})
        await self.flush()

    async def reconnect(self) -> None:
        """Send op 7 Reconnect (the session stays resumable)."""
        self.send_payload({"op": 7, "d": None})
        await self.flush()

    async def invalid_session(self, *, resumable: bool = False) -> None:
        """Send op 9; unless ``resumable``, the session is invalidated first."""
        session = self.session
        if session is not None:
            session.invalidated = session.invalidated or not resumable
            self.fake.detach(session, self)
        self.send_payload({"op": 9, "d": resumable})
        await self.flush()

    async def close(self, code: int = 4000, reason: str = "") -> None:
        """Close with ``code`` (any code) and wait until the socket is gone."""
        self.close_with(code, reason)
        await self.wait_closed(timeout=self.fake.options.close_timeout + 5.0)

    async def drop(self, *, reset: bool = False) -> None:
        """Drop the TCP connection without a close frame (``reset``: send RST, not FIN)."""
        self.dropped = True
        self._reset_on_drop = reset
        if self._scope is not None:
            self._scope.cancel()
        await self.wait_closed()

    async def dispatch(self, t: str, d: Any) -> Dispatch | None:
        """Send ``(t, d)`` numbered in this connection's session (``None`` without a session)."""
        if self.session is None:
            return None
        dispatch = self.session.number(t, d)
        self.send_dispatch(dispatch)
        await self.flush()
        return dispatch

    async def send_corrupted(self) -> None:
        """Send one message no correct client can decompress or decode."""
        if self._compressor is not None and self._compressor.kind is not None:
            self._enqueue("raw", self._compressor.corrupted())
        elif self.encoding == "etf":
            self._enqueue("raw", b"\x83\xff corrupted")
        else:
            self._enqueue("raw", '{"op": 0, "d": corrupted')
        await self.flush()

    async def send_oversized(self, size: int = 8 * 1024 * 1024) -> Dispatch | None:
        """Dispatch a MESSAGE_CREATE at least ``size`` bytes long (normal numbering)."""
        guild_id = self.session.guild_ids[0] if self.session and self.session.guild_ids else "0"
        data = {
            "id": "1158427385231155300",
            "channel_id": "1158427385231155301",
            "guild_id": guild_id,
            "content": "x" * size,
            "author": {"id": "1158427385231155302", "username": "big", "discriminator": "0"},
            "embeds": [],
            "attachments": [],
            "mentions": [],
        }
        return await self.dispatch("MESSAGE_CREATE", data)

    async def send_raw(self, message: str | bytes) -> None:
        """Send ``message`` as one WebSocket message as-is (no encoding, no compression)."""
        self._enqueue("raw", message)
        await self.flush()

    # -- the tasks -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it ends (the protocol queues the first payloads)."""
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                self._compressor = _protocol.make_compressor(self)
                tg.start_soon(self._writer)
                tg.start_soon(self._watchdog)
                _protocol.open_connection(self, anyio.current_time())
                await self._reader()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown()

    async def _shutdown(self) -> None:
        if self._reset_on_drop:
            with contextlib.suppress(Exception):
                raw = self._stream.extra(SocketAttribute.raw_socket)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(Exception):
            await self._stream.aclose()
        self.closed = True
        self.closed_at = anyio.current_time()
        self._queue.clear()
        # The compression context is the bulk of a connection (~256 KiB for zlib):
        # a closed one keeps only its records, so a long-running fake stays small.
        self._compressor = None
        if self.fake.options.history_limit is not None:
            self.sent.clear()
            self.delivered.clear()
        self.fake.connection_ended(self)
        self._notify()

    async def _reader(self) -> None:
        parts: list[str | bytes] = []
        while True:
            try:
                data = await self._stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, Message):
                    parts.append(event.data)
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            message: str | bytes = "".join(p for p in parts if isinstance(p, str))
                        else:
                            message = b"".join(p for p in parts if isinstance(p, bytes))
                        parts.clear()
                        self._received(message)
                elif isinstance(event, Ping):
                    await self._write(partial(self._ws.send, event.response()))
                elif isinstance(event, CloseConnection):
                    await self._peer_close(event)
                    return

    async def _peer_close(self, event: CloseConnection) -> None:
        self._peer_closed.set()
        if self.server_close_code is None:  # the client started the closing handshake
            self.close_code, self.close_reason = event.code, event.reason
            self._closing = True
            self._queue.clear()
            with contextlib.suppress(Exception):
                await self._write(lambda: self._ws.send(event.response()))

    def _received(self, message: str | bytes) -> None:
        now = anyio.current_time()
        size = len(message.encode() if isinstance(message, str) else message)
        if self._closing:
            return
        if not self._window.hit(now):
            self._record(ClientPayload(now, -1, None, size))
            options = self.fake.options
            logger.warning(
                "connection %d: over %d payloads in %g s (heartbeats count), closing 4008",
                self.number,
                options.command_limit,
                options.command_window,
            )
            self.close_with(4008, "Rate limited.")
            return
        if size > self.fake.options.max_payload_size:
            self._record(ClientPayload(now, -1, None, size))
            self.close_with(4002, "Error while decoding payload: payload too large.")
            return
        try:
            payload = _protocol.decode_client(message, self.encoding)
        except DecodeFailure as exc:
            self._record(ClientPayload(now, -1, None, size))
            self.close_with(4002, f"Error while decoding payload: {exc}")
            return
        op = payload.get("op")
        self._record(ClientPayload(now, op if isinstance(op, int) else -1, payload.get("d"), size))
        _protocol.handle(self, payload, now)

    def _record(self, record: ClientPayload) -> None:
        self.sent.append(record)
        _trim(self.sent, self.fake.options.history_limit)
        self._notify()

    async def _writer(self) -> None:
        while True:
            while not self._queue:
                await self._queued.wait()
                self._queued = anyio.Event()
            kind, item = self._queue[0]
            if kind == "close":
                await self._send_close(*item)
                return
            if self.write_delay > 0:
                await anyio.sleep(self.write_delay)
            try:
                if kind == "payload":
                    await self._send_payload(item)
                elif kind == "burst":
                    await self._send_burst(item)
                else:
                    await self._send_messages([item])
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, LocalProtocolError):
                return
            if self._queue:
                self._queue.popleft()
            self._notify()

    async def _send_payload(self, payload: dict[str, Any]) -> None:
        encoded = encode(payload, self.encoding)
        assert self._compressor is not None
        messages: list[str | bytes]
        if self._compressor.kind is not None:
            compressed = self._compressor.compress(encoded)
            if self._compressor.kind == "zlib-stream" and self.split_messages > 1:
                messages = list(_split(compressed, self.split_messages))
            else:
                messages = [compressed]
        elif self.payload_compression and isinstance(encoded, str):
            messages = [compress_payload(encoded)]
        else:
            messages = [encoded]
        record = ServerPayload(
            anyio.current_time(), payload["op"], payload.get("t"), payload.get("s"), payload["d"]
        )
        await self._send_messages(messages)
        self.delivered.append(record)
        _trim(self.delivered, self.fake.options.history_limit)
        if record.op == 0 and record.t in ("READY", "RESUMED"):
            logger.debug("connection %d: %s (s=%s)", self.number, record.t, record.s)

    async def _send_burst(self, payloads: list[dict[str, Any]]) -> None:
        pending = deque(payloads)
        while pending:
            records: list[ServerPayload] = []
            await self._write(partial(self._burst_frames, pending, records))
            self.delivered.extend(records)

    def _burst_frames(self, pending: deque[dict[str, Any]], records: list[ServerPayload]) -> bytes:
        # Called under the write lock, as ws.send must be: frames never interleave.
        compressor = self._compressor
        assert compressor is not None
        out = bytearray()
        while pending and len(out) < _BURST_WRITE:
            payload = pending.popleft()
            message: str | bytes = encode(payload, self.encoding)
            if compressor.kind is not None:
                message = compressor.compress(message)
            event: Message[Any]
            if isinstance(message, str):
                event = TextMessage(data=message)
            else:
                event = BytesMessage(data=message)
            out += self._ws.send(event)
            now = anyio.current_time()
            records.append(ServerPayload(now, 0, payload["t"], payload["s"], payload["d"]))
        return bytes(out)

    async def _send_messages(self, messages: list[str | bytes]) -> None:
        frames = max(1, self.fragment_frames)
        fragment_size = self.fake.options.fragment_size
        for message in messages:
            if fragment_size is not None and len(message) > fragment_size:
                parts = [
                    message[i : i + fragment_size] for i in range(0, len(message), fragment_size)
                ]
            else:
                parts = list(_split(message, frames))
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                event: Message[Any] = (
                    TextMessage(data=part, message_finished=last)
                    if isinstance(part, str)
                    else BytesMessage(data=part, message_finished=last)
                )
                await self._write(partial(self._ws.send, event))

    async def _write(self, produce: Callable[[], bytes]) -> None:
        async with self._write_lock:
            if self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                raise anyio.ClosedResourceError
            await self._stream.send(produce())

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._write(lambda: self._ws.send(CloseConnection(code=code, reason=reason)))
        # Wait for the client's echo (the closing handshake), then let the socket go.
        with anyio.move_on_after(self.fake.options.close_timeout):
            await self._peer_closed.wait()
        if self._scope is not None:
            self._scope.cancel()

    async def _watchdog(self) -> None:
        options = self.fake.options
        grace = options.grace
        while not self._closing:
            deadline = self.last_heartbeat + options.heartbeat_interval + grace
            now = anyio.current_time()
            first = self.first_heartbeat_deadline()
            if first is not None and now >= first:
                self.first_heartbeat_late()
                return
            if now >= deadline:
                logger.info("connection %d: no heartbeat in time, closing 4009", self.number)
                self.close_with(4009, "Session timed out.")
                return
            await anyio.sleep((deadline if first is None else min(deadline, first)) - now)


def _trim(records: list[Any], limit: int | None) -> None:
    """Keep the last ``limit`` records (``None``: all); trims in batches, so appends stay O(1)."""
    if limit is not None and len(records) > 2 * limit:
        del records[:-limit]


def _split(message: str | bytes, parts: int) -> list[Any]:
    """Split ``message`` into ``parts`` non-empty pieces (fewer if it is too short)."""
    parts = max(1, min(parts, len(message)))
    step, extra = divmod(len(message), parts)
    out = []
    start = 0
    for index in range(parts):
        end = start + step + (1 if index < extra else 0)
        out.append(message[start:end])
        start = end
    return out
