"""``BufferedAnext``: the C base and the Python reference give the same results.

Driven by hand (no event loop): ``async for`` takes ``__anext__()`` and awaits it,
which the interpreter does through the awaitable's send (``coro.send(None)`` below)
or its iterator (``next(awaitable.__await__())``); both ways, both kinds must hand
out the buffered items in order, then defer to ``_wait_next``, and refuse a second
await of the same awaitable. The drivers' streams are tested over both kinds in
tests/drivers/anyio/test_stream_kinds.py.
"""

from __future__ import annotations

import gc
import os
import types
import weakref
from collections import deque
from collections.abc import Awaitable, Generator
from typing import Any, cast

import pytest

from gateway_proto.driver_support import buffers
from gateway_proto.driver_support.buffers import PyBufferedAnext


def _kinds() -> list[Any]:
    if buffers.BufferedAnext is cast(Any, PyBufferedAnext):
        if os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS"):
            return [PyBufferedAnext]
        pytest.fail("gateway_proto._speedups is missing: was the C extension built?")
    return [buffers.BufferedAnext, PyBufferedAnext]


@pytest.fixture(params=_kinds(), ids=lambda kind: kind.__module__.rsplit(".", 1)[-1])
def kind(request: pytest.FixtureRequest) -> Any:
    """The C ``BufferedAnext`` (when built) and the Python reference."""
    return request.param


def _items(kind: Any, values: list[Any]) -> Any:
    class Items(kind):  # type: ignore[misc]
        waits = 0

        def __init__(self) -> None:
            self._items = deque(values)

        async def _wait_next(self) -> Any:
            self.waits += 1
            raise StopAsyncIteration

    return Items()


def _result(awaitable: Awaitable[Any]) -> Any:
    # What ``await`` inside a coroutine does with it: one send, which must finish.
    async def take() -> Any:
        return await awaitable

    coro = take()
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    return stop.value.value


def _next_result(awaitable: Awaitable[Any]) -> Any:
    # The iterator protocol instead (Python 3.12's SEND uses it, so do older tools).
    steps: Generator[Any, None, Any] = awaitable.__await__()
    with pytest.raises(StopIteration) as stop:
        next(steps)
    return stop.value.value


# Items that StopIteration could mangle if the value were passed as its args.
VALUES = [1, None, (2, 3), (), StopIteration("x"), "four"]


@pytest.mark.parametrize("take", [_result, _next_result])
def test_buffered_items_come_out_in_order_then_wait_next_runs(kind: Any, take: Any) -> None:
    items = _items(kind, VALUES)
    got = [take(items.__anext__()) for _ in VALUES]
    assert got == VALUES
    assert got[3] == ()
    assert got[4] is VALUES[4]
    assert items.waits == 0
    coro = items.__anext__()
    with pytest.raises(StopAsyncIteration):
        coro.send(None)
    assert items.waits == 1


def test_an_awaitable_gives_its_item_once(kind: Any) -> None:
    items = _items(kind, ["a", "b"])
    first = items.__anext__()
    assert _result(first) == "a"
    with pytest.raises(RuntimeError):
        _result(first)
    assert _result(items.__anext__()) == "b"


def test_an_awaitable_dropped_unawaited_leaks_nothing(kind: Any) -> None:
    class Item:
        pass

    item = Item()
    ref = weakref.ref(item)
    items = _items(kind, [])
    items._items.append(item)
    awaitable = items.__anext__()
    del item
    if hasattr(awaitable, "close"):
        awaitable.close()  # a coroutine never awaited warns otherwise
    del awaitable, items
    gc.collect()
    assert ref() is None


def test_without_items_set_anext_raises_attribute_error(kind: Any) -> None:
    class Empty(kind):  # type: ignore[misc]
        async def _wait_next(self) -> str:
            return "waited"

    with pytest.raises(AttributeError):
        _result(Empty().__anext__())


def test_async_for_drains_the_items(kind: Any) -> None:
    items = _items(kind, [1, 2, 3])

    async def drain() -> list[Any]:
        return [item async for item in items]

    coro = drain()
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == [1, 2, 3]


# An awaitable takes its item when it first runs, as a coroutine does: one created
# and dropped (a task cancelled before its first step) leaves the item buffered.


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_an_awaitable_dropped_unawaited_takes_nothing(kind: Any) -> None:
    items = _items(kind, ["a", "b"])
    dropped = items.__anext__()
    dropped.close()  # what a never-run coroutine's owner does (no warning then)
    del dropped
    gc.collect()
    assert _result(items.__anext__()) == "a"
    abandoned = items.__anext__()
    del abandoned  # not even closed
    gc.collect()
    assert _result(items.__anext__()) == "b"


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_an_awaitable_thrown_into_before_it_runs_takes_nothing(kind: Any) -> None:
    # asyncio cancels a task that has not started by throwing into its coroutine.
    items = _items(kind, ["a"])
    cancelled = items.__anext__()
    with pytest.raises(KeyError):
        cancelled.throw(KeyError("cancelled"))
    with pytest.raises(RuntimeError):
        _result(cancelled)  # finished, as the coroutine is
    assert _result(items.__anext__()) == "a"


def test_awaitables_take_items_in_the_order_they_run(kind: Any) -> None:
    items = _items(kind, [1, 2, 3])
    first, second = items.__anext__(), items.__anext__()
    assert first is not second
    assert (_result(second), _result(first)) == (1, 2)
    assert _result(items.__anext__()) == 3


@types.coroutine
def _suspend() -> Generator[str, Any, Any]:
    return (yield "suspended")


def _waiting(kind: Any) -> Any:
    # Items whose _wait_next suspends once, then returns what it is sent; it
    # records what is thrown into it and whether it was closed.
    class Waiting(kind):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = deque(["buffered"])
            self.log: list[str] = []

        async def _wait_next(self) -> Any:
            self.log.append("waits")
            try:
                return await _suspend()
            except KeyError as error:
                self.log.append(f"thrown {error.args[0]}")
                return "after throw"
            finally:
                self.log.append("ends")

    return Waiting()


def _delegating(kind: Any, how: str) -> tuple[Any, Any]:
    # An awaitable created while an item was buffered, run once another took it:
    # it must wait as the coroutine does (in _wait_next). ``how`` drives it as the
    # interpreter does from an ``await`` (through the awaitable's send) or by its
    # own methods (what a task or Python 3.12's SEND calls).
    items = _waiting(kind)
    late = items.__anext__()
    assert _result(items.__anext__()) == "buffered"
    if how == "await":

        async def take() -> Any:
            return await late

        driver: Any = take()
    else:
        driver = late.__await__()
    assert driver.send(None) == "suspended"
    assert items.log == ["waits"]
    return items, driver


HOW = ["await", "methods"]


@pytest.mark.parametrize("how", HOW)
def test_an_awaitable_whose_item_went_elsewhere_waits_as_the_coroutine(kind: Any, how: str) -> None:
    items, driver = _delegating(kind, how)
    with pytest.raises(StopIteration) as stop:
        driver.send("sent in")
    assert stop.value.value == "sent in"
    assert items.log == ["waits", "ends"]
    assert not items._items


@pytest.mark.parametrize("how", HOW)
def test_throw_reaches_the_waiting_coroutine(kind: Any, how: str) -> None:
    items, driver = _delegating(kind, how)
    with pytest.raises(StopIteration) as stop:
        driver.throw(KeyError("cancel"))
    assert stop.value.value == "after throw"
    assert items.log == ["waits", "thrown cancel", "ends"]


@pytest.mark.parametrize("how", HOW)
def test_an_exception_the_waiting_coroutine_does_not_catch_comes_out(kind: Any, how: str) -> None:
    items, driver = _delegating(kind, how)
    with pytest.raises(ValueError, match="out"):
        driver.throw(ValueError("out"))
    assert items.log == ["waits", "ends"]
    items._items.append("next")
    assert _result(items.__anext__()) == "next"


@pytest.mark.parametrize("how", HOW)
def test_close_reaches_the_waiting_coroutine(kind: Any, how: str) -> None:
    items, driver = _delegating(kind, how)
    driver.close()
    assert items.log == ["waits", "ends"]
    items._items.append("next")
    assert _result(items.__anext__()) == "next"


def test_a_dropped_waiting_awaitable_closes_its_coroutine(kind: Any) -> None:
    items, driver = _delegating(kind, "methods")
    del driver
    gc.collect()
    assert items.log == ["waits", "ends"]
    items._items.append("next")
    assert _result(items.__anext__()) == "next"
