"""The blocking driver under fire from other threads while events stream.

Only a shard's I/O thread may touch its ``GatewayConnection``; every other thread
reads what the I/O thread publishes, or posts to its mailbox. These tests hold
threads calling every public property and method of a ``Shard`` and a ``Cluster``
in a tight loop while the fake gateway streams 50,000 dispatches in bursts (hundreds
per socket read, so the core always holds input it has not parsed yet), on the C
hot path and on the pure-Python wire layer. Every dispatch must arrive once, in
order, with no protocol error and no reconnect.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway_proto import _wire
from gateway_proto.commands import UpdatePresence
from gateway_proto.errors import LocalProtocolError
from gateway_proto.events import CloseCause, Closed
from gateway_sync import Cluster, Gateway, GatewayEvent, Shard, ShardState
from gateway_testing import FakeGateway

from ._sync_adapter import LeakCheck, until
from .adapter import TOKEN

#: Dispatches streamed per test.
EVENTS = 50_000
#: The fake's heartbeat interval: a beat or two during the stream, so ``latency``
#: changes, with room for a busy machine (the fake closes after two intervals).
HEARTBEAT = 2.0
#: Threads calling the public API while the events stream.
HAMMERS = 3
#: Seconds the whole stream may take before the test gives up (it takes a few).
STREAM_TIMEOUT = 60.0
#: What hammering may legitimately raise: a full command queue or no connection
#: (LocalProtocolError), a member request that times out behind the rate limit
#: (TimeoutError), start() on a running shard or spawn() of a running id
#: (RuntimeError, ValueError).
EXPECTED = (LocalProtocolError, TimeoutError, RuntimeError, ValueError)


@pytest.fixture(params=["speedups", "python"])
def wire_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run on the C hot path and on the pure-Python wire layer (as tests/proto does)."""
    if request.param == "python":
        monkeypatch.setattr(_wire, "Scanner", None)
    elif _wire.Scanner is None:
        if os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS"):
            pytest.skip("gateway_proto._speedups was not built (SPECTACLES_GATEWAY_NO_EXTENSIONS)")
        pytest.fail("gateway_proto._speedups is missing: was the C extension built?")
    return str(request.param)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a driver thread or a socket open."""
    check = LeakCheck()
    yield
    deadline = time.monotonic() + 5.0
    while any(check.leaks()):
        if time.monotonic() > deadline:
            threads, sockets = check.leaks()
            pytest.fail(f"leaked threads {[t.name for t in threads]}, sockets {sockets}")
        time.sleep(0.01)


class Hammer:
    """Threads that call ``actions`` round-robin until :meth:`stop`; they record surprises."""

    def __init__(self, actions: list[Callable[[], object]]) -> None:
        self.calls = 0
        self.surprises: list[BaseException] = []
        self._actions = actions
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"hammer-{n}")
            for n in range(HAMMERS)
        ]

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop and join the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, offset: int) -> None:
        actions = self._actions
        n = offset
        while not self._stop.is_set():
            try:
                actions[n % len(actions)]()
            except EXPECTED:
                pass
            except BaseException as exc:  # anything else is the bug this file hunts
                self.surprises.append(exc)
            self.calls += 1
            n += 1


class Delivery:
    """What one shard delivered: the streamed messages in order, and any fault."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.sequences: list[int] = []
        self.faults: list[Any] = []
        self.done = threading.Event()

    def on_message(self, event: GatewayEvent) -> None:
        self.numbers.append(event.data["n"])
        assert event.sequence is not None
        self.sequences.append(event.sequence)
        if len(self.numbers) >= EVENTS:
            self.done.set()

    def on_fault(self, event: GatewayEvent) -> None:
        data = event.data
        ended = isinstance(data, Closed) and data.cause is not CloseCause.REQUESTED
        if event.name == "error" or ended:
            self.faults.append(data)
            self.done.set()

    def watch(self, target: Shard | Cluster) -> None:
        """Register the handlers on ``target`` (a cluster: shard 0's events only)."""
        target.on("MESSAGE_CREATE", lambda e: self.on_message(e) if e.shard_id == 0 else None)
        target.on("close", self.on_fault)
        target.on("error", self.on_fault)

    def check(self) -> None:
        """All delivered once, in order, nothing went wrong."""
        assert self.faults == []
        assert len(self.numbers) == EVENTS
        assert self.numbers == list(range(EVENTS))
        assert all(a < b for a, b in itertools.pairwise(self.sequences))


def stream(fake: Any, delivery: Delivery) -> None:
    """Burst the messages to shard 0; wait until it has them (or a fault came)."""
    messages = [("MESSAGE_CREATE", {"n": n}) for n in range(EVENTS)]
    fake.burst(messages, shard_id=0, timeout=STREAM_TIMEOUT)
    delivery.done.wait(STREAM_TIMEOUT)


def noop(event: GatewayEvent) -> None:
    """A handler that does nothing (registered and unregistered by the hammers)."""


def shard_actions(shard: Shard, guild_id: str, *, start: bool) -> list[Callable[[], object]]:
    """Every public property and method of ``shard`` that leaves it running.

    ``start``: include ``start()`` (which restarts a shard that stopped).
    """

    def events() -> None:
        with shard.events("TYPING_START", max_buffer=4) as stream:
            stream.get(timeout=0)

    def on_off() -> None:
        shard.on("TYPING_START", noop)
        shard.off("TYPING_START", noop)

    def members() -> None:
        for _ in shard.request_guild_members(guild_id, user_ids=["1"], timeout=0.5):
            pass

    return [
        lambda: shard.state,
        lambda: shard.session,
        lambda: shard.seq,
        lambda: shard.latency,
        lambda: shard.running,
        lambda: shard.error,
        lambda: repr(shard),
        lambda: (shard.id, shard.gateway, shard.counters.dispatches),
        lambda: dict(shard.counters.reconnects),
        lambda: shard.send(UpdatePresence(status="online"), timeout=1.0),
        members,
        events,
        on_off,
        lambda: shard.wait(timeout=0),
        *([shard.start] if start else []),  # RuntimeError: already running
    ]


def test_a_shard_hammered_from_other_threads_delivers_everything_once(wire_path: str) -> None:
    with FakeGateway(token=TOKEN, heartbeat_interval=HEARTBEAT).run_in_thread() as fake:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        shard = Shard(
            gateway, 0, intents=513, rng=random.Random(0), max_buffer=EVENTS + 1000,
            max_pending_commands=20,
        )
        delivery = Delivery()
        delivery.watch(shard)
        with shard:
            conn = fake.next_connection()
            conn.wait_identified()
            guild_id = fake.fake.guild_ids[0]
            with Hammer(shard_actions(shard, guild_id, start=True)) as hammer:
                stream(fake, delivery)
                hammer.stop()
                delivery.check()
                assert shard.counters.connections == 1  # no reconnect
                # The controls that end a connection, while the hammering goes on.
                with Hammer(shard_actions(shard, guild_id, start=False)) as again:
                    shard.reconnect()
                    second = fake.next_connection()
                    second.wait_identified()
                    assert second.connection.resumed
                    until(lambda: shard.counters.resumes == 1, "the RESUME")
                    until(lambda: shard.state is ShardState.READY, "RESUMED")
                    stopper = threading.Thread(target=shard.disconnect)
                    stopper.start()
                    until(lambda: not shard.running, "the stop")
                    again.stop()
                    stopper.join()
            assert hammer.surprises == again.surprises == []
            assert hammer.calls > 0
        assert shard.state is ShardState.STOPPED


def cluster_actions(cluster: Cluster) -> list[Callable[[], object]]:
    """Every public property and method of ``cluster`` that leaves it running."""

    def shards() -> list[object]:
        return [
            (shard.state, shard.seq, shard.latency, shard.session, repr(shard))
            for shard in cluster.shards.values()
        ]

    def events() -> None:
        with cluster.events("TYPING_START", max_buffer=4) as stream:
            stream.get(timeout=0)

    def on_off() -> None:
        cluster.on("TYPING_START", noop)
        cluster.off("TYPING_START", noop)

    return [
        shards,
        lambda: dict(cluster.errors),
        lambda: (cluster.gateway, cluster.intents, cluster.identify_limiter),
        lambda: cluster.spawn([1], shard_count=2),  # once; then ValueError: running
        events,
        on_off,
    ]


def test_a_cluster_hammered_from_other_threads_delivers_everything_once(wire_path: str) -> None:
    server = FakeGateway(
        token=TOKEN, heartbeat_interval=HEARTBEAT, shards=2, max_concurrency=2, identify_window=0.05
    )
    with server.run_in_thread() as fake:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        cluster = Cluster(gateway, intents=513, identify_window=0.05, max_buffer=EVENTS + 1000)
        delivery = Delivery()
        delivery.watch(cluster)
        with cluster:
            runner = threading.Thread(target=cluster.run)  # returns once closed
            runner.start()
            cluster.spawn([0], shard_count=2)
            fake.next_connection().wait_identified()
            with Hammer(cluster_actions(cluster)) as hammer:
                stream(fake, delivery)
                hammer.stop()
                delivery.check()
                with Hammer(cluster_actions(cluster)) as again:
                    until(lambda: len(cluster.shards) == 2, "the second shard")
                    until(
                        lambda: cluster.shards[1].state is ShardState.READY, "the second shard"
                    )
                    closer = threading.Thread(target=cluster.close)
                    closer.start()
                    runner.join(STREAM_TIMEOUT)
                    again.stop()
                    closer.join()
            assert hammer.surprises == again.surprises == []
            assert cluster.errors == {}
        assert not runner.is_alive()
        assert all(s.state is ShardState.STOPPED for s in cluster.shards.values())
        # Shard 0 kept its first connection; shard 1 made one.
        assert [s.counters.connections for s in cluster.shards.values()] == [1, 1]
