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


async def test_remove_stops_one_shard_resumably_and_its_id_can_be_spawned_again() -> None:
    async with FakeGateway(token="remove-token", shards=2, max_concurrency=2) as fake:
        gateway = Gateway("remove-token", api_base=fake.api_base)
        async with Cluster(gateway, intents=513) as cluster:
            await cluster.spawn([0, 1], shard_count=2)
            with anyio.fail_after(10):
                while any(s.state is not ShardState.READY for s in cluster.shards.values()):
                    await anyio.sleep(0.01)
            removed = await cluster.remove(0, timeout=5)
            assert set(cluster.shards) == {1}
            assert removed.state is ShardState.STOPPED
            session = removed.session
            assert session is not None
            await cluster.spawn([0], shard_count=2, sessions={0: session})
            with anyio.fail_after(10):
                while cluster.shards[0].state is not ShardState.READY:
                    await anyio.sleep(0.01)
        [first] = [c for c in fake.connections[:2] if c.payloads(2)[0]["shard"] == [0, 2]]
        again = fake.connections[2]
        assert first.close_code == 4000
        assert again.resumed
        assert again.payloads(6)[0]["session_id"] == session.session_id
