"""The status server thread on a blocking cluster: it reads only what I/O threads publish."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from gateway_proto import Activity, UpdatePresence
from gateway_proto.errors import InvalidCommandError
from gateway_status import StatusServerError, start_status_thread
from gateway_sync import Cluster, Gateway, ShardState
from gateway_testing import FakeGateway

from .conftest import TOKEN, check_process_totals, process_totals, samples, shard_value


def _wait(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sync_metrics_and_probes_follow_the_shards() -> None:
    with FakeGateway(
        token=TOKEN, shards=2, max_concurrency=2, heartbeat_interval=1.0
    ).run_in_thread() as fake:
        cluster = Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513)
        with cluster, start_status_thread(cluster, "127.0.0.1", 0) as status:
            assert httpx.get(status.url + "readyz").status_code == 503
            cluster.spawn([0, 1], shard_count=2)
            shards = list(cluster.shards.values())
            _wait(lambda: all(s.state is ShardState.READY for s in shards))
            assert httpx.get(status.url + "readyz").status_code == 200
            # Connections are numbered in arrival order, not by shard: pick by IDENTIFY.
            next(
                c
                for c in fake.connections
                if not c.closed and c.identifies and c.identifies[0]["shard"][0] == 0
            ).drop()
            _wait(lambda: sum(s.counters.resumes for s in shards) == 1)
            _wait(lambda: all(s.state is ShardState.READY for s in shards))
            _wait(lambda: shards[0].counters.reconnect_codes == {("connection_lost", 0): 1})
            # Refused on the I/O thread (over 4096 bytes), counted for the caller.
            with pytest.raises(InvalidCommandError):
                shards[1].send(UpdatePresence(activities=[Activity(name="x" * 5000)]))
            counters = [s.counters for s in sorted(shards, key=lambda s: s.id)]
            before = process_totals(counters)
            parsed = samples(httpx.get(status.url + "metrics").text)
            after = process_totals(counters)
            check_process_totals(parsed, before, after)
            for shard in shards:
                c = shard.counters
                sid = shard.id
                assert shard_value(parsed, "gateway_shard_state", shard.id, state="ready") == 1
                assert shard_value(parsed, "gateway_dispatches_total", sid) == c.dispatches
                reconnects = {
                    (dict(labels)["cause"], int(dict(labels)["code"])): v
                    for (name, labels), v in parsed.items()
                    if name == "gateway_reconnects_total" and ("shard", str(sid)) in labels
                }
                assert (
                    reconnects
                    == c.reconnect_codes
                    == ({("connection_lost", 0): 1} if sid == 0 else {})
                )
                assert shard_value(parsed, "gateway_commands_queued", sid) == c.commands_queued
                refused = shard_value(parsed, "gateway_commands_refused_total", sid)
                assert refused == c.commands_refused == sid
                waited = shard_value(parsed, "gateway_command_rate_limit_wait_seconds_total", sid)
                assert waited == c.rate_limit_wait
                assert shard_value(parsed, "gateway_identifies_total", shard.id) == c.identifies
                assert shard_value(parsed, "gateway_resumes_total", shard.id) == c.resumes
                assert shard_value(parsed, "gateway_connections_total", shard.id) == c.connections
            assert httpx.get(status.url + "livez").json() == {"dead_shards": [], "live": True}
        # Closed: the port is free again, and a scrape now is refused, not hung.
        with pytest.raises(httpx.ConnectError):
            httpx.get(status.url + "metrics", timeout=2)


def test_sync_server_refuses_a_port_in_use_with_a_typed_error() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        cluster = Cluster(Gateway(TOKEN, api_base="http://127.0.0.1:9"), intents=513)
        with pytest.raises(StatusServerError, match="in use"):
            start_status_thread(cluster, "127.0.0.1", port)
    finally:
        busy.close()


def test_every_dispatch_the_payload_types_know_is_its_own_label() -> None:
    from gateway_proto.payloads import DISPATCH_EVENTS
    from gateway_status import dispatch_label

    assert [n for n in DISPATCH_EVENTS if dispatch_label(n) != n] == []
    assert dispatch_label("CHANNEL_INFO") == "CHANNEL_INFO"
    assert dispatch_label("NOT_A_DISCORD_EVENT") == "other"
