"""``TimerWake``: the timer's sleep ends at its deadline, or sooner only when asked and needed."""

from __future__ import annotations

import anyio
import pytest

from gateway_anyio._timer_wake import TimerWake

pytestmark = pytest.mark.anyio


async def test_the_sleep_ends_on_time_by_itself() -> None:
    wake = TimerWake(lambda armed: True)
    deadline = anyio.current_time() + 0.01
    with anyio.fail_after(5):
        assert await wake.sleep_until(deadline) is True
    assert anyio.current_time() >= deadline - 0.005  # the loop may round a hair early
    assert wake.armed == deadline


async def test_set_ends_the_sleep_only_when_needed() -> None:
    needed: list[float] = []
    answer = [False]

    def is_needed(armed: float) -> bool:
        needed.append(armed)
        return answer[0]

    wake = TimerWake(is_needed)
    wake.set()  # not sleeping: nothing to ask
    assert needed == []
    results: list[bool] = []

    async def sleeper() -> None:
        results.append(await wake.sleep_until(None))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            wake.set()  # asked, not needed: it sleeps on
            await anyio.wait_all_tasks_blocked()
            assert results == []
            answer[0] = True
            wake.set()
            wake.set()  # a second wake before it runs is harmless
    assert results == [False]
    assert needed[0] == float("inf")


async def test_a_cancelled_sleep_raises_and_leaves_nothing_armed() -> None:
    wake = TimerWake(lambda armed: True)
    with anyio.move_on_after(0.01) as scope:
        await wake.sleep_until(anyio.current_time() + 60)
    assert scope.cancelled_caught
    wake.set()  # no sleep to end: nothing happens
    with anyio.fail_after(5):
        assert await wake.sleep_until(anyio.current_time()) is True
