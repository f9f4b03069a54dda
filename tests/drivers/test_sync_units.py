"""Unit tests of the blocking driver's own pieces: REST, limiter, event delivery, transport.

No fake gateway here: a mock httpx transport, loopback sockets and threads. Every
test runs under the ``no_leaks`` fixture, which fails it if a driver thread or a
socket is left open.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from gateway_proto.driver_support import ERROR, GatewayEvent, IdentifyWait
from gateway_proto.identify import SessionStartLimit
from gateway_sync import (
    Gateway,
    GatewayRequestError,
    IdentifyCancelledError,
    InProcessIdentifyLimiter,
    InvalidTokenError,
)
from gateway_sync._events import Emitter
from gateway_sync._transport import (
    TransportClosedError,
    TransportTimeoutError,
    Waker,
    open_stream,
    recv_some,
    send_some,
)

from ._sync_adapter import CountingCondition, LeakCheck, driver_threads, open_sockets, until

BODY = {
    "url": "wss://gateway.example/",
    "shards": 9,
    "session_start_limit": {
        "total": 1000,
        "remaining": 999,
        "reset_after": 14400000,
        "max_concurrency": 4,
    },
}


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a driver thread or a socket open."""
    threads, sockets = set(driver_threads()), open_sockets()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        new_threads = [t for t in driver_threads() if t not in threads]
        new_sockets = open_sockets() - sockets
        if not new_threads and not new_sockets:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"leaked threads {[t.name for t in new_threads]}, sockets {new_sockets}")
        time.sleep(0.01)


# -- Gateway (GET /gateway/bot) ----------------------------------------------------------


def gateway(handler: httpx.MockTransport, **options: object) -> Gateway:
    return Gateway(
        "Bot secret-token",
        api_base="https://api.example/api/v10",
        transport=handler,
        **options,  # type: ignore[arg-type]
    )


def test_fetch_parses_the_answer_and_sends_the_token() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=BODY)

    gw = gateway(httpx.MockTransport(handle))
    assert not gw.fetched
    info = gw.fetch()
    assert (gw.url, gw.shards, gw.max_concurrency) == ("wss://gateway.example/", 9, 4)
    assert info.session_start_limit.reset_after == 14400.0
    assert [str(r.url) for r in seen] == ["https://api.example/api/v10/gateway/bot"]
    assert seen[0].headers["authorization"] == "Bot secret-token"
    assert "secret-token" not in repr(gw)


def test_401_raises_a_typed_error_at_once() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"message": "401: Unauthorized", "code": 0})

    with pytest.raises(InvalidTokenError, match="refused the bot token") as info:
        gateway(httpx.MockTransport(handle)).fetch()
    assert (calls, info.value.status_code) == (1, 401)


def test_429_waits_retry_after_then_succeeds() -> None:
    answers = [
        httpx.Response(429, json={"retry_after": 0.25, "global": False}),
        httpx.Response(200, json=BODY),
    ]
    slept: list[float] = []
    gw = gateway(httpx.MockTransport(lambda request: answers.pop(0)), sleep=slept.append)
    assert gw.fetch().shards == 9
    assert slept == [0.25]


def test_network_errors_and_5xx_retry_with_backoff_then_give_up() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(502)

    slept: list[float] = []
    gw = gateway(httpx.MockTransport(handle), max_retries=3, sleep=slept.append)
    with pytest.raises(GatewayRequestError, match="after 4 attempts"):
        gw.fetch()
    assert calls == 4
    assert len(slept) == 3
    assert all(0.0 <= s <= 10.0 for s in slept)


def test_for_token_shares_one_instance_per_token_across_threads() -> None:
    found: list[Gateway] = []
    threads = [
        threading.Thread(target=lambda: found.append(Gateway.for_token("Bot shared-token")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(g) for g in found}) == 1
    assert found[0] is Gateway.for_token("shared-token")


# -- the identify limiter -------------------------------------------------------------


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_limiter_grants_one_identify_per_bucket_per_window() -> None:
    clock = FakeClock()
    limiter = InProcessIdentifyLimiter(2, window=5.0, clock=clock, sleep=clock.sleep)
    waits: list[IdentifyWait] = []
    for shard_id in range(6):
        limiter.acquire(shard_id, on_wait=waits.append)
    grants = [(g.shard_id, g.bucket, g.at) for g in limiter.history]
    assert grants == [
        (0, 0, 100.0),
        (1, 1, 100.0),
        (2, 0, 105.0),
        (3, 1, 105.0),
        (4, 0, 110.0),
        (5, 1, 110.0),
    ]
    # Sequential callers on a clock that moves only when they sleep: shard 2 waits for
    # bucket 0, shard 3 finds bucket 1 free by then, and so on.
    assert [(w.bucket, w.delay) for w in waits] == [(0, 5.0), (0, 5.0)]


def test_limiter_is_shared_safely_by_many_threads() -> None:
    limiter = InProcessIdentifyLimiter(4, window=0.05)
    threads = [
        threading.Thread(target=limiter.acquire, args=(shard_id,), name=f"gateway-test-{shard_id}")
        for shard_id in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_bucket: dict[int, list[float]] = {}
    for grant in limiter.history:
        by_bucket.setdefault(grant.bucket, []).append(grant.at)
    assert sorted(by_bucket) == [0, 1, 2, 3]
    for times in by_bucket.values():
        times.sort()
        assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(times))


def test_limiter_waits_for_the_budget_reset_and_says_so() -> None:
    clock = FakeClock()
    limit = SessionStartLimit(total=10, remaining=1, reset_after=60.0, max_concurrency=1)
    limiter = InProcessIdentifyLimiter(1, limit=limit, clock=clock, sleep=clock.sleep)
    waits: list[IdentifyWait] = []
    limiter.acquire(0, on_wait=waits.append)
    limiter.acquire(0, on_wait=waits.append)
    assert [g.at for g in limiter.history] == [100.0, 160.0]
    assert waits == [IdentifyWait(60.0, 0, True)]


def test_limiter_wait_is_cancelled_promptly() -> None:
    limiter = InProcessIdentifyLimiter(1, window=60.0)
    cancel = threading.Event()
    limiter.acquire(0, cancel=cancel)  # takes the bucket for a minute
    outcome: list[BaseException] = []

    def second() -> None:
        try:
            limiter.acquire(0, cancel=cancel)
        except IdentifyCancelledError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=second, name="gateway-test-waiter")
    waiter.start()
    cancel.set()
    waiter.join(5.0)
    assert not waiter.is_alive()
    assert len(outcome) == 1


# -- event delivery -------------------------------------------------------------------


def event(name: str, n: int = 0) -> GatewayEvent:
    return GatewayEvent(name, 0, {"n": n}, n or None)


def test_a_slow_handler_delays_only_itself() -> None:
    import logging

    emitter = Emitter(logging.getLogger("test"), thread_prefix="gateway-test")
    release = threading.Event()
    fast: list[int] = []
    slow: list[int] = []

    @emitter.on("MESSAGE_CREATE")
    def blocked(ev: GatewayEvent) -> None:
        release.wait(10.0)
        slow.append(ev.data["n"])

    emitter.on("*", lambda ev: fast.append(ev.data["n"]))
    emitter.start()
    for n in range(1, 6):
        emitter.emit(event("MESSAGE_CREATE", n))
    deadline = time.monotonic() + 5.0
    while len(fast) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fast == [1, 2, 3, 4, 5]
    assert slow == []
    release.set()
    emitter.close()
    assert slow == [1, 2, 3, 4, 5]


def test_handler_errors_become_error_events_without_stopping_delivery() -> None:
    import logging

    emitter = Emitter(logging.getLogger("test"), thread_prefix="gateway-test")
    errors: list[BaseException] = []
    seen: list[int] = []

    def broken(ev: GatewayEvent) -> None:
        seen.append(ev.data["n"])
        raise ValueError("boom")

    emitter.on("X", broken)
    emitter.on(ERROR, lambda ev: errors.append(ev.data))
    emitter.start()
    emitter.emit(event("X", 1))
    emitter.emit(event("X", 2))
    deadline = time.monotonic() + 5.0
    while len(errors) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    emitter.close()
    assert seen == [1, 2]
    assert [str(e) for e in errors] == ["boom", "boom"]


def test_iterators_are_bounded_drop_the_oldest_and_end_on_close() -> None:
    import logging

    drops: list[int] = []
    emitter = Emitter(logging.getLogger("test"), on_drop=drops.append)
    emitter.start()
    stream = emitter.events("A", max_buffer=3)
    for n in range(1, 6):
        emitter.emit(event("A", n))
    emitter.emit(event("B", 9))  # filtered out by name
    emitter.close()
    assert [ev.data["n"] for ev in stream] == [3, 4, 5]
    assert stream.dropped == 2
    assert sum(drops) == 2


def test_iterator_blocks_until_an_event_from_another_thread() -> None:
    import logging

    emitter = Emitter(logging.getLogger("test"))
    emitter.start()
    stream = emitter.events()
    producer = threading.Timer(0.05, emitter.emit, args=(event("LATE", 7),))
    producer.name = "gateway-test-producer"
    producer.start()
    got = next(iter(stream))
    producer.join()
    assert got.name == "LATE"
    assert stream.get(timeout=0.01) is None
    emitter.close()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5.0
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_a_batch_reaches_each_consumer_whole_with_one_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from gateway_sync import _consumers, _events

    shares: list[list[int]] = []

    class RecordingWorker(_consumers.Worker):
        def _take(self, timeout: float | None = None, *, wait: bool = True) -> list[GatewayEvent]:
            share = super()._take(timeout, wait=wait)
            shares.append([ev.data["n"] for ev in share])
            return share

    monkeypatch.setattr(_events, "Worker", RecordingWorker)
    emitter = Emitter(logging.getLogger("test"), thread_prefix="gateway-test")
    stream = emitter.events("A")
    stream._cond = counting = CountingCondition(stream._lock)
    got: list[int] = []
    reader = threading.Thread(
        target=lambda: got.extend(ev.data["n"] for ev in stream), name="gateway-test-reader"
    )
    reader.start()
    wait_for(lambda: stream._sleepers == 1, "the reader to wait")
    seen: list[int] = []
    done = threading.Event()

    def handler(ev: GatewayEvent) -> None:
        seen.append(ev.data["n"])
        if ev.data["n"] == 5:
            done.set()

    emitter.on("A", handler)
    emitter.start()
    batch = [event("A", 1), event("B", 2), event("A", 3), event("A", 4), event("A", 5)]
    emitter.emit_batch(batch)
    assert done.wait(5.0)
    emitter.close()
    reader.join(5.0)
    # The handler's thread took the whole batch at once, and ran it in order.
    assert seen == [1, 3, 4, 5]
    assert shares[:1] == [[1, 3, 4, 5]]
    assert [] not in shares[:-1]  # no wake-up found nothing to do
    assert got == [1, 3, 4, 5]
    assert counting.notified == 2  # one for the batch, one for close()


def test_a_consumer_busy_with_its_events_is_not_woken_again() -> None:
    import logging

    emitter = Emitter(logging.getLogger("test"))
    stream = emitter.events("A")
    stream._cond = counting = CountingCondition(stream._lock)
    emitter.start()
    for n in range(3):  # nobody waits on the stream: nothing to wake
        emitter.emit_batch([event("A", 2 * n), event("A", 2 * n + 1)])
    assert counting.notified == 0
    assert [next(stream).data["n"] for _ in range(6)] == list(range(6))
    emitter.close()


def test_the_thread_that_delivers_events_frees_those_a_handler_is_done_with() -> None:
    # Freeing a decoded payload on the thread that decoded it is cheaper (its
    # objects are in that core's cache): the handler's thread hands them back.
    import logging
    import weakref

    class Payload(dict[str, int]):
        pass

    freed_by: list[str] = []
    emitter = Emitter(logging.getLogger("test"), thread_prefix="gateway-test")
    handled = threading.Semaphore(0)
    emitter.on("A", lambda ev: handled.release())
    emitter.start()

    def batch(first: int) -> list[GatewayEvent]:
        events = []
        for n in range(first, first + 3):
            data = Payload(n=n)
            weakref.finalize(data, lambda: freed_by.append(threading.current_thread().name))
            events.append(GatewayEvent("A", 0, data, n))
        return events

    producer = threading.current_thread().name
    emitter.emit_batch(batch(1))
    for _ in range(3):
        assert handled.acquire(timeout=5.0)
    wait_for(lambda: emitter._workers[next(iter(emitter._workers))]._sleepers == 1, "idle")
    assert freed_by == []  # handled, but kept until the next delivery
    emitter.emit_batch(batch(4))
    assert freed_by == [producer] * 3
    emitter.close()


def test_a_batch_larger_than_the_buffer_keeps_its_newest_events() -> None:
    import logging

    drops: list[int] = []
    emitter = Emitter(logging.getLogger("test"), on_drop=drops.append)
    emitter.start()
    stream = emitter.events(max_buffer=3)
    emitter.emit(event("A", 1))
    emitter.emit_batch([event("A", n) for n in range(2, 7)])
    emitter.close()
    assert [ev.data["n"] for ev in stream] == [4, 5, 6]
    assert stream.dropped == 3
    assert sum(drops) == 3



@pytest.mark.parametrize("inline", [False, True], ids=["handler-threads", "inline"])
def test_where_a_name_goes_follows_every_change_between_batches(inline: bool) -> None:
    # The emitter remembers each name's route across batches: on(), off(), a new
    # or closed stream, start() and close() must each be seen by the next batch.
    import logging

    emitter = Emitter(logging.getLogger("test"), thread_prefix="gateway-test", inline=inline)
    first: list[int] = []
    second: list[int] = []

    def one(ev: GatewayEvent) -> None:
        first.append(ev.data["n"])

    def two(ev: GatewayEvent) -> None:
        second.append(ev.data["n"])

    emitter.on("A", one)
    emitter.emit(event("A", 1))  # not started: handlers get nothing yet
    emitter.start()
    emitter.emit_batch([event("A", 2), event("B", 99)])
    emitter.on("A", two)
    emitter.emit(event("A", 3))
    emitter.off("A", one)
    emitter.emit(event("A", 4))
    stream = emitter.events("A")
    emitter.emit(event("A", 5))
    taken = stream.get(timeout=10.0)
    assert taken is not None
    assert taken.data["n"] == 5
    stream.close()
    emitter.emit(event("A", 6))
    late = emitter.events("B")
    emitter.emit_batch([event("A", 7), event("B", 8)])
    until(lambda: len(second) == 5, "the handlers had their events")
    emitter.close()
    emitter.emit(event("A", 9))  # closed: nobody is called
    assert first == [2, 3]
    assert second == [3, 4, 5, 6, 7]
    assert stream.get(timeout=0) is None  # closed: what it held is gone, 6 never came
    assert [ev.data["n"] for ev in late] == [8]
# -- transport --------------------------------------------------------------------------


def test_waker_wakes_a_select_from_another_thread() -> None:
    import selectors

    waker = Waker()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(waker.fileno(), selectors.EVENT_READ)
            threading.Timer(0.05, waker.wake).start()
            assert sel.select(10.0)
            waker.drain()
            assert sel.select(0) == []
    finally:
        waker.close()
    waker.wake()  # harmless once closed


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server
    finally:
        server.close()


def test_open_stream_plain_tcp_roundtrip(listener: socket.socket) -> None:
    waker = Waker()
    port = listener.getsockname()[1]
    try:
        sock = open_stream(
            f"ws://127.0.0.1:{port}/",
            ssl_context=None,
            waker=waker,
            should_stop=lambda: False,
            timeout=5.0,
        )
        peer, _ = listener.accept()
        with sock, peer:
            assert send_some(sock, memoryview(b"hello")) == 5
            assert peer.recv(5) == b"hello"
            assert recv_some(sock) is None  # nothing to read yet, never blocks
            peer.sendall(b"back")
            deadline = time.monotonic() + 5.0
            data = None
            while data is None and time.monotonic() < deadline:
                data = recv_some(sock)
            assert data == b"back"
            peer.close()
            deadline = time.monotonic() + 5.0
            while (data := recv_some(sock)) is None and time.monotonic() < deadline:
                pass
            assert data == b""  # EOF
    finally:
        waker.close()


def test_open_stream_refused_raises_oserror() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    waker = Waker()
    try:
        with pytest.raises(OSError):  # noqa: PT011 - the errno varies by platform
            open_stream(
                f"ws://127.0.0.1:{port}/",
                ssl_context=None,
                waker=waker,
                should_stop=lambda: False,
                timeout=5.0,
            )
    finally:
        waker.close()


def test_open_stream_tls_verifies_by_default_and_accepts_a_trusted_ca(
    listener: socket.socket,
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        for _ in range(2):
            raw, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(raw, server_side=True) as tls:
                    tls.sendall(b"hi")
                    stop.wait(5.0)
            except (ssl.SSLError, OSError):
                raw.close()  # the unverified client hung up, as it should

    server = threading.Thread(target=serve, name="gateway-test-tls-server")
    server.start()
    waker = Waker()
    try:
        # No ssl_context: the system trust store does not know our CA.
        with pytest.raises(ssl.SSLCertVerificationError):
            open_stream(
                f"wss://localhost:{port}/",
                ssl_context=None,
                waker=waker,
                should_stop=lambda: False,
                timeout=5.0,
            )
        sock = open_stream(
            f"wss://localhost:{port}/",
            ssl_context=client_ctx,
            waker=waker,
            should_stop=lambda: False,
            timeout=5.0,
        )
        with sock:
            assert isinstance(sock, ssl.SSLSocket)
            deadline = time.monotonic() + 5.0
            data = None
            while data is None and time.monotonic() < deadline:
                data = recv_some(sock)
            assert data == b"hi"
    finally:
        stop.set()
        server.join(5.0)
        waker.close()


def test_open_stream_is_abandoned_when_the_owner_stops(listener: socket.socket) -> None:
    # A TLS handshake that never answers: only the stop request can end it early.
    port = listener.getsockname()[1]
    waker = Waker()
    stopping = threading.Event()

    def stop_soon() -> None:
        stopping.set()
        waker.wake()

    timer = threading.Timer(0.1, stop_soon)
    timer.start()
    try:
        with pytest.raises(TransportClosedError):
            open_stream(
                f"wss://localhost:{port}/",
                ssl_context=None,
                waker=waker,
                should_stop=stopping.is_set,
                timeout=30.0,
            )
    finally:
        timer.join()
        waker.close()
        accepted, _ = listener.accept()
        accepted.close()


def test_open_stream_times_out(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    waker = Waker()
    try:
        with pytest.raises(TransportTimeoutError):
            open_stream(
                f"wss://localhost:{port}/",
                ssl_context=None,
                waker=waker,
                should_stop=lambda: False,
                timeout=0.2,
            )
    finally:
        waker.close()
        accepted, _ = listener.accept()
        accepted.close()


# -- the leak checker itself ------------------------------------------------------------


def test_the_leak_checker_sees_a_left_thread_and_a_left_socket() -> None:
    check = LeakCheck()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="gateway-test-leftover")
    thread.start()
    left = socket.socket()
    try:
        threads, sockets = check.leaks()
        assert threads == [thread]
        assert sockets == {f"{left.fileno()}:{os.readlink(f'/proc/self/fd/{left.fileno()}')}"}
    finally:
        stop.set()
        thread.join()
        left.close()
    assert check.leaks() == ([], set())


def test_limiter_grants_waiters_of_one_bucket_in_shard_id_order() -> None:
    clock = FakeClock()
    poll = lambda _: time.sleep(0.001)  # noqa: E731 - the test moves the clock
    limiter = InProcessIdentifyLimiter(1, window=5.0, clock=clock, sleep=poll)
    limiter.acquire(9)  # takes the only bucket for one window
    threads = [
        threading.Thread(target=limiter.acquire, args=(shard_id,), name=f"gateway-test-{shard_id}")
        for shard_id in (3, 1, 2, 0)  # they ask out of order
    ]
    for t in threads:
        t.start()
    while len(limiter._queue) < 4:
        time.sleep(0.001)
    for _ in range(4):
        granted = len(limiter.history)
        with clock.lock:
            clock.now += 5.0
        while len(limiter.history) == granted:
            time.sleep(0.001)
    for t in threads:
        t.join()
    assert [(g.shard_id, g.at) for g in limiter.history] == [
        (9, 100.0),
        (0, 105.0),
        (1, 110.0),
        (2, 115.0),
        (3, 120.0),
    ]
