"""Inline handlers of the blocking driver (``inline_handlers=True``) over loopback.

They run on the shard's I/O thread, so nothing they call may wait for a shard's
I/O thread: ``send()`` from one goes out without the mailbox, what must wait is
refused with ``LocalProtocolError``, and ``disconnect()``/``close()`` return at once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway_proto.commands import UpdatePresence
from gateway_proto.errors import InvalidCommandError, LocalProtocolError
from gateway_sync import Cluster, Gateway, GatewayEvent, Shard, ShardState
from gateway_testing import FakeGateway

from ._sync_adapter import LeakCheck, driver_threads, until
from .adapter import TOKEN


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a driver thread or a socket open."""
    check = LeakCheck()
    yield
    check.check_blocking()


def inline_shard(api_base: str) -> Shard:
    gateway = Gateway(TOKEN, api_base=api_base)
    return Shard(gateway, 0, intents=513, rng=random.Random(0), inline_handlers=True)


def test_inline_handlers_run_on_the_io_thread_in_order() -> None:
    seen: list[tuple[str, str]] = []
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = inline_shard(fake.api_base)
        shard.on(
            "MESSAGE_CREATE",
            lambda event: seen.append((threading.current_thread().name, event.data["content"])),
        )
        with shard:
            fake.next_connection().wait_identified()
            for n in range(300):
                fake.dispatch("MESSAGE_CREATE", {"content": str(n)}, shard_id=0)
            until(lambda: len(seen) == 300, "300 messages")
            assert not [t.name for t in driver_threads() if "handler" in t.name]
    assert [content for _, content in seen] == [str(n) for n in range(300)]
    assert {name for name, _ in seen} == {"gateway-shard-0"}


def test_an_inline_handler_sends_and_what_would_wait_is_refused() -> None:
    outcomes: dict[str, Any] = {}

    def on_message(event: GatewayEvent) -> None:
        shard = event.shard
        assert isinstance(shard, Shard)
        shard.send(UpdatePresence(status="idle"))
        outcomes["sent"] = True
        attempts: dict[str, Callable[[], object]] = {
            "send_and_wait": lambda: shard.send_and_wait(UpdatePresence(status="dnd")),
            "update_presence": lambda: shard.update_presence(UpdatePresence(status="dnd")),
            "request_guild_members": lambda: next(shard.request_guild_members(1)),
            "invalid": lambda: shard.send("not a command"),  # type: ignore[arg-type]
        }
        for what, attempt in attempts.items():
            try:
                attempt()
            except Exception as exc:  # the test looks at each
                outcomes[what] = exc

    with FakeGateway(token=TOKEN, heartbeat_interval=5.0).run_in_thread() as fake:
        shard = inline_shard(fake.api_base)
        shard.on("MESSAGE_CREATE", on_message)
        with shard:
            conn = fake.next_connection()
            conn.wait_identified()
            fake.dispatch("MESSAGE_CREATE", {"content": "go"}, shard_id=0)
            conn.wait_for_op(3)
            until(lambda: len(outcomes) == 5, "the handler's attempts")
            assert [d["status"] for d in conn.payloads(3)] == ["idle"]
    for what in ("send_and_wait", "update_presence", "request_guild_members"):
        assert isinstance(outcomes[what], LocalProtocolError), what
        assert "inline handler" in str(outcomes[what])
    assert isinstance(outcomes["invalid"], InvalidCommandError)
    assert shard.counters.commands_refused == 1


def test_a_failing_inline_handler_is_reported_and_the_rest_go_on() -> None:
    errors: list[BaseException] = []
    handled: list[str] = []

    def flaky(event: GatewayEvent) -> None:
        if event.data["content"] == "0":
            raise ValueError("the handler's own bug")
        handled.append(event.data["content"])

    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = inline_shard(fake.api_base)
        shard.on("MESSAGE_CREATE", flaky)
        shard.on("error", lambda event: errors.append(event.data))
        with shard:
            fake.next_connection().wait_identified()
            for n in range(3):
                fake.dispatch("MESSAGE_CREATE", {"content": str(n)}, shard_id=0)
            until(lambda: len(handled) == 2, "the messages after the failure")
        assert shard.counters.reconnects == {}
    assert handled == ["1", "2"]
    assert [str(error) for error in errors] == ["the handler's own bug"]


def test_disconnect_from_an_inline_handler_stops_the_shard() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = inline_shard(fake.api_base)
        returned = threading.Event()

        def stop(event: GatewayEvent) -> None:
            shard.disconnect()  # would wait for this very thread: it must not
            returned.set()

        shard.on("MESSAGE_CREATE", stop)
        shard.start()
        fake.next_connection().wait_identified()
        fake.dispatch("MESSAGE_CREATE", {"content": "stop"}, shard_id=0)
        assert shard.wait(10.0)
        shard.disconnect()  # joins what is left, from this thread
        assert returned.is_set()
        assert shard.state is ShardState.STOPPED
        assert [c.close_code for c in fake.connections] == [1000]


def test_cluster_inline_handlers_run_on_each_shards_io_thread_and_close_it() -> None:
    threads: dict[int, str] = {}
    refused: list[BaseException] = []
    with FakeGateway(token=TOKEN, shards=2, max_concurrency=2).run_in_thread() as fake:
        cluster = Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513, inline_handlers=True)

        def on_ready(event: GatewayEvent) -> None:
            threads[event.shard_id] = threading.current_thread().name
            if len(threads) < 2:
                return
            # The last READY: every shard takes the command, none is waited for.
            assert sorted(cluster.send(UpdatePresence(status="idle"))) == [0, 1]
            try:
                cluster.update_presence(UpdatePresence(status="dnd"))
            except LocalProtocolError as exc:
                refused.append(exc)
            cluster.close()

        cluster.on("READY", on_ready)
        cluster.run("auto")  # returns once the handler closed the cluster
        assert all(s.state is ShardState.STOPPED for s in cluster.shards.values())
        for conn in fake.connections:
            assert [d["status"] for d in conn.payloads(3)] == ["idle"]
    assert threads == {0: "gateway-shard-0", 1: "gateway-shard-1"}
    assert len(refused) == 1
