"""``Cluster`` as an async context manager when the surrounding scope is cancelled."""

from __future__ import annotations

import anyio
import pytest

from gateway_anyio import Cluster, Gateway, InvalidTokenError, ShardState
from gateway_proto.errors import DisallowedIntentsError
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


async def test_events_end_with_the_fatal_error_when_every_shard_stopped() -> None:
    # Regression: with every shard stopped on 4014 (privileged intents not allowed),
    # `async for event in cluster.events()` waited for ever.
    async with FakeGateway(token=TOKEN, shards=2, max_concurrency=2, privileged_intents=0) as gw:
        with anyio.fail_after(10):
            async with Cluster(Gateway(TOKEN, api_base=gw.api_base), intents=513 | 2) as cluster:
                seen = []
                # A consumer that outlives its shards (a GatewayProcess) opts out.
                kept = cluster.events("error", until_closed=True)

                async def consume() -> None:
                    async with cluster.events() as stream:
                        await cluster.spawn(2)
                        async for event in stream:
                            seen.append(event.name)

                with pytest.raises(DisallowedIntentsError) as info:
                    await consume()
                assert info.value is cluster.errors[0]
                assert set(cluster.errors) == {0, 1}
                assert seen.count("error") == 2  # what the stream held came first
                # A stream opened now has nothing to feed it either.
                with pytest.raises(DisallowedIntentsError):
                    await cluster.events().__anext__()
        # It ended only when the cluster closed, without raising.
        assert [event.name async for event in kept] == ["error", "error"]


async def test_events_end_when_every_shard_was_disconnected() -> None:
    async with FakeGateway(token=TOKEN) as gw:
        with anyio.fail_after(10):
            async with Cluster(Gateway(TOKEN, api_base=gw.api_base), intents=513) as cluster:
                names = []
                async with cluster.events() as stream:
                    [shard] = await cluster.spawn(1)
                    async for event in stream:
                        names.append(event.name)
                        if event.name == "READY":
                            await shard.disconnect()
                assert names[-1] == "disconnect"
                assert cluster.errors == {}


async def test_a_refused_token_leaves_the_cluster_as_itself() -> None:
    # Regression: the 401 of GET /gateway/bot left `async with Cluster` wrapped in
    # an ExceptionGroup, so `except InvalidTokenError` missed it.
    async with FakeGateway(token=TOKEN) as gw:
        gateway = Gateway("wrong-token", api_base=gw.api_base)
        with pytest.raises(InvalidTokenError):
            async with Cluster(gateway, intents=513) as cluster:
                await cluster.spawn("auto")


async def test_a_given_url_means_no_lookup() -> None:
    # Regression: Cluster(url=...) still asked GET /gateway/bot (of discord.com by
    # default) and failed after its retries. Here REST points nowhere, and one
    # attempt would fail at once: a lookup would end the test with an error.
    async with FakeGateway(token=TOKEN) as gw:
        gateway = Gateway(TOKEN, api_base="http://127.0.0.1:9/api/v10", max_retries=0)
        with anyio.fail_after(10):
            async with (
                Cluster(gateway, intents=513, url=gw.gateway_url) as cluster,
                cluster.events("READY") as ready,
            ):
                shards = await cluster.spawn("auto")
                event = await ready.__anext__()
        assert [s.id for s in shards] == [0]
        assert event.shard_id == 0
        assert not gateway.fetched
        assert gw.connections[0].identifies[0]["shard"] == [0, 1]


async def test_discord_api_base_points_the_library_at_a_fake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeGateway(token=TOKEN) as gw:
        monkeypatch.setenv("DISCORD_API_BASE", gw.api_base)
        assert Gateway(TOKEN).api_base == gw.api_base
        with anyio.fail_after(10):
            async with Cluster(TOKEN, intents=513) as cluster, cluster.events("READY") as ready:
                await cluster.spawn("auto")
                await ready.__anext__()
        assert cluster.gateway.api_base == gw.api_base
        assert Gateway(TOKEN, api_base="http://elsewhere/api").api_base == "http://elsewhere/api"
