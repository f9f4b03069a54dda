"""Recorded stream and replay server for ``bench_peers.py`` and ``bench_anyio.py``.

Four things, all deterministic:

* :func:`load_corpus`: the recorded session as ``[(name, data), ...]``, READY
  first, from ``gateway_testing.corpus.recorded_session`` (READY, large
  GUILD_CREATEs, then everyday events: messages with embeds, presences, typing,
  reactions, ...).
* :func:`encode_stream`: the stream as Discord sends it with ``compress=zlib-stream``
  and ``encoding=json``: HELLO then READY then the dispatches, compact JSON, one
  zlib deflate context for the whole connection, each message ended by a
  ``Z_SYNC_FLUSH`` (``00 00 ff ff``), each message one unmasked binary WebSocket
  frame. Every client reads these exact bytes. ``compression="zstd-stream"``: one
  zstd compressor instead, one flushed block per message; the frame is ended with
  the last message, so later ACKs go out as frames of their own (PROTOCOL.md 9.3).
* ``python benchmarks/_replay.py serve DATAFILE [COMPRESSION]``: a replay gateway in its own
  process (so its cost never lands on the client's core). Per connection: WebSocket
  handshake (wsproto, server side), HELLO, wait for IDENTIFY (op 2), then the whole
  pre-built READY + dispatch byte string in one ``sendall``. Heartbeats that come
  after IDENTIFY are ACKed (compressed with a copy of the stream's deflate state,
  so they continue the client's inflate context correctly); a close is answered.
  Connections are served one after another; the server exits when stdin closes.
* ``python benchmarks/_replay.py serve-paced DATAFILE RATE``: the same server, paced (for
  ``bench_sustained.py``): after IDENTIFY it sends the session at ``RATE``
  dispatches per second, then its everyday events again and again (READY and the
  GUILD_CREATEs only once) for as long as the client stays. Every repeat is a valid
  continuation of the connection: sequence numbers keep increasing and every
  message continues the one deflate context, so it encodes as it goes (JSON is
  prepared once per event, with a hole for the sequence number; compression and
  framing happen per message, at level 1 to keep the server's share of the two
  cores small).
* :class:`ReplayServer`: starts that server as a child process and checks (by
  digest) that it built the same bytes as the caller.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway_testing.corpus import recorded_session

HEARTBEAT_INTERVAL_MS = 45_000
_SYNC_FLUSH = b"\x00\x00\xff\xff"


# -- the recorded session -------------------------------------------------------------


def load_corpus(
    *, seed: int, guilds: int, members_per_guild: int, events: int
) -> tuple[list[tuple[str, Any]], str]:
    """Return the session ``[(name, data), ...]`` (READY first) and where it came from."""
    session = recorded_session(
        seed=seed, guilds=guilds, members_per_guild=members_per_guild, events=events
    )
    return [(str(name), data) for name, data in session], "gateway_testing.corpus.recorded_session"


# -- the bytes on the wire -------------------------------------------------------------


@dataclass
class Stream:
    """One session as Discord would send it (zlib-stream, JSON).

    Attributes:
        names: dispatch names, READY first (``len(names)`` is the event count).
        messages: the zlib-stream WebSocket message payloads, HELLO first.
        frames: ``messages[i]`` as one unmasked binary WebSocket frame.
        payload_bytes: uncompressed JSON bytes of READY + dispatches.
        deflate_after: the server's deflate context after the last message
            (copy it to compress anything sent later on the same connection).

    """

    names: list[str]
    messages: list[bytes]
    frames: list[bytes]
    payload_bytes: int
    deflate_after: Any = None
    compression: str = "zlib-stream"

    def later_messages(self) -> Callable[[bytes], bytes]:
        """One connection's compressor for messages after the stream (heartbeat ACKs)."""
        if self.compression == "zstd-stream":
            import zstandard

            # The stream's frame ended with its last message: each one a frame of its own.
            return zstandard.ZstdCompressor().compress
        deflate = self.deflate_after.copy()
        return lambda raw: deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)

    @property
    def hello_frame(self) -> bytes:
        return self.frames[0]

    @functools.cached_property
    def body(self) -> bytes:
        """READY and every dispatch, framed, as one byte string."""
        return b"".join(self.frames[1:])

    def digest(self) -> str:
        """A short hash of every frame: proof that two processes send the same bytes."""
        return hashlib.sha256(b"".join(self.frames)).hexdigest()[:16]


def ws_binary_frame(payload: bytes) -> bytes:
    """One unmasked, final, binary WebSocket frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, n))
    elif n < 1 << 16:
        head = bytes((0x82, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 127)) + n.to_bytes(8, "big")
    return head + payload


def encode_stream(session: list[tuple[str, Any]], compression: str = "zlib-stream") -> Stream:
    """Encode ``session`` as HELLO + READY + dispatches on one zlib-stream (or zstd-stream)."""
    deflate = zlib.compressobj()
    hello = {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None}
    raw = [_dumps(hello)]
    raw += [
        _dumps({"op": 0, "t": name, "s": seq, "d": data})
        for seq, (name, data) in enumerate(session, start=1)
    ]
    if compression == "zstd-stream":
        import zstandard

        zstd = zstandard.ZstdCompressor().compressobj()
        block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        messages = [zstd.compress(r) + zstd.flush(block) for r in raw[:-1]]
        messages.append(zstd.compress(raw[-1]) + zstd.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
    else:
        messages = [deflate.compress(r) + deflate.flush(zlib.Z_SYNC_FLUSH) for r in raw]
        assert all(m.endswith(_SYNC_FLUSH) for m in messages)
    return Stream(
        names=[name for name, _ in session],
        messages=messages,
        frames=[ws_binary_frame(m) for m in messages],
        payload_bytes=sum(len(r) for r in raw[1:]),
        deflate_after=deflate,
        compression=compression,
    )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# -- the replay server -------------------------------------------------------------------


class _Client:
    """The server's side of one client's WebSocket: what both replay servers share.

    :meth:`feed` takes bytes read from the client (``b""`` at EOF), answers the
    upgrade (with ``greeting`` after the 101), pings and a close, and returns the
    client's whole payloads, decoded; ``None`` once the connection is over.
    """

    def __init__(self, sock: socket.socket, greeting: Callable[[], bytes]) -> None:
        import wsproto

        self.sock, self.greeting = sock, greeting
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.text: list[str] = []
        self.binary: list[bytes] = []
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def feed(self, data: bytes) -> list[dict[str, Any]] | None:
        import wsproto
        import wsproto.events as wse

        ws, sock = self.ws, self.sock
        ws.receive_data(data or None)
        payloads: list[dict[str, Any]] = []
        for event in ws.events():
            if isinstance(event, wse.Request):
                sock.sendall(ws.send(wse.AcceptConnection()) + self.greeting())
            elif isinstance(event, wse.CloseConnection):
                if ws.state is wsproto.connection.ConnectionState.REMOTE_CLOSING:
                    sock.sendall(ws.send(event.response()))
                return None
            elif isinstance(event, wse.Ping):
                sock.sendall(ws.send(event.response()))
            elif isinstance(event, wse.TextMessage | wse.BytesMessage):
                if isinstance(event, wse.TextMessage):
                    self.text.append(event.data)
                else:
                    self.binary.append(bytes(event.data))
                if not event.message_finished:
                    continue
                payloads.append(
                    json.loads("".join(self.text) if self.text else b"".join(self.binary))
                )
                self.text.clear()
                self.binary.clear()
        return payloads if data else None


def _serve_one(sock: socket.socket, stream: Stream) -> None:
    compress = stream.later_messages()
    client = _Client(sock, lambda: stream.hello_frame)
    identified = False
    while (payloads := client.feed(sock.recv(65536))) is not None:
        for payload in payloads:
            op = payload.get("op")
            if op in (2, 6) and not identified:
                identified = True
                sock.sendall(stream.body)
            elif op == 1 and identified:
                ack = _dumps({"op": 11, "d": None, "s": None, "t": None})
                sock.sendall(ws_binary_frame(compress(ack)))


class _Paced:
    """One paced connection's sender: the session once, then its everyday events forever."""

    def __init__(self, session: list[tuple[str, Any]], rate: float) -> None:
        self.rate = rate
        # Everything but the sequence number, encoded once: b'{"op":0,"t":NAME,"s":' and
        # b',"d":DATA}'. READY and GUILD_CREATE open the session and are not repeated.
        self.first = [_dispatch_parts(name, data) for name, data in session]
        self.loop = [
            parts
            for parts, (name, _) in zip(self.first, session, strict=True)
            if name not in {"READY", "GUILD_CREATE"}
        ]
        self.deflate = zlib.compressobj(1)
        self.seq = 0
        self.sent = 0
        self.t0 = 0.0

    def message(self, raw: bytes) -> bytes:
        """``raw`` compressed on the connection's one context, as one binary frame."""
        return ws_binary_frame(self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def start(self) -> None:
        self.t0 = time.monotonic()

    def due(self, limit: int) -> bytes:
        """The frames owed by now (at most ``limit``): pacing catches up after a stall."""
        if not self.t0:
            return b""
        n = min(int((time.monotonic() - self.t0) * self.rate) - self.sent, limit)
        frames = []
        for _ in range(max(n, 0)):
            i = self.sent
            prefix, rest = (
                self.first[i]
                if i < len(self.first)
                else self.loop[(i - len(self.first)) % len(self.loop)]
            )
            self.seq += 1
            self.sent += 1
            frames.append(self.message(prefix + str(self.seq).encode() + rest))
        return b"".join(frames)


def _dispatch_parts(name: str, data: Any) -> tuple[bytes, bytes]:
    head = _dumps({"op": 0, "t": name, "s": 0})
    return head[: -len(b"0}")], b',"d":' + _dumps(data) + b"}"


def _serve_paced(sock: socket.socket, session: list[tuple[str, Any]], rate: float) -> None:
    paced = _Paced(session, rate)
    hello = _dumps(
        {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None}
    )
    client = _Client(sock, lambda: paced.message(hello))
    tick = 0.005
    batch = max(int(rate * tick * 20), 1)  # after a stall, catch up in steps of 0.1 s
    while True:
        readable, _, _ = select.select([sock], [], [], tick)
        if readable:
            payloads = client.feed(sock.recv(65536))
            if payloads is None:
                return
            for payload in payloads:
                op = payload.get("op")
                if op in (2, 6) and not paced.t0:
                    paced.start()
                elif op == 1 and paced.t0:
                    ack = {"op": 11, "d": None, "s": None, "t": None}
                    sock.sendall(paced.message(_dumps(ack)))
        frames = paced.due(batch)
        if frames:
            sock.sendall(frames)


def _serve(path: str, compression: str, rate: float | None = None) -> None:
    with open(path, encoding="utf-8") as f:
        session = [(str(name), data) for name, data in json.load(f)]
    stream = encode_stream(session, compression)
    assert stream.body  # build the bytes once, before anyone connects
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], stream.digest(), flush=True)

    def watch_stdin() -> None:
        sys.stdin.read()
        # close() alone does not wake a thread blocked in accept() (Linux); shutdown does.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        with sock:
            try:
                if rate is None:
                    _serve_one(sock, stream)
                else:
                    _serve_paced(sock, session, rate)
            except (OSError, ValueError) as exc:
                print(f"replay: connection ended: {exc!r}", file=sys.stderr, flush=True)


class ReplayServer:
    """``_replay.py serve`` in a child process; same stream, one connection at a time.

    With ``rate``, the paced server (see the module's docstring) at that many
    dispatches per second.
    """

    def __init__(
        self, session: list[tuple[str, Any]], stream: Stream, *, rate: float | None = None
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench_replay_")
        path = Path(self._dir.name) / "session.json"
        path.write_text(json.dumps(session), encoding="utf-8")
        if rate is None:
            command = ["serve", str(path), stream.compression]
        elif stream.compression == "zlib-stream":
            command = ["serve-paced", str(path), str(rate)]
        else:
            raise ValueError("the paced server speaks zlib-stream only")
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 2:
            self.close()
            raise RuntimeError("the replay server did not start")
        self.port = int(line[0])
        if line[1] != stream.digest():
            self.close()
            raise RuntimeError("the replay server built different bytes than this process")
        self.url = f"ws://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._dir.cleanup()

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (like socket reads)."""
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i : i + size])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve-paced":
        _serve(sys.argv[2], "zlib-stream", float(sys.argv[3]))
    elif len(sys.argv) not in (3, 4) or sys.argv[1] != "serve":
        sys.exit(
            "usage: python benchmarks/_replay.py serve SESSION.json [COMPRESSION]\n"
            "       python benchmarks/_replay.py serve-paced SESSION.json RATE"
        )
    else:
        _serve(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "zlib-stream")
