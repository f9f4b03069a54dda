"""Test helpers: a server-side peer built independently of the client's code path.

``GatewayPeer`` plays Discord: a server-side ``wsproto.WSConnection``, its own
``zlib.compressobj`` (flushed with ``Z_SYNC_FLUSH``) or zstd compressor, and
``json.dumps`` / ``erlpack.pack``. Each method returns the bytes the server would
write; ``sent()`` decodes what the client wrote back into payload dicts. Nothing
here imports the library's wire, codec or compression code.
"""

from __future__ import annotations

import contextlib
import json
import random
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import erlpack
import pytest
import zstandard
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from gateway_proto import (
    CloseCause,
    Closed,
    CloseInitiator,
    ConnectionState,
    Event,
    GatewayConnection,
    GatewayError,
    PayloadSent,
    Session,
    ShardConfig,
    compression,
)

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.s3cr3t-t0ken-value-xxxxxxxxxxxxxxxxxx"
RESUME_URL = "wss://resume.example.test/"
INTERVAL_MS = 40_000  # 40 s: easy arithmetic


@contextlib.contextmanager
def stdlib_zlib() -> Iterator[None]:
    """Inflaters made inside use stdlib zlib, as without the ``speed`` extra (not thread-safe)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compression, "_zlib_ng", None)
        yield


def make_config(**overrides: Any) -> ShardConfig:
    """A config with the test token (override any field).

    The heartbeat grid is off, so the schedule in the tables is the exact one
    (``test_heartbeat.py`` tests the grid).
    """
    options: dict[str, Any] = {
        "token": TOKEN,
        "intents": 513,
        "url": "wss://gateway.example.test/",
        "heartbeat_grid": 0.0,
    }
    options.update(overrides)
    return ShardConfig(**options)


class FixedRandom(random.Random):
    """A ``random.Random`` whose ``random()`` always answers ``value`` (so ``uniform`` too)."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def _text(value: Any) -> Any:
    """Normalise what erlpack.unpack gives (bytes, atoms) to str, recursively."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, erlpack.Atom):
        return str(value)
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


@dataclass
class GatewayPeer:
    """The server side of one gateway connection.

    Args:
        encoding: ``"json"`` or ``"etf"``.
        compression: ``"zlib-stream"``, ``"zstd-stream"``, ``"payload"`` or ``None``.

    """

    encoding: str = "json"
    compression: str | None = "zlib-stream"
    ws: WSConnection = field(default_factory=lambda: WSConnection(ConnectionType.SERVER))
    request: Request | None = None
    frames: list[str] = field(default_factory=list)  # "text"/"binary" per client message
    closes: list[tuple[int | None, str]] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        self._zlib = zlib.compressobj()
        self._zstd = zstandard.ZstdCompressor().compressobj()
        self._partial: list[bytes | str] = []
        self._close_event: CloseConnection | None = None

    # -- what the client wrote -----------------------------------------------------

    def sent(self, data: bytes) -> list[dict[str, Any]]:
        """Feed the client's bytes; return the payloads in them, as dicts."""
        self.ws.receive_data(data)
        out: list[dict[str, Any]] = []
        for event in self.ws.events():
            if isinstance(event, Request):
                self.request = event
            elif isinstance(event, Message):
                self._partial.append(event.data)
                if not event.message_finished:
                    continue
                parts, self._partial = self._partial, []
                if isinstance(event, TextMessage):
                    self.frames.append("text")
                    out.append(json.loads("".join(str(p) for p in parts)))
                else:
                    assert isinstance(event, BytesMessage)
                    self.frames.append("binary")
                    blob = b"".join(bytes(p) for p in parts)  # type: ignore[arg-type]
                    out.append(_text(erlpack.unpack(blob)))
            elif isinstance(event, CloseConnection):
                self.closes.append((event.code, event.reason or ""))
                self._close_event = event
            elif isinstance(event, Pong):
                self.pongs.append(bytes(event.payload))
        return out

    # -- what the server writes ----------------------------------------------------

    def accept(self) -> bytes:
        """Accept the WebSocket upgrade the client asked for (``sent`` must have seen it)."""
        assert self.request is not None, "no handshake request seen yet"
        return self.ws.send(AcceptConnection())

    def reject(self, status_code: int = 503) -> bytes:
        """Refuse the WebSocket upgrade with an HTTP status."""
        return self.ws.send(RejectConnection(status_code=status_code))

    def payload(
        self, op: int, d: Any = None, s: int | None = None, t: str | None = None, *, split: int = 1
    ) -> bytes:
        """Encode, compress and frame one payload (over ``split`` WebSocket messages)."""
        envelope = {"op": op, "d": d, "s": s, "t": t}
        if self.encoding == "etf":
            raw: bytes = erlpack.pack(envelope)
        else:
            raw = json.dumps(envelope, separators=(",", ":")).encode()
        return self.encoded(raw, split=split)

    def encoded(self, raw: bytes, *, split: int = 1) -> bytes:
        """Compress and frame an already encoded payload (JSON text or an ETF term)."""
        if self.compression == "zlib-stream":
            blob = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        elif self.compression == "zstd-stream":
            blob = self._zstd.compress(raw) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        elif self.compression == "payload" and len(raw) > 64:
            blob = zlib.compress(raw)
        elif self.encoding == "json":
            return self.ws.send(TextMessage(data=raw.decode()))
        else:
            blob = raw
        if split <= 1 or self.compression != "zlib-stream":
            return self.ws.send(BytesMessage(data=blob))
        size = max(1, -(-len(blob) // split))
        chunks = [blob[i : i + size] for i in range(0, len(blob), size)]
        return b"".join(self.ws.send(BytesMessage(data=c)) for c in chunks)

    def hello(self, interval_ms: int = INTERVAL_MS) -> bytes:
        return self.payload(10, {"heartbeat_interval": interval_ms, "_trace": ["gw"]})

    def dispatch(self, t: str, d: Any, *, s: int | None = None, split: int = 1) -> bytes:
        if s is None:
            self.seq += 1
            s = self.seq
        return self.payload(0, d, s, t, split=split)

    def ready(self, session_id: str = "sess-1", *, resume_url: str = RESUME_URL) -> bytes:
        return self.dispatch(
            "READY",
            {
                "v": 10,
                "user": {"id": "1", "username": "bot"},
                "guilds": [{"id": "10", "unavailable": True}],
                "session_id": session_id,
                "resume_gateway_url": resume_url,
                "application": {"id": "1", "flags": 0},
            },
        )

    def resumed(self) -> bytes:
        return self.dispatch("RESUMED", None)

    def heartbeat_request(self) -> bytes:
        return self.payload(1, None)

    def ack(self) -> bytes:
        return self.payload(11)

    def reconnect(self) -> bytes:
        return self.payload(7)

    def invalid_session(self, resumable: bool) -> bytes:
        return self.payload(9, resumable)

    def close(self, code: int | None, reason: str = "") -> bytes:
        """Start a close from the server side (``None``: a close frame with no code)."""
        if code is None:
            return b"\x88\x00"  # wsproto can't send it; the server's state doesn't matter then
        return self.ws.send(CloseConnection(code=code, reason=reason or None))

    def reply_close(self) -> bytes:
        """Answer the close frame the client sent."""
        assert self._close_event is not None, "the client sent no close frame"
        return self.ws.send(self._close_event.response())

    def ping(self, payload: bytes = b"hi") -> bytes:
        return self.ws.send(Ping(payload=payload))


# -- driving a connection ---------------------------------------------------------------


def events(conn: GatewayConnection) -> list[Event]:
    """Drain the connection's events."""
    return list(conn.events())


def without_sent(evs: Iterable[Event]) -> list[Event]:
    """The events, minus ``PayloadSent`` (they are asserted on separately)."""
    return [e for e in evs if not isinstance(e, PayloadSent)]


def exchange(conn: GatewayConnection, peer: GatewayPeer, data: bytes, now: float) -> list[Event]:
    """Feed server bytes at ``now``; return the events (the client's bytes go to the peer)."""
    conn.receive_data(data, now)
    return events(conn)


def drive(conn: GatewayConnection, peer: GatewayPeer, *, rounds: int = 10) -> list[dict[str, Any]]:
    """Move the client's pending bytes to the peer until quiet; return the payloads."""
    payloads: list[dict[str, Any]] = []
    for _ in range(rounds):
        data = conn.data_to_send()
        if not data:
            break
        payloads += peer.sent(data)
    return payloads


def open_connection(
    *,
    config: ShardConfig | None = None,
    session: Session | None = None,
    peer: GatewayPeer | None = None,
    now: float = 0.0,
    rng: random.Random | None = None,
) -> tuple[GatewayConnection, GatewayPeer]:
    """A connection with its WebSocket open (its Opened event drained)."""
    config = config or make_config()
    if peer is None:
        peer = GatewayPeer(encoding=config.encoding, compression=config.compression)
    conn = GatewayConnection(config, session=session, rng=rng or FixedRandom(0.5))
    conn.connect(now)
    drive(conn, peer)
    conn.receive_data(peer.accept(), now)
    evs = events(conn)
    assert [type(e).__name__ for e in evs] == ["Opened"], evs
    return conn, peer


def ready_connection(
    *, now: float = 0.0, interval_ms: int = INTERVAL_MS, **kwargs: Any
) -> tuple[GatewayConnection, GatewayPeer]:
    """A connection that got HELLO, identified and got READY, all at ``now``; events drained."""
    conn, peer = open_connection(now=now, **kwargs)
    conn.receive_data(peer.hello(interval_ms), now)
    conn.identify(now)
    conn.receive_data(peer.ready(), now)
    events(conn)
    drive(conn, peer)
    return conn, peer


def feed(conn: GatewayConnection, data: bytes, now: float) -> list[Event]:
    """Feed server bytes at ``now``; return the events they caused."""
    conn.receive_data(data, now)
    return events(conn)


def state_of(conn: GatewayConnection) -> ConnectionState:
    """The connection's state (a call, so mypy doesn't narrow it between steps)."""
    return conn.state


def closed_event(evs: Sequence[object]) -> Closed:
    """The Closed event, which must be the last one."""
    assert evs, "no events"
    last = evs[-1]
    assert isinstance(last, Closed), evs
    return last


def make_closed(
    cause: CloseCause = CloseCause.SERVER_CLOSED,
    *,
    session: Session | None,
    code: int | None = 4000,
    can_reconnect: bool = True,
    retry_after: float = 0.0,
    error: GatewayError | None = None,
) -> Closed:
    """A ``Closed`` event by the peer (reason ``"x"``), resumable when ``session`` is given."""
    fields: dict[str, Any] = {"reason": "x", "initiator": CloseInitiator.PEER, "cause": cause}
    fields.update(code=code, session=session, can_resume=session is not None)
    fields.update(can_reconnect=can_reconnect, retry_after=retry_after, error=error)
    return Closed(**fields)
