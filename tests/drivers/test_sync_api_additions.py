"""Issue 11's API on the blocking driver: waiting sends, cluster-wide presence, the
dispatch-only subscription and the one name for compression (the twin of
``anyio/test_api_additions.py``)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from gateway_proto.commands import Activity, UpdatePresence
from gateway_proto.driver_support import IdentifyWait
from gateway_proto.errors import CommandNotSentError, InvalidCommandError, LocalProtocolError
from gateway_sync import ANY_DISPATCH, Cluster, Gateway, GatewayEvent, Shard
from gateway_sync._limiter import IdentifyCancelledError
from gateway_testing import FakeGateway

from .adapter import TOKEN

PRESENCE = UpdatePresence(status="idle", activities=[Activity(name="tests", type=0)])
TOO_BIG = UpdatePresence(activities=[Activity(name="x" * 100, type=0)] * 50)


def new_shard(api_base: str, **options: object) -> Shard:
    gateway = Gateway(TOKEN, api_base=api_base)
    return Shard(gateway, 0, intents=513, rng=random.Random(0), **options)  # type: ignore[arg-type]


@contextmanager
def connected(shard: Shard) -> Iterator[Shard]:
    """Run ``shard`` until the block ends; enter once its session is live."""
    with shard.events("connect") as stream:
        shard.start()
        try:
            assert stream.get(10) is not None, "no session in 10 s"
            yield shard
        finally:
            shard.disconnect()


def test_update_presence_waits_for_the_write() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = new_shard(fake.api_base)
        with connected(shard):
            shard.update_presence(PRESENCE, timeout=10)
            conn = fake.connections[0]
            assert conn.wait_for_op(3).d["status"] == "idle"


class HeldLimiter:
    """An identify limiter that never grants: the session never goes live."""

    def __init__(self) -> None:
        self.asked = threading.Event()

    def acquire(
        self,
        shard_id: int,
        *,
        on_wait: Callable[[IdentifyWait], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.asked.set()
        assert cancel is not None
        cancel.wait()
        raise IdentifyCancelledError


def test_send_and_wait_raises_the_typed_error_when_the_shard_stops_first() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        limiter = HeldLimiter()
        shard = new_shard(fake.api_base, identify_limiter=limiter)
        shard.start()
        outcome: list[BaseException] = []
        try:
            assert limiter.asked.wait(10)

            def waiting() -> None:
                try:
                    shard.send_and_wait(PRESENCE, timeout=10)  # queued until READY: never
                except CommandNotSentError as exc:
                    outcome.append(exc)

            waiter = threading.Thread(target=waiting)
            waiter.start()
            # Stop only once the I/O thread holds the command (queued, not written).
            deadline = time.monotonic() + 10
            while len(shard._unsent) < 1:
                assert time.monotonic() < deadline, "the command was never queued"
                time.sleep(0.01)
        finally:
            shard.disconnect()
        waiter.join(10)
        assert len(outcome) == 1
        assert isinstance(outcome[0], LocalProtocolError)
        assert outcome[0].command == PRESENCE  # type: ignore[attr-defined]


def test_cluster_update_presence_reaches_every_shard_in_one_call() -> None:
    with FakeGateway(token=TOKEN, shards=2, identify_window=0.05).run_in_thread() as fake:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        with Cluster(gateway, intents=513, identify_window=0.05) as cluster:
            with cluster.events("connect") as stream:
                cluster.spawn(2)
                assert stream.get(10) is not None
                assert stream.get(10) is not None
            assert cluster.update_presence(PRESENCE, timeout=10) == [0, 1]
            for conn in fake.connections:
                conn.wait_for_op(3)  # written: the fake reads it in its own time
            assert [len(c.payloads(3)) for c in fake.connections] == [1, 1]
            assert cluster.send(PRESENCE) == [0, 1]
            with pytest.raises(InvalidCommandError):
                cluster.send_and_wait(TOO_BIG)
            with pytest.raises(InvalidCommandError):
                cluster.send(TOO_BIG)


def test_a_dispatch_subscription_gets_each_dispatch_once_by_name() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = new_shard(fake.api_base)
        seen: list[str] = []
        shard.on(ANY_DISPATCH, lambda event: seen.append(event.name))
        with connected(shard), shard.events(ANY_DISPATCH) as stream:
            session = fake.connections[0].wait_identified()
            fake.dispatch("MESSAGE_CREATE", {"guild_id": session.guild_ids[0]})
            while True:
                event: GatewayEvent | None = stream.get(10)
                assert event is not None
                if event.name == "MESSAGE_CREATE":
                    break
                assert event.name in ("READY", "GUILD_CREATE")
        assert seen.count("MESSAGE_CREATE") == 1
        assert set(seen) == {"READY", "GUILD_CREATE", "MESSAGE_CREATE"}


def test_compression_is_the_one_name_and_compress_still_works_with_a_warning() -> None:
    api = "http://127.0.0.1:9/api/v10"
    assert new_shard(api, compression="none")._config.compression is None
    with pytest.warns(DeprecationWarning, match="compression="):
        shard = new_shard(api, compress="zstd-stream")
    assert shard._config.compression == "zstd-stream"
    with pytest.raises(ValueError, match="compression must be"):
        new_shard(api, compression="gzip")
