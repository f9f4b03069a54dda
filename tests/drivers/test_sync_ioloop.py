"""The blocking driver's I/O loop, driven with a scripted stand-in for the core.

These tests pin down the driver's own mechanics independently of the protocol:
the loop sleeps until ``next_deadline()`` and calls ``handle_timeout``, pumps bytes
both ways, serves other threads through its mailbox, and shuts down cleanly. The
stand-in speaks a line protocol over a loopback socket; a tiny server thread plays
the peer. The shared scenario suite does the same against the real core and the
fake gateway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway_proto.commands import UpdatePresence
from gateway_proto.driver_support import GatewayEvent, ShardState
from gateway_proto.errors import (
    AuthenticationFailedError,
    GatewayError,
    LocalProtocolError,
    fatal_error_for,
)
from gateway_proto.events import (
    CloseCause,
    Closed,
    CloseInitiator,
    Dispatch,
    Event,
    IdentifyNeeded,
    Opened,
    PayloadSent,
)
from gateway_sync import Cluster, Gateway, InProcessIdentifyLimiter, Shard

from ._sync_adapter import CountingCondition, LeakCheck

INTERVAL = 0.05


class ScriptedConnection:
    """Stands in for ``GatewayConnection``: the documented API over a line protocol."""

    instances: list[ScriptedConnection] = []  # noqa: RUF012 - test bookkeeping

    def __init__(self, url: str) -> None:
        self.url = url
        self.session: Any = None
        self.latency: float | None = None
        self._out = bytearray()
        self._in = bytearray()
        self._events: list[Event] = []
        self._next_beat: float | None = None
        self._closing = False
        self._closed = False
        self.beats: list[float] = []
        self.commands: list[Any] = []
        # The counters the drivers copy into ShardCounters (the metrics).
        self.bytes_received = self.payload_bytes = self.messages_decoded = 0
        self.commands_queued = 0
        self.rate_limit_wait = 0.0
        ScriptedConnection.instances.append(self)

    def connect(self, now: float) -> None:
        self._out += b"HELLO\n"

    def receive_data(self, data: bytes, now: float) -> None:
        if self._closed:
            return
        if not data:
            self._finish(None, CloseInitiator.TRANSPORT, CloseCause.CONNECTION_LOST, now)
            return
        self._in += data
        while b"\n" in self._in:
            line, _, rest = bytes(self._in).partition(b"\n")
            self._in = bytearray(rest)
            word, _, arg = line.decode().partition(" ")
            if word == "OPEN":
                self._events += [Opened(), IdentifyNeeded()]
                self._next_beat = now + INTERVAL
            elif word == "READY":
                self._events.append(Dispatch("READY", {}, 1))
            elif word == "EV":
                self._events.append(Dispatch("MESSAGE_CREATE", {"n": int(arg)}, int(arg)))
            elif word == "CLOSED":
                self._finish(int(arg), CloseInitiator.PEER, CloseCause.SERVER_CLOSED, now)

    def _finish(
        self, code: int | None, initiator: CloseInitiator, cause: CloseCause, now: float
    ) -> None:
        if self._closing:
            initiator, cause = CloseInitiator.LOCAL, CloseCause.REQUESTED
        error = fatal_error_for(code, "authentication failed") if code == 4004 else None
        self._closed = True
        self._next_beat = None
        self._events.append(
            Closed(
                code=code,
                reason="scripted",
                initiator=initiator,
                cause=cause,
                can_reconnect=not self._closing,
                can_resume=False,
                session=None,
                error=error,
            )
        )

    def events(self) -> Iterator[Event]:
        events, self._events = self._events, []
        return iter(events)

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def take_dispatches(self, *args: Any, **kwargs: Any) -> int:
        return 0  # every dispatch comes from next_event: the drain's other path

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def next_deadline(self) -> float | None:
        return self._next_beat

    def handle_timeout(self, now: float) -> None:
        if self._next_beat is not None and now >= self._next_beat:
            self.beats.append(now)
            self._out += b"BEAT\n"
            self._events.append(PayloadSent(1, None))
            self._next_beat = now + INTERVAL

    def identify(self, now: float) -> None:
        self._out += b"IDENTIFY\n"
        self._events.append(PayloadSent(2, None))

    def send(self, command: Any, now: float) -> None:
        if self._closing:
            raise LocalProtocolError("closing")
        self.commands.append(command)
        self._out += b"CMD\n"

    def close(self, code: int = 1000, reason: str = "", *, now: float) -> None:
        if self._closing:
            raise LocalProtocolError("already closing")
        self._closing = True
        self._out += f"CLOSE {code}\n".encode()


class ScriptedReconnector:
    """Stands in for ``Reconnector``: reconnect at once unless the caller closed."""

    def __init__(self, config: Any, **_: Any) -> None:
        self.url = config.gateway_url()
        self.session = None
        self.fatal_error: GatewayError | None = None
        self.reconnects: dict[str, int] = {}
        self.reconnect_codes: dict[tuple[str, int], int] = {}
        self.identifies = self.resumes = self.duplicates_dropped = 0

    def new_connection(self) -> ScriptedConnection:
        return ScriptedConnection(self.url)

    def observe(self, event: Event) -> None:
        if isinstance(event, PayloadSent) and event.opcode == 2:
            self.identifies += 1

    def after_close(self, closed: Closed, *, now: float | None = None) -> float | None:
        if closed.error is not None:
            self.fatal_error = closed.error
            return None
        if closed.cause is CloseCause.REQUESTED:
            return None
        self.reconnects[closed.cause.value] = self.reconnects.get(closed.cause.value, 0) + 1
        key = (closed.cause.value, closed.code or 0)
        self.reconnect_codes[key] = self.reconnect_codes.get(key, 0) + 1
        return 0.01

    def after_connect_failure(self, error_text: str = "", *, now: float | None = None) -> float:
        self.reconnects["connect_failed"] = self.reconnects.get("connect_failed", 0) + 1
        return 0.01


class Peer:
    """The server side: answers the line protocol on a loopback listener."""

    def __init__(self, tls: ssl.SSLContext | None = None, identify_reply: bytes = b"") -> None:
        self.tls = tls
        self.identify_reply = identify_reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines: list[str] = []
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, name="peer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._talk, args=(conn,), name="peer-conn", daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        buf = b""
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return
            with self.lock:
                self.conns.append(conn)
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    text = line.decode()
                    with self.lock:
                        self.lines.append(text)
                    if text == "HELLO":
                        conn.sendall(b"OPEN\n")
                    elif text == "IDENTIFY" and self.identify_reply:
                        conn.sendall(self.identify_reply)
                    elif text == "IDENTIFY":
                        conn.sendall(b"READY\n" + b"".join(b"EV %d\n" % n for n in range(2, 7)))
                    elif text.startswith("CLOSE"):
                        conn.sendall(f"CLOSED {text.split()[1]}\n".encode())

    def drop_all(self) -> None:
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)
            self.conns.clear()

    def count(self, line: str) -> int:
        with self.lock:
            return self.lines.count(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self.listener.close()
        self.drop_all()
        self.thread.join(5.0)


def wait_until(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def peer_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Peer]]:
    import gateway_sync._io_thread as io_thread_module

    monkeypatch.setattr(io_thread_module, "Reconnector", ScriptedReconnector)
    ScriptedConnection.instances.clear()
    leaks = LeakCheck()
    peers: list[Peer] = []

    def make(**options: Any) -> Peer:
        peers.append(Peer(**options))
        return peers[-1]

    yield make
    for p in peers:
        p.close()
    leaks.check_blocking()  # checked, not assumed: no driver thread or socket left


@pytest.fixture
def peer(peer_factory: Callable[..., Peer]) -> Peer:
    return peer_factory()


def make_shard(peer: Peer, scheme: str = "ws", **options: Any) -> Shard:
    gateway = Gateway("Bot scripted-token", api_base="http://127.0.0.1:9/api/v10")
    return Shard(
        gateway,
        0,
        intents=1,
        url=f"{scheme}://localhost:{peer.port}/",
        compression=None,
        rng=random.Random(0),
        # Re-identifying after a lost connection waits out the limiter's window.
        identify_limiter=InProcessIdentifyLimiter(window=0.01),
        **options,
    )


def test_lifecycle_events_and_ordered_dispatches(peer: Peer) -> None:
    shard = make_shard(peer)
    seen: list[tuple[str, int | None]] = []
    shard.on("*", lambda ev: seen.append((ev.name, ev.sequence)))
    with shard:
        wait_until(lambda: ("MESSAGE_CREATE", 6) in seen, "the dispatches")
        assert shard.state is ShardState.READY
    names = [n for n, _ in seen if n not in ("send", "receive", "state")]
    assert names[:3] == ["open", "connect", "READY"]
    assert [s for n, s in seen if n == "MESSAGE_CREATE"] == [2, 3, 4, 5, 6]
    assert names[-2:] == ["close", "disconnect"]
    assert peer.count("CLOSE 1000") == 1
    final: ShardState = shard.state  # read again: the shard moved on meanwhile
    assert final is ShardState.STOPPED


def test_the_events_of_one_read_are_handed_over_with_one_wake_up(peer: Peer) -> None:
    # The peer answers IDENTIFY with READY and five dispatches in one write: one
    # read, one batch, so an events() iterator is woken once, not once per event.
    shard = make_shard(peer)
    stream = shard.events("MESSAGE_CREATE")
    stream._cond = counting = CountingCondition(stream._lock)
    with shard, stream:
        got = [next(stream).sequence for _ in range(5)]
        assert got == [2, 3, 4, 5, 6]
        assert counting.notified <= 1  # 0 if the iterator had not waited yet


def test_a_blocked_handler_does_not_delay_heartbeats(peer: Peer) -> None:
    shard = make_shard(peer)
    release = threading.Event()
    done: list[int] = []

    @shard.on("MESSAGE_CREATE")
    def blocked(event: GatewayEvent) -> None:
        release.wait(10.0)
        done.append(event.sequence or 0)

    with shard:
        wait_until(lambda: peer.count("BEAT") >= 6, "six heartbeats while the handler blocks")
        assert done == []
        conn = ScriptedConnection.instances[-1]
        gaps = [b - a for a, b in zip(conn.beats, conn.beats[1:], strict=False)]
        # Each beat was sent when due, not after the handler let go: there is no
        # timing bound to assert, only that beats kept coming while it blocked.
        assert len(gaps) >= 5
        release.set()
        wait_until(lambda: len(done) == 5, "the handler to catch up")
    assert done == [2, 3, 4, 5, 6]


def test_send_is_safe_from_many_threads(peer: Peer) -> None:
    shard = make_shard(peer)
    with shard:
        wait_until(lambda: shard.state is ShardState.READY, "READY")
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                for _ in range(25):
                    shard.send(UpdatePresence(status="idle"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender, name=f"sender-{i}") for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        wait_until(lambda: peer.count("CMD") == 100, "all commands on the wire")
    assert len(ScriptedConnection.instances[-1].commands) == 100


def test_dropped_transport_reconnects_and_disconnect_from_another_thread_stops(
    peer: Peer,
) -> None:
    shard = make_shard(peer)
    shard.start()
    try:
        wait_until(lambda: shard.state is ShardState.READY, "READY")
        peer.drop_all()
        wait_until(
            lambda: shard.counters.connections == 2 and shard.state is ShardState.READY,
            "the second connection",
        )
        assert shard.counters.reconnects == {"connection_lost": 1}
    finally:
        stopper = threading.Thread(target=shard.disconnect, name="stopper")
        stopper.start()
        stopper.join(10.0)
    assert not stopper.is_alive()
    assert not shard.running
    with pytest.raises(LocalProtocolError):
        shard.send(UpdatePresence())


def test_disconnect_from_a_handler_does_not_deadlock(peer: Peer) -> None:
    shard = make_shard(peer)
    shard.on("READY", lambda ev: shard.disconnect())
    shard.start()
    assert shard.wait(10.0)
    shard.disconnect()  # joins the handler threads
    assert shard.state is ShardState.STOPPED
    assert peer.count("CLOSE 1000") == 1


def interrupt_main_thread() -> None:
    """Deliver Ctrl-C to the main thread, as a terminal would."""
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals reach the main thread only",
)
def test_ctrl_c_in_connect_disconnects_cleanly(
    peer: Peer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    shard = make_shard(peer)
    shard.on("READY", lambda ev: interrupt_main_thread())
    shard.connect()  # returns (no KeyboardInterrupt escapes) once everything stopped
    assert shard.state is ShardState.STOPPED
    assert not shard.running
    assert peer.count("CLOSE 1000") == 1
    assert "Traceback" not in capfd.readouterr().err
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals reach the main thread only",
)
def test_ctrl_c_in_cluster_run_closes_every_shard(
    peer: Peer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "url": f"ws://127.0.0.1:{peer.port}/",
        "shards": 3,
        "session_start_limit": {
            "total": 1000,
            "remaining": 1000,
            "reset_after": 1000,
            "max_concurrency": 3,
        },
    }
    gateway = Gateway(
        "Bot scripted-token",
        api_base="http://rest.invalid/api/v10",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=body)),
    )
    cluster = Cluster(gateway, intents=1, compression=None, identify_window=0.01)
    ready: set[int] = set()

    @cluster.on("READY")
    def on_ready(event: GatewayEvent) -> None:
        ready.add(event.shard_id)
        if len(ready) == 3:
            interrupt_main_thread()

    cluster.run("auto")
    assert ready == {0, 1, 2}
    assert all(not s.running and s.state is ShardState.STOPPED for s in cluster.shards.values())
    assert peer.count("CLOSE 1000") == 3
    assert "Traceback" not in capfd.readouterr().err
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_fatal_close_raises_a_typed_error_without_reconnecting(
    peer_factory: Callable[..., Peer],
) -> None:
    peer = peer_factory(identify_reply=b"CLOSED 4004\n")
    shard = make_shard(peer)
    stopped: list[GatewayEvent] = []
    shard.on("disconnect", stopped.append)
    with pytest.raises(AuthenticationFailedError):
        shard.connect()
    assert shard.counters.connections == 1
    assert shard.counters.reconnects == {}
    assert shard.state is ShardState.STOPPED
    shard.disconnect()  # harmless after the stop; joins the handler threads
    assert isinstance(stopped[0].data.error, AuthenticationFailedError)


def test_tls_is_verified_and_works_with_a_trusted_ca(peer_factory: Callable[..., Peer]) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    peer = peer_factory(tls=server_ctx)
    # With the CA: the whole lifecycle over TLS.
    shard = make_shard(peer, "wss", ssl_context=client_ctx)
    dispatches: list[int | None] = []
    shard.on("MESSAGE_CREATE", lambda ev: dispatches.append(ev.sequence))
    with shard:
        wait_until(lambda: len(dispatches) == 5, "dispatches over TLS")
    assert dispatches == [2, 3, 4, 5, 6]
    # Without it (the default context, verification on): every attempt fails.
    untrusting = make_shard(peer, "wss")
    errors: list[BaseException] = []
    untrusting.on("error", lambda ev: errors.append(ev.data))
    with untrusting:
        wait_until(
            lambda: untrusting.counters.reconnects.get("connect_failed", 0) >= 1,
            "a refused certificate",
        )
    assert isinstance(errors[0], ssl.SSLCertVerificationError)


def test_iterating_events_ends_when_the_shard_stops(peer: Peer) -> None:
    shard = make_shard(peer)
    stream = shard.events("MESSAGE_CREATE", "disconnect")
    shard.start()
    names = []
    stopper = threading.Thread(target=shard.disconnect, name="stopper")
    for event in stream:  # a plain iterator, in this (the main) thread
        names.append(event.name)
        if event.sequence == 6:
            stopper.start()
    stopper.join()
    assert names == ["MESSAGE_CREATE"] * 5 + ["disconnect"]
