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


def test_the_c_kind_takes_the_item_when_anext_is_called(kind: Any) -> None:
    # Documented: C pops in __anext__() (its awaitable is reused only once nobody
    # else holds it), Python when the coroutine runs. Each awaitable gives one item.
    items = _items(kind, [1, 2, 3])
    first, second = items.__anext__(), items.__anext__()
    if kind is PyBufferedAnext:
        assert (_result(second), _result(first)) == (1, 2)
    else:
        assert first is not second
        assert (_result(second), _result(first)) == (2, 1)
    assert _result(items.__anext__()) == 3
