"""The soak harness itself: faults land on a connection the client is live on.

A connection may end without a fault asking for it: under load, a heartbeat ACK the
fake queued behind a long replay (written in 64 fragments a message after a
``fragment`` fault) comes after the client's next heartbeat was due, and the client
closes the connection as a zombie, as it should, and resumes. The next fault of the
schedule must then wait for the client to be back, not fail for want of a
connection (the flaky ``no live connection to inject big into``).
"""

from __future__ import annotations

import pytest

from ._soak import SoakConfig, live_connection, running_soak
from .adapter import DriverAdapter

pytestmark = pytest.mark.anyio


async def test_a_fault_after_an_unscheduled_zombie_close_waits_for_the_client(
    driver: DriverAdapter,
) -> None:
    config = SoakConfig(seed=7, seconds=0, encoding="json", compress=None)
    async with running_soak(driver, config) as state:
        await state.until(lambda: state.ledger.live_marks > 0, "READY", stream=False)
        conn = live_connection(state.gw)
        assert conn is not None
        # The client closes this one itself (no ACK comes), between two faults.
        conn.stop_acking()
        await conn.wait_closed(timeout=10.0)
        await state.inject("big")
        injected_into = int(state.log[-1].split("@")[1])
        assert injected_into > conn.number
        await state.settle()
    assert state.ledger.sessions == [state.ledger.sessions[0]]
    assert any(closed.cause.value == "zombie" for closed in state.ledger.closes)


async def test_back_marks_the_connections_own_resumed_not_a_replayed_one(
    driver: DriverAdapter,
) -> None:
    # A connection dropped during its replay leaves its RESUMED numbered but not
    # written; the next connection's replay carries it, before its own. "The
    # client is back" means the connection's own RESUMED was delivered.
    config = SoakConfig(seed=7, seconds=0, encoding="json", compress=None)
    async with running_soak(driver, config) as state:
        gw = state.gw
        await state.until(lambda: state.ledger.live_marks > 0, "READY", stream=False)
        first = live_connection(gw)
        assert first is not None
        await first.drop()
        # (The fake's own waits, not polling: each wakes before the fake's next step.)
        second = await gw.wait_for_connection(first.number + 1, timeout=10.0)
        second.write_delay = 0.5  # nothing of its replay goes out before the drop
        await second.wait_until(lambda: second.session is not None, timeout=10.0)
        assert second.session is not None
        stale = second.session.seq  # its RESUMED, numbered last
        await second.drop()
        await state.burst(20)  # after the stale RESUMED, for the next replay
        third = await gw.wait_for_connection(second.number + 1, timeout=10.0)

        def stale_delivered() -> bool:
            return any(p.s == stale for p in third.delivered)

        await state.until(stale_delivered, "the stale RESUMED", stream=False)
        session = third.session
        assert session is not None
        own = max(d.s for d in session.buffer if d.t == "RESUMED")
        assert own > stale
        state._back(second)
        assert state._marks[third.number] == own
        await state.until(lambda: state._back(second), "READY/RESUMED", stream=False)
        await state.settle()
