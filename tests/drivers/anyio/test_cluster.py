"""``Cluster`` as an async context manager when the surrounding scope is cancelled."""

from __future__ import annotations

import anyio
import pytest

from gateway_anyio import Cluster, Gateway, ShardState
from gateway_testing import FakeGateway

TOKEN = "test-token.abcdef.0123456789"

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("body_checkpoints", [False, True])
async def test_exit_closes_cleanly_inside_a_cancelled_scope(body_checkpoints: bool) -> None:
    async with FakeGateway(token=TOKEN, heartbeat_interval=0.25) as gw:
        with anyio.CancelScope() as outer:
            async with Cluster(Gateway(TOKEN, api_base=gw.api_base), intents=513) as cluster:
                async with cluster.events("READY") as ready:
                    await cluster.spawn(1)
                    await ready.__anext__()
                outer.cancel()
                if body_checkpoints:
                    await anyio.sleep(10)  # raises the cancellation into __aexit__
            await anyio.lowlevel.checkpoint()  # the scope's cancellation arrives by here
            raise AssertionError("the cancellation must reach the end of the scope")
        # No "cancel scope isn't current": the cluster left its task group, the
        # cancellation ended the scope, and the shard stopped and let go of its socket.
        assert outer.cancelled_caught
        assert cluster.shards[0].state is ShardState.STOPPED
        await gw.wait_for_connection(0)
        with anyio.fail_after(5):
            while not gw.connections[0].closed:
                await anyio.sleep(0.01)
