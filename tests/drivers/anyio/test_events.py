"""The emitter: ordered per-handler delivery, slow consumers, drop-oldest buffers."""

from __future__ import annotations

import logging

import anyio
import pytest

from gateway_anyio import GatewayEvent
from gateway_anyio._events import Emitter, _Signal

pytestmark = pytest.mark.anyio


def event(name: str, n: int) -> GatewayEvent:
    return GatewayEvent(name, 0, {"n": n}, n)


async def test_handlers_get_events_in_order_and_a_slow_one_delays_only_itself() -> None:
    emitter = Emitter(logging.getLogger("test"))
    fast: list[int] = []
    slow: list[int] = []

    @emitter.on("MESSAGE_CREATE")
    async def record(e: GatewayEvent) -> None:
        fast.append(e.data["n"])

    async def sleepy(e: GatewayEvent) -> None:
        await anyio.sleep(0.2)
        slow.append(e.data["n"])

    emitter.on("*", sleepy)
    async with anyio.create_task_group() as tg:
        emitter.attach(tg)
        for n in range(3):
            emitter.emit(event("MESSAGE_CREATE", n))
        with anyio.fail_after(5):
            while len(fast) < 3:
                await anyio.sleep(0.01)
        assert slow == []  # the sleepy handler has not finished its first event yet
        emitter.close()  # workers drain what they hold, then end
    assert fast == slow == [0, 1, 2]


async def test_a_failing_handler_reports_an_error_event_and_goes_on() -> None:
    emitter = Emitter(logging.getLogger("test"))
    errors: list[BaseException] = []
    seen: list[int] = []

    @emitter.on("X")
    def boom(e: GatewayEvent) -> None:
        seen.append(e.data["n"])
        if e.data["n"] == 0:
            raise ValueError("boom")

    emitter.on("error", lambda e: errors.append(e.data))
    async with anyio.create_task_group() as tg:
        emitter.attach(tg)
        emitter.emit(event("X", 0))
        emitter.emit(event("X", 1))
        await anyio.sleep(0.05)
        emitter.close()
    assert seen == [0, 1]
    assert [str(e) for e in errors] == ["boom"]


async def test_a_stream_that_falls_behind_drops_the_oldest_and_counts() -> None:
    drops: list[int] = []
    emitter = Emitter(logging.getLogger("test"), on_drop=drops.append)
    async with emitter.events("X", max_buffer=3) as stream:
        for n in range(5):
            emitter.emit(event("X", n))
        emitter.emit(event("Y", 9))  # filtered out: not buffered, not dropped
        emitter.close()
        got = [e.data["n"] async for e in stream]
    assert got == [2, 3, 4]
    assert stream.dropped == 2
    assert sum(drops) == 2


async def test_wants_answers_follow_handlers_streams_and_parents() -> None:
    # wants() is cached (a shard asks with every heartbeat): every change of a
    # handler, a stream or a parent, here or in the parent, must show at once.
    shard, cluster = Emitter(logging.getLogger("shard")), Emitter(logging.getLogger("cluster"))
    assert not shard.wants("send")

    def handler(e: GatewayEvent) -> None: ...

    shard.on("send", handler)
    assert shard.wants("send")
    shard.off("send", handler)
    assert not shard.wants("send")
    shard.add_parent(cluster)
    assert not shard.wants("send")
    cluster.on("*", handler)
    assert shard.wants("send")
    cluster.off("*", handler)
    assert not shard.wants("send")
    stream = cluster.events("send")
    assert shard.wants("send")
    assert not shard.wants("receive")
    await stream.aclose()
    assert not shard.wants("send")
    cluster.events()
    assert shard.wants("receive")
    cluster.end_streams()
    assert not shard.wants("receive")
    cluster.events(until_closed=True)
    assert shard.wants("receive")
    shard.remove_parent(cluster)
    assert not shard.wants("receive")
    shard.add_parent(cluster)
    assert shard.wants("receive")
    cluster.close()
    assert not shard.wants("receive")


async def test_delivery_follows_handlers_and_streams_changed_between_batches() -> None:
    # Each name's consumers are remembered across batches: every change of a
    # handler or a stream must show in the next batch, and handlers registered
    # before the emitter runs them must not be forgotten once it does.
    emitter = Emitter(logging.getLogger("test"))
    first: list[int] = []
    second: list[int] = []
    emitter.on("MESSAGE_CREATE", lambda e: first.append(e.data["n"]))
    late = emitter.events("MESSAGE_CREATE")
    emitter.emit_batch([event("MESSAGE_CREATE", 0)])  # not attached yet: no worker runs it
    async with anyio.create_task_group() as tg:
        emitter.attach(tg)
        emitter.emit_batch([event("MESSAGE_CREATE", 1), event("TYPING_START", 1)])

        def record(e: GatewayEvent) -> None:
            second.append(e.data["n"])

        emitter.on("MESSAGE_CREATE", record)
        emitter.emit_batch([event("MESSAGE_CREATE", 2)])
        emitter.off("MESSAGE_CREATE", record)
        assert [e.data["n"] for e in late._items] == [0, 1, 2]
        await late.aclose()
        emitter.emit_batch([event("MESSAGE_CREATE", 3)])
        assert not late._items  # nothing came after aclose()
        typing = emitter.events("TYPING_START")
        emitter.emit_batch([event("TYPING_START", 4), event("MESSAGE_CREATE", 4)])
        with anyio.fail_after(5):
            while len(first) < 4:
                await anyio.sleep(0.01)
        emitter.close()
    assert first == [1, 2, 3, 4]
    assert second == [2]
    assert [e.data["n"] async for e in typing] == [4]


async def test_a_signal_keeps_nothing_of_cancelled_waits_and_still_wakes() -> None:
    # A consumer that gives up waiting (a timeout around async for) again and
    # again must not leave a waiter behind each time; a later one still wakes.
    signal = _Signal()
    for _ in range(50):
        with anyio.move_on_after(0):
            await signal.wait()
    assert signal._futures == []
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await signal.wait()
        woken.append(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, 1)
        tg.start_soon(waiter, 2)
        await anyio.wait_all_tasks_blocked()
        signal.set()
    assert sorted(woken) == [1, 2]
    assert signal._futures == []
