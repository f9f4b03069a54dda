"""``events()`` streams on the C ``BufferedAnext`` and on the Python reference alike.

With the extension built, ``EventStream`` takes a buffered event without running a
coroutine; without it, ``__anext__`` is a coroutine. Both must behave as
docs/drivers.md says: events in order (buffered or waited for), the end of the
iteration once the emitter closes, an error raised after the buffered events,
``aclose``, and a consumer cancelled while it waits losing nothing. Each test runs
on asyncio and trio, with each kind (the Python one is ``EventStream``'s body on
``PyBufferedAnext``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import types
from collections.abc import Awaitable
from typing import Any, cast

import anyio
import pytest

from gateway_anyio import GatewayEvent, _events
from gateway_anyio._events import Emitter, EventStream
from gateway_proto.driver_support import buffers
from gateway_proto.driver_support.buffers import PyBufferedAnext
from gateway_proto.errors import DisallowedIntentsError

pytestmark = pytest.mark.anyio


def _python_stream() -> type[Any]:
    # EventStream's own methods over the Python base (what runs without the extension).
    body = {
        name: value
        for name, value in vars(EventStream).items()
        if name not in {"__dict__", "__weakref__", "__orig_bases__", "__parameters__"}
    }
    return types.new_class("EventStream", (PyBufferedAnext,), exec_body=lambda ns: ns.update(body))


@pytest.fixture(params=["c", "python"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Streams from ``Emitter.events`` on the C base, then on the Python one."""
    if request.param == "python":
        monkeypatch.setattr(_events, "EventStream", _python_stream())
    elif buffers.BufferedAnext is cast(Any, PyBufferedAnext):
        if os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS"):
            pytest.skip("the C extension was not built")
        pytest.fail("gateway_proto._speedups is missing: was the C extension built?")
    return str(request.param)


def event(n: int, name: str = "X") -> GatewayEvent:
    return GatewayEvent(name, 0, n, n)


def _emitter() -> Emitter:
    return Emitter(logging.getLogger("test"))


async def test_the_stream_runs_on_the_kind_asked_for(kind: str) -> None:
    stream = _emitter().events()
    base = PyBufferedAnext if kind == "python" else buffers.BufferedAnext
    assert type(stream).__mro__[1] is base


async def test_events_come_in_order_whether_buffered_or_waited_for(kind: str) -> None:
    emitter = _emitter()
    got: list[int] = []
    async with emitter.events("X") as stream:

        async def consume() -> None:
            async for e in stream:
                got.append(e.data)

        async with anyio.create_task_group() as tg:
            emitter.emit_batch([event(0), event(1), event(2)])
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()  # drained the buffer: now waiting
            for n in range(3, 6):
                emitter.emit(event(n))
                await anyio.wait_all_tasks_blocked()
            emitter.emit_batch([event(6), event(7, "Y"), event(8)])
            emitter.close()
    assert got == [0, 1, 2, 3, 4, 5, 6, 8]


async def test_the_iteration_ends_after_the_buffered_events_and_stays_ended(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit_batch([event(0), event(1)])
    emitter.close()
    assert [e.data async for e in stream] == [0, 1]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_an_error_is_raised_once_after_the_buffered_events(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit_batch([event(0), event(1)])
    error = DisallowedIntentsError(4014, "disallowed intents")
    emitter.end_streams(error)
    got: list[int] = []

    async def consume() -> None:
        async for e in stream:
            got.append(e.data)

    with pytest.raises(DisallowedIntentsError) as raised:
        await consume()
    assert raised.value is error
    assert got == [0, 1]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_aclose_ends_a_waiting_consumer_and_stops_delivery(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    got: list[int] = []

    async def consume() -> None:
        async for e in stream:
            got.append(e.data)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            emitter.emit(event(0))
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            await stream.aclose()  # the consumer returns: the task group can end
    emitter.emit(event(1))
    assert got == [0]
    assert not emitter.wants("X")


async def test_aclose_discards_what_the_stream_held(kind: str) -> None:
    # As its docstring says: a closed stream hands out nothing more, buffered or not.
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit_batch([event(0), event(1)])
    await stream.aclose()
    with anyio.fail_after(5):
        got = [e.data async for e in stream]
    assert got == []


async def _cancelled_while_waiting(awaitable: Awaitable[Any]) -> None:
    # A task awaiting ``awaitable``, cancelled once it waits.
    async def take() -> None:
        await awaitable

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()


async def test_a_consumer_cancelled_while_waiting_loses_nothing(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    with anyio.move_on_after(0.01) as scope:
        await stream.__anext__()
    assert scope.cancelled_caught

    await _cancelled_while_waiting(stream.__anext__())  # nothing is buffered
    emitter.emit_batch([event(0), event(1)])
    emitter.close()
    assert [e.data async for e in stream] == [0, 1]


# An event leaves the buffer when the awaitable from ``__anext__()`` first runs, as
# with a coroutine: bad timing (a task cancelled before its first step) loses nothing.


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_a_task_cancelled_before_it_runs_takes_no_event(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit_batch([event(0), event(1)])
    task = asyncio.create_task(anext(stream))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # wait_for cancelled before it started: its awaitable is dropped, never run.
    waiter = asyncio.create_task(asyncio.wait_for(anext(stream), 5))
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    emitter.close()
    assert [e.data async for e in stream] == [0, 1]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tasks_on_one_stream_take_events_in_the_order_they_run(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit(event(0))
    first = asyncio.create_task(anext(stream))
    second = asyncio.create_task(anext(stream))  # its event is taken by the first
    await asyncio.sleep(0)
    assert first.done()
    assert not second.done()
    emitter.emit(event(1))
    assert ((await first).data, (await second).data) == (0, 1)


async def test_an_awaitable_run_after_its_event_went_elsewhere_waits_for_the_next(
    kind: str,
) -> None:
    # Two awaitables made while one event is buffered, run in the other order: the
    # first to run takes it, the other waits for the next, as coroutines would.
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit(event(0))
    early, late = stream.__anext__(), stream.__anext__()
    got: dict[str, int] = {}

    async def take(name: str, awaitable: Awaitable[GatewayEvent]) -> None:
        got[name] = (await awaitable).data

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take, "late", late)
            await anyio.wait_all_tasks_blocked()
            assert got == {"late": 0}
            tg.start_soon(take, "early", early)
            await anyio.wait_all_tasks_blocked()
            emitter.emit_batch([event(1), event(2)])
    assert got == {"late": 0, "early": 1}
    emitter.close()
    assert [e.data async for e in stream] == [2]


async def test_a_task_cancelled_in_the_awaitables_wait_loses_nothing(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    emitter.emit(event(0))
    early, late = stream.__anext__(), stream.__anext__()
    with anyio.fail_after(5):
        assert (await late).data == 0

    await _cancelled_while_waiting(early)  # nothing buffered now: waits as a coroutine
    emitter.emit_batch([event(1), event(2)])
    emitter.close()
    assert [e.data async for e in stream] == [1, 2]


async def test_two_consumers_waiting_on_one_stream_each_get_an_event(kind: str) -> None:
    emitter = _emitter()
    stream = emitter.events()
    got: list[int] = []

    async def take() -> None:
        got.append((await anext(stream)).data)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            tg.start_soon(take)
            await anyio.wait_all_tasks_blocked()  # both wait: nothing is buffered
            emitter.emit(event(0))
            await anyio.wait_all_tasks_blocked()
            emitter.emit(event(1))
    assert sorted(got) == [0, 1]
