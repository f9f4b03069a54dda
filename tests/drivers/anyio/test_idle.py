"""An idle anyio shard wakes only for its heartbeats (against the fake, counted on trio).

Wake-ups are counted, not timed: trio's instrument API reports every step of every
task, so a test can tell how often the task that runs a shard's timer resumed while
the fake counts the heartbeats it received.
"""

from __future__ import annotations

import random
from collections import Counter

import anyio
import pytest
import trio

from gateway_anyio import Cluster, Gateway, Shard, ShardState
from gateway_testing import FakeGateway

pytestmark = pytest.mark.anyio

TOKEN = "idle-token"


class _Steps(trio.abc.Instrument):
    """Counts the steps of every task, by name."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_an_idle_shards_timer_wakes_once_per_heartbeat() -> None:
    # The timer sleeps until the core's next deadline, the next heartbeat. The
    # ACK that answers a heartbeat moves no deadline, so it must not wake the
    # timer (it did: every read woke it to look at the deadlines again).
    async with FakeGateway(token=TOKEN, heartbeat_interval=0.1, command_limit=10_000) as fake:
        shard = Shard(Gateway(TOKEN, api_base=fake.api_base), 0, intents=513, rng=random.Random(0))
        instrument = _Steps()
        async with anyio.create_task_group() as tg:
            tg.start_soon(shard.connect, name="shard-connect")  # runs the timer
            with anyio.fail_after(10):
                while (
                    shard.state is not ShardState.READY or len(fake.connections[0].heartbeats) < 2
                ):
                    await anyio.sleep(0.01)
                conn = fake.connections[0]
                first = len(conn.heartbeats)
                trio.lowlevel.add_instrument(instrument)
                while len(conn.heartbeats) < first + 6:
                    await anyio.sleep(0.01)
                trio.lowlevel.remove_instrument(instrument)
                beats = len(conn.heartbeats) - first
            await shard.disconnect()
        assert shard.counters.connections == 1  # no reconnect muddled the count
        assert fake.connections[0].close_code == 1000
        # One wake-up per heartbeat, plus at most one at each end of the window.
        assert 0 < instrument.steps["shard-connect"] <= beats + 2, (instrument.steps, beats)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_heartbeats_events_reach_a_listener_added_while_idle() -> None:
    # Nothing listens at first, so heartbeats and ACKs cost no events; a handler
    # added later, on the cluster the shard belongs to, gets the next ones.
    async with FakeGateway(token=TOKEN, heartbeat_interval=0.1, command_limit=10_000) as fake:
        sent: list[int] = []
        received: list[object] = []
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        async with Cluster(gateway, intents=513, rng=random.Random(0)) as cluster:
            await cluster.spawn([0], shard_count=1)
            shard = cluster.shards[0]
            with anyio.fail_after(10):
                while (
                    shard.state is not ShardState.READY or len(fake.connections[0].heartbeats) < 2
                ):
                    await anyio.sleep(0.01)
                cluster.on("send", lambda e: sent.append(e.data["op"]))
                cluster.on("receive", lambda e: received.append(e.data))
                while sent.count(1) < 2 or len(received) < 2:
                    await anyio.sleep(0.01)
        assert set(sent) == {1}  # heartbeats (op 1) only
        assert received
