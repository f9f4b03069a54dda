"""The status server on an anyio cluster, against the fake gateway, over loopback HTTP."""

from __future__ import annotations

import socket
from functools import partial

import anyio
import pytest

from gateway_anyio import Cluster, Gateway, ShardState
from gateway_proto import Activity, UpdatePresence
from gateway_proto.errors import AuthenticationFailedError, InvalidCommandError
from gateway_status import StatusServerError, dispatch_label, serve_status
from gateway_testing import FakeConnection, FakeGateway

from .conftest import TOKEN, check_process_totals, get, process_totals, samples, shard_value

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


async def _all_ready(cluster: Cluster, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not cluster.shards or any(
            s.state is not ShardState.READY for s in cluster.shards.values()
        ):
            await anyio.sleep(0.01)


def _message(n: int) -> dict[str, str]:
    return {"id": str(1000 + n), "channel_id": "7", "content": f"hello {n}"}


def _live_connection(fake: FakeGateway, shard_id: int) -> FakeConnection:
    """The open connection on which ``shard_id`` identified."""
    return next(
        c
        for c in fake.connections
        if not c.closed and c.identifies and c.identifies[0]["shard"][0] == shard_id
    )


async def test_metrics_equal_the_shards_counters_through_drops_and_reconnects() -> None:
    async with (
        FakeGateway(token=TOKEN, shards=2, max_concurrency=2, heartbeat_interval=1.0) as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
        anyio.create_task_group() as tg,
    ):
        url = await tg.start(serve_status, cluster, "127.0.0.1", 0)
        await cluster.spawn([0, 1], shard_count=2)
        await _all_ready(cluster)
        for n in range(20):
            await fake.dispatch("MESSAGE_CREATE", _message(n), shard_id=n % 2)
        await fake.dispatch("SOMETHING_UNDOCUMENTED", {}, shard_id=0)
        # A dropped connection (resumed), then a server's op 7 (resumed), while scraping.
        first = (await get(url + "metrics")).text
        # Connections are numbered in arrival order, not by shard: pick by IDENTIFY.
        await _live_connection(fake, 0).drop()
        await _all_ready(cluster)
        await _live_connection(fake, 1).reconnect()
        for n in range(10):
            await fake.dispatch("TYPING_START", {"channel_id": "7"}, shard_id=n % 2)
        await _all_ready(cluster)
        with anyio.fail_after(10):
            while sum(s.counters.dispatches for s in cluster.shards.values()) < 2 + 20 + 1 + 10:
                await anyio.sleep(0.01)
        # A command over 4096 bytes encoded is refused by send().
        with pytest.raises(InvalidCommandError):
            await cluster.shards[1].send(UpdatePresence(activities=[Activity(name="x" * 5000)]))
        counters = [cluster.shards[sid].counters for sid in sorted(cluster.shards)]
        before = process_totals(counters)
        response = await get(url + "metrics")
        after = process_totals(counters)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        parsed = samples(response.text)
        assert samples(first)  # the mid-stream scrape parsed too
        for shard in cluster.shards.values():
            c = shard.counters
            sid = shard.id
            assert shard_value(parsed, "gateway_shard_state", sid, state="ready") == 1.0
            # One sample per shard: the state it is in, no zeros for the others.
            assert shard_value(parsed, "gateway_shard_state", sid, state="stopped") is None
            assert shard_value(parsed, "gateway_identifies_total", sid) == c.identifies
            assert shard_value(parsed, "gateway_resumes_total", sid) == c.resumes
            assert shard_value(parsed, "gateway_connections_total", sid) == c.connections
            assert shard_value(parsed, "gateway_events_dropped_total", sid) == c.dropped_events
            dup = shard_value(parsed, "gateway_duplicates_dropped_total", sid)
            assert dup == c.duplicates_dropped
            reconnects = {
                (dict(labels)["cause"], int(dict(labels)["code"])): v
                for (name, labels), v in parsed.items()
                if name == "gateway_reconnects_total" and ("shard", str(sid)) in labels
            }
            assert reconnects == c.reconnect_codes
            assert shard_value(parsed, "gateway_dispatches_total", sid) == c.dispatches
            assert shard_value(parsed, "gateway_commands_queued", sid) == c.commands_queued == 0
            refused = shard_value(parsed, "gateway_commands_refused_total", sid)
            assert refused == c.commands_refused == (1 if sid == 1 else 0)
            waited = shard_value(parsed, "gateway_command_rate_limit_wait_seconds_total", sid)
            assert waited == c.rate_limit_wait
            assert c.resumes == 1
            assert c.connections == 2
            latency = shard_value(parsed, "gateway_heartbeat_latency_seconds", sid)
            assert latency is None or latency >= 0
        # A dropped connection (code 0: none) and an op 7 (4000), each resumed.
        assert cluster.shards[0].counters.reconnect_codes == {("connection_lost", 0): 1}
        assert cluster.shards[1].counters.reconnect_codes == {("reconnect_requested", 4000): 1}
        # By event name, summed over the shards: the server's invented name is
        # labelled "other"; documented names are kept.
        by_event = {
            dict(labels)["event"]: v
            for (name, labels), v in parsed.items()
            if name == "gateway_dispatches_by_event_total"
        }
        expected: dict[str, float] = {}
        for c in counters:
            for event, count in c.dispatch_names.items():
                expected[dispatch_label(event)] = expected.get(dispatch_label(event), 0) + count
        assert by_event == expected
        assert (by_event["other"], by_event["MESSAGE_CREATE"], by_event["TYPING_START"]) == (
            1,
            20,
            10,
        )
        check_process_totals(parsed, before, after)
        assert parsed[("gateway_identify_waits_total", ())] >= 0
        # Commands past the rate limit (60 per minute with 0.2 s heartbeats) wait: queued.
        for _ in range(70):
            await cluster.shards[0].send(UpdatePresence(status="idle"))
        queued = cluster.shards[0].counters.commands_queued
        assert queued > 0
        parsed = samples((await get(url + "metrics")).text)
        assert shard_value(parsed, "gateway_commands_queued", 0) == queued
        tg.cancel_scope.cancel()


async def test_readyz_fails_on_a_fatal_close_and_recovers_once_that_shard_is_gone() -> None:
    async with (
        FakeGateway(token=TOKEN, shards=3, max_concurrency=3, heartbeat_interval=1.0) as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
        anyio.create_task_group() as tg,
    ):
        url = await tg.start(serve_status, cluster, "127.0.0.1", 0)
        not_ready = await get(url + "readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["reason"] == "no shards"
        await cluster.spawn([0, 1, 2], shard_count=3)
        await _all_ready(cluster)
        ready = await get(url + "readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["ready"] is True
        [doomed] = [c for c in fake.connections if c.payloads(2)[0]["shard"] == [1, 3]]
        await doomed.close(4004, "Authentication failed.")
        with anyio.fail_after(1.0):  # within a second
            while (response := await get(url + "readyz")).status_code != 503:
                await anyio.sleep(0.02)
        body = response.json()
        assert body["ready"] is False
        assert list(body["not_ready"]) == ["1"]
        assert "stopped" in body["not_ready"]["1"]
        assert "4004" in body["not_ready"]["1"]
        assert isinstance(cluster.errors[1], AuthenticationFailedError)
        assert (await get(url + "livez")).status_code == 200
        # The process gives the shard up; the others lose their connections and resume.
        await cluster.remove(1)
        for conn in [c for c in fake.connections if not c.closed]:
            await conn.drop()
        with anyio.fail_after(10):
            while (response := await get(url + "readyz")).status_code != 200:
                await anyio.sleep(0.02)
        assert response.json()["shards"] == 2
        await _all_ready(cluster)
        assert all(s.counters.resumes == 1 for s in cluster.shards.values())
        tg.cancel_scope.cancel()


async def test_readyz_tells_a_shard_reconnecting_past_its_grace() -> None:
    async with (
        FakeGateway(token=TOKEN, heartbeat_interval=1.0) as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
        anyio.create_task_group() as tg,
    ):
        url = await tg.start(partial(serve_status, grace=0.0), cluster, "127.0.0.1", 0)
        await cluster.spawn(1)
        await _all_ready(cluster)
        async with fake.unreachable():
            await fake.connections[0].drop()
            with anyio.fail_after(5):
                while (response := await get(url + "readyz")).status_code != 503:
                    await anyio.sleep(0.02)
            assert "grace 0 s" in response.json()["not_ready"]["0"]
        tg.cancel_scope.cancel()


async def test_a_port_in_use_or_a_foreign_address_is_a_typed_error_and_shards_go_on() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        async with (
            FakeGateway(token=TOKEN, heartbeat_interval=1.0) as fake,
            Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
            anyio.create_task_group() as tg,
        ):
            await cluster.spawn(1)
            await _all_ready(cluster)
            with pytest.raises(StatusServerError, match=f"127.0.0.1:{port}: .*in use") as err:
                await tg.start(serve_status, cluster, "127.0.0.1", port)
            assert err.value.port == port
            # 192.0.2.1 (TEST-NET-1) is no address of this machine.
            with pytest.raises(StatusServerError, match=r"192\.0\.2\.1"):
                await tg.start(serve_status, cluster, "192.0.2.1", 0)
            with pytest.raises(StatusServerError, match="unknown address"):
                await tg.start(serve_status, cluster, "no-such-host.invalid", 0)
            with pytest.raises(StatusServerError, match="0-65535"):
                await tg.start(serve_status, cluster, "127.0.0.1", 70000)
            await fake.dispatch("MESSAGE_CREATE", _message(1))
            with anyio.fail_after(5):
                while cluster.shards[0].counters.dispatches < 2:
                    await anyio.sleep(0.01)
            assert cluster.shards[0].state is ShardState.READY
            tg.cancel_scope.cancel()
    finally:
        busy.close()


async def test_the_page_and_its_assets_are_served_and_nothing_else_is() -> None:
    async with (
        FakeGateway(token=TOKEN, heartbeat_interval=1.0) as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
        anyio.create_task_group() as tg,
    ):
        url = await tg.start(partial(serve_status, process="bot-1"), cluster, "127.0.0.1", 0)
        await cluster.spawn(1)
        await _all_ready(cluster)
        page = await get(url)
        assert page.status_code == 200
        assert "/static/status.js" in page.text
        for asset in ("static/status.js", "static/status.css"):
            assert (await get(url + asset)).status_code == 200
        doc = (await get(url + "status.json")).json()
        assert doc["process"] == "bot-1"
        [shard] = doc["shards"]
        assert shard["id"] == 0
        assert shard["state"] == "ready"
        assert TOKEN not in (await get(url + "status.json")).text
        assert TOKEN not in (await get(url + "metrics")).text
        assert (await get(url + "nothing-here")).status_code == 404
        tg.cancel_scope.cancel()
