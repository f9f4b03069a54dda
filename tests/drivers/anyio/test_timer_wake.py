"""``TimerWake``: the timer's sleep ends at its deadline, or sooner only when asked and needed."""

from __future__ import annotations

import math

import anyio
import pytest

from gateway_anyio._timer_wake import TimerWake

pytestmark = pytest.mark.anyio


async def test_the_sleep_ends_on_time_by_itself() -> None:
    wake = TimerWake(lambda: -math.inf)
    deadline = anyio.current_time() + 0.01
    with anyio.fail_after(5):
        assert await wake.sleep_until(deadline) is True
    assert anyio.current_time() >= deadline - 0.005  # the loop may round a hair early
    assert wake.armed == deadline


async def test_set_ends_the_sleep_only_when_needed() -> None:
    asked: list[float] = []
    wake_at = [math.inf]

    def next_wake() -> float:
        asked.append(wake_at[0])
        return wake_at[0]

    wake = TimerWake(next_wake)
    wake.set()  # not sleeping: nothing to ask
    assert asked == []
    results: list[bool] = []

    async def sleeper() -> None:
        results.append(await wake.sleep_until(None))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            wake.set()  # asked, not sooner: it sleeps on
            await anyio.wait_all_tasks_blocked()
            assert results == []
            wake_at[0] = -math.inf
            wake.set()
            wake.set()  # a second wake before it runs is harmless
    assert results == [False]
    assert asked[0] == math.inf


async def test_a_cancelled_sleep_raises_and_leaves_nothing_armed() -> None:
    wake = TimerWake(lambda: -math.inf)
    with anyio.move_on_after(0.01) as scope:
        await wake.sleep_until(anyio.current_time() + 60)
    assert scope.cancelled_caught
    wake.set()  # no sleep to end: nothing happens
    with anyio.fail_after(5):
        assert await wake.sleep_until(anyio.current_time()) is True


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_deadline_moved_later_moves_the_timer_without_a_wake_up() -> None:
    # HELLO before its timeout, READY before the step timer's end: the earliest
    # deadline moves later, and a timer still armed for the old one would wake for
    # nothing once per connection. On asyncio the timer moves instead.
    start = anyio.current_time()
    wake_at = [start + 0.05]
    wake = TimerWake(lambda: wake_at[0])
    results: list[bool] = []

    async def sleeper() -> None:
        results.append(await wake.sleep_until(wake_at[0]))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            assert wake.armed == start + 0.05
            wake_at[0] = start + 60.0
            wake.set()
            assert wake.armed == start + 60.0  # moved, not woken
            await anyio.sleep(0.1)  # past the old deadline
            assert results == []
            wake_at[0] = start + 0.1  # sooner than the armed deadline: woken at once
            wake.set()
    assert results == [False]
