"""Both drivers against a server that stops sharing our assumptions (``hostile.py``).

Every case has one rule (issue 10): the shard does not die. It reports an ``error``
event or a reconnect, keeps or recovers its connection once the server behaves
again, and ``disconnect()`` returns; nothing escapes a driver's task or thread, and
nothing is left running (the sync adapter checks threads and sockets on exit).
Timeouts here are hang guards, never measurements.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

import gateway_anyio._runner
import gateway_anyio._transport
import gateway_sync._pump
import gateway_sync._transport
from gateway_proto.commands import Activity, UpdatePresence

from .adapter import DriverAdapter, Running
from .hostile import OP_TEXT, HostileServer, Peer, etf_nan, frame

pytestmark = pytest.mark.anyio

#: Hang guard for anything a case waits for (generous: the machine is shared).
GUARD = 30.0


def options(srv: HostileServer, **more: Any) -> dict[str, Any]:
    """Shard options for the hostile server: its URL, no compression, short timeouts."""
    base: dict[str, Any] = {
        "url": srv.url,
        "compression": None,
        "handshake_timeout": 1.0,
        "hello_timeout": 1.0,
        "close_timeout": 1.0,
    }
    base.update(more)
    return base


def names(run: Running) -> list[str]:
    """The lifecycle and dispatch names seen, without the chatty ones."""
    return [s.name for s in run.seen if s.name not in ("send", "receive", "state")]


def driver_error(run: Running) -> BaseException | None:
    """What escaped the driver's run (anyio: ``connect()``; sync: the I/O thread)."""
    shard = run.shard()
    errors: dict[int, BaseException] = getattr(run, "errors", {})
    return getattr(shard, "error", None) or errors.get(0)


async def stop_and_check(
    run: Running, srv: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``disconnect()`` returns; nothing escaped; the server lets go of its hangers."""
    with anyio.fail_after(GUARD):
        await run.disconnect()
    srv.released.set()
    assert driver_error(run) is None
    assert run.shard().state.value == "stopped"
    failed = [r for r in caplog.records if "failed" in r.getMessage() and r.exc_info]
    assert not failed, [r.getMessage() for r in failed]


async def recovered(run: Running, name: str = "READY") -> None:
    """Wait until the shard went live again (``name`` seen, after a close or an error)."""
    await run.wait_for(name, timeout=GUARD)
    seen = names(run)
    assert "close" in seen or "error" in seen, seen
    assert seen.index(name) > min(seen.index(n) for n in ("close", "error") if n in seen)


def first_connection(
    misbehave: Callable[[Peer], Awaitable[None]],
) -> Callable[[Peer, int], Awaitable[None]]:
    """A script: the first connection runs ``misbehave``, every later one behaves."""

    async def script(peer: Peer, index: int) -> None:
        if index == 0:
            await misbehave(peer)
        elif await peer.upgrade():
            await peer.serve()

    return script


def live(misbehave: Callable[[Peer], Awaitable[None]]) -> Callable[[Peer], Awaitable[None]]:
    """An ``on_live`` hook: the first session runs ``misbehave``, every later one
    (resumed or new) sends a ``PROBE`` dispatch the test waits for."""

    async def on_live(peer: Peer) -> None:
        if peer.index == 0:
            await misbehave(peer)
        else:
            await peer.dispatch("PROBE", {})

    return on_live


# -- item 4: a server that stops reading -------------------------------------------


def big_presence(n: int) -> UpdatePresence:
    # Close to the 4096-byte payload limit: a few dozen fill the buffers.
    return UpdatePresence(activities=[Activity(name=f"{n:04d}" + "x" * 3800)])


async def fill(run: Running) -> None:
    """Send more than the loopback buffers hold: the writes stall for good.

    A driver whose writes block their callers blocks right here (a hang guard
    fails the test).
    """
    with anyio.fail_after(GUARD):
        for n in range(50):
            await run.send(big_presence(n))


@pytest.fixture
def small_client_sndbuf(driver: DriverAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the driver's socket a small send buffer (Linux autotunes it to megabytes)."""

    def shrink(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    if driver.name == "sync":
        sync_open = gateway_sync._transport.open_stream

        def open_sync(*args: Any, **kwargs: Any) -> socket.socket:
            sock = sync_open(*args, **kwargs)
            shrink(sock)
            return sock

        # The I/O thread calls the name it imported.
        monkeypatch.setattr("gateway_sync._io_thread.open_stream", open_sync)
    else:
        anyio_open = gateway_anyio._transport.open_stream

        async def open_anyio(*args: Any, **kwargs: Any) -> anyio.abc.ByteStream:
            stream = await anyio_open(*args, **kwargs)
            shrink(stream.extra(anyio.abc.SocketAttribute.raw_socket))
            return stream

        monkeypatch.setattr("gateway_anyio._runner.open_stream", open_anyio)


@pytest.mark.usefixtures("small_client_sndbuf")
async def test_a_server_that_stops_reading_is_dropped_and_disconnect_returns(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # Interval 1 s: the heartbeat reserve leaves 59 commands a minute for the fill.
    srv = HostileServer(interval_ms=1000, rcvbuf=4096)

    srv.on_live = live(Peer.hang)  # reads nothing more, ACKs nothing, until released
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("READY", timeout=GUARD)
        await fill(run)
        # The zombie check still runs: the shard drops the connection and resumes.
        await recovered(run, "RESUMED")
        await stop_and_check(run, srv, caplog)


@pytest.mark.usefixtures("small_client_sndbuf")
async def test_disconnect_returns_while_writes_are_stalled(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    srv = HostileServer(interval_ms=1000, rcvbuf=4096)
    srv.on_live = live(Peer.hang)
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("READY", timeout=GUARD)
        await fill(run)
        with anyio.fail_after(GUARD):
            await srv.connections[0].wait_unread(2048)
        # The close frame queues behind bytes the peer never takes: the close
        # times out (close_timeout), and the last words get a bounded chance.
        await stop_and_check(run, srv, caplog)


# -- the handshake -------------------------------------------------------------------


async def test_a_server_that_never_answers_the_upgrade(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    srv = HostileServer(first_connection(Peer.hang))  # accepts TCP, says nothing
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await recovered(run)
        await stop_and_check(run, srv, caplog)


async def test_a_101_and_hello_one_byte_at_a_time(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    async def trickle(peer: Peer) -> None:
        if await peer.upgrade(dribble=0.001):
            hello = {"op": 10, "d": {"heartbeat_interval": srv.interval_ms}}
            await peer.send_payload(hello, dribble=0.001)
            await peer.serve(hello=False)

    srv = HostileServer(first_connection(trickle))
    async with (
        srv.running(),
        driver.start_shard(srv, **options(srv, handshake_timeout=GUARD)) as run,
    ):
        await run.wait_for("READY", timeout=GUARD)
        assert len(srv.connections) == 1
        assert "close" not in names(run)
        await stop_and_check(run, srv, caplog)


async def test_no_hello_after_the_upgrade(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    async def mute(peer: Peer) -> None:
        if await peer.upgrade():
            await peer.hang()

    srv = HostileServer(first_connection(mute))
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await recovered(run)
        await stop_and_check(run, srv, caplog)


# -- a live session that goes wrong ------------------------------------------------------


async def test_tcp_closed_in_the_middle_of_a_frame(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    async def cut(peer: Peer) -> None:
        whole = peer.encode({"op": 0, "t": "MESSAGE_CREATE", "s": 99, "d": {"n": 1}})
        await peer.send_raw(frame(OP_TEXT, whole)[:9])
        await peer.stream.aclose()

    srv = HostileServer()
    srv.on_live = live(cut)
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("PROBE", timeout=GUARD)
        assert "RESUMED" in names(run)
        assert not run.dispatches("MESSAGE_CREATE")
        await stop_and_check(run, srv, caplog)


# -- peer values (item 5) -----------------------------------------------------------------


HELLO_INTERVALS = [
    pytest.param("1e-322", id="denormal"),
    pytest.param("nan-etf", id="nan-etf"),
    # orjson (installed for the tests) refuses the NaN literal, stdlib json takes it.
    pytest.param("nan-json", id="nan-json"),
    pytest.param(0, id="zero"),
    pytest.param(-41250, id="negative"),
    pytest.param("41250", id="string"),
    pytest.param(1e11, id="huge"),
]


@pytest.mark.parametrize("interval", HELLO_INTERVALS)
async def test_hello_with_an_interval_no_server_should_send(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture, interval: Any
) -> None:
    async def bad_hello(peer: Peer) -> None:
        if not await peer.upgrade():
            return
        if interval == "nan-json":
            await peer.send_text('{"op": 10, "d": {"heartbeat_interval": NaN}}')
        elif interval == "nan-etf":
            await peer.send_payload({"op": 10, "d": {"heartbeat_interval": etf_nan()}})
        elif interval == "1e-322":
            await peer.send_text('{"op": 10, "d": {"heartbeat_interval": 1e-322}}')
        else:
            await peer.hello(interval)
        await peer.serve(hello=False)

    srv = HostileServer(first_connection(bad_hello))
    encoding = "etf" if interval == "nan-etf" else "json"
    async with srv.running(), driver.start_shard(srv, **options(srv, encoding=encoding)) as run:
        # Refused (a close, then a good server) or clamped: either way, live again.
        await run.wait_for("READY", timeout=GUARD)
        await stop_and_check(run, srv, caplog)


WEIRD_SEQUENCES = [
    pytest.param("12", id="string"),
    pytest.param(1.5, id="float"),
    pytest.param(2**70, id="huge"),
    pytest.param(-3, id="negative"),
]


@pytest.mark.parametrize("seq", WEIRD_SEQUENCES)
async def test_a_dispatch_with_a_sequence_no_server_should_send(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture, seq: Any
) -> None:
    async def weird(peer: Peer) -> None:
        await peer.dispatch("MESSAGE_CREATE", {"n": "weird"}, seq=seq)
        srv.skip_past(seq)
        await peer.dispatch("PROBE", {})

    srv = HostileServer()
    srv.on_live = live(weird)
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        # Delivered, or refused with a close and resumed: the session goes on.
        await run.wait_for("PROBE", timeout=GUARD)
        await stop_and_check(run, srv, caplog)


CLOSE_FRAMES = [
    pytest.param(1005, b"", id="1005"),
    pytest.param(999, b"", id="999"),
    pytest.param(5000, b"", id="5000"),
    pytest.param(4000, b"\xff\xfe not utf-8", id="non-utf8-reason"),
]


@pytest.mark.parametrize(("code", "reason"), CLOSE_FRAMES)
async def test_a_close_frame_no_server_should_send(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture, code: int, reason: bytes
) -> None:
    async def bad_close(peer: Peer) -> None:
        await peer.send_close(code, reason)

    srv = HostileServer()
    srv.on_live = live(bad_close)
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("PROBE", timeout=GUARD)
        assert "close" in names(run)
        await stop_and_check(run, srv, caplog)


RETRY_AFTERS = [
    pytest.param(math.nan, id="nan"),
    pytest.param(-5.0, id="negative"),
]


@pytest.mark.parametrize("retry_after", RETRY_AFTERS)
async def test_rate_limited_with_a_retry_after_no_server_should_send(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture, retry_after: float
) -> None:
    srv = HostileServer()
    asked: list[dict[str, Any]] = []

    async def limit_once(peer: Peer, request: dict[str, Any]) -> None:
        asked.append(request)
        if len(asked) == 1:
            await peer.rate_limited(request, retry_after)
        else:
            await peer.members_chunk(request)

    srv.on_request_members = limit_once
    srv.on_live = live(lambda peer: anyio.sleep(0))
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("READY", timeout=GUARD)
        try:
            members = await run.request_guild_members("81", query="", timeout=5.0)
        except TimeoutError:
            # The answer was refused (a protocol error: close, resume), and the
            # request with it; the session goes on.
            await run.wait_for("PROBE", timeout=GUARD)
            assert "close" in names(run)
        else:
            # Honoured as "ask again now": nothing to wait for in such a value.
            assert members == [{"user": {"id": "7"}}]
            assert len(asked) == 2
        await stop_and_check(run, srv, caplog)


async def test_rate_limited_for_ages_ends_with_the_shard(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    srv = HostileServer()

    async def limit(peer: Peer, request: dict[str, Any]) -> None:
        await peer.rate_limited(request, 1e10)

    srv.on_request_members = limit
    outcome: list[Any] = []

    async def request(run: Running) -> None:
        try:
            outcome.append(await run.request_guild_members("81", query="", timeout=GUARD))
        except Exception as exc:
            outcome.append(exc)

    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("READY", timeout=GUARD)
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, run)
            await run.wait_for("RATE_LIMITED", timeout=GUARD)
            # The wait is the member request's, never the shard's: stopping ends it.
            await stop_and_check(run, srv, caplog)
        assert outcome == [[]]


@pytest.mark.usefixtures("small_client_sndbuf")
async def test_a_server_that_answers_but_never_reads_hits_the_write_stall_limit(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ACKs keep coming, so the zombie check is satisfied: only the stall limit can
    # tell. Shortened here (it is 30 s) so the case runs in seconds.
    monkeypatch.setattr(gateway_anyio._runner, "WRITE_STALL_TIMEOUT", 1.0)
    monkeypatch.setattr(gateway_sync._pump, "WRITE_STALL_TIMEOUT", 1.0)
    caplog.set_level(logging.WARNING)
    srv = HostileServer(interval_ms=1000, rcvbuf=4096)

    async def ack_blindly(peer: Peer) -> None:
        with anyio.move_on_after(GUARD):
            while not srv.released.is_set():
                await peer.send_payload({"op": 11, "d": None})
                await anyio.sleep(0.2)

    srv.on_live = live(ack_blindly)
    async with srv.running(), driver.start_shard(srv, **options(srv)) as run:
        await run.wait_for("READY", timeout=GUARD)
        await fill(run)
        await run.wait_for("PROBE", timeout=GUARD)
        assert "RESUMED" in names(run)
        assert any("no progress" in r.getMessage() for r in caplog.records)
        await stop_and_check(run, srv, caplog)
