"""``Shard`` controls of the blocking driver, against the real core and the fake gateway.

The twin of ``anyio/test_shard_control.py``: the fake runs on its own loop in a
background thread (``FakeGateway.run_in_thread``), the test is plain blocking code.
Every test is checked for leaked driver threads and sockets.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from gateway_proto.commands import UpdatePresence
from gateway_proto.errors import DisallowedIntentsError, LocalProtocolError
from gateway_sync import (
    Cluster,
    EventStream,
    Gateway,
    InProcessIdentifyLimiter,
    InvalidTokenError,
    Shard,
    ShardState,
)
from gateway_testing import FakeGateway

from ._sync_adapter import LeakCheck, until
from .adapter import TOKEN


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a driver thread or a socket open."""
    check = LeakCheck()
    yield
    check.check_blocking()


def new_shard(api_base: str, **options: object) -> Shard:
    gateway = Gateway(TOKEN, api_base=api_base)
    return Shard(gateway, 0, intents=513, rng=random.Random(0), **options)  # type: ignore[arg-type]


def until_ready(shard: Shard, connections: int) -> None:
    """Wait until the shard's session is live on its ``connections``-th connection."""
    until(
        lambda: shard.state is ShardState.READY and shard.counters.connections >= connections,
        f"READY on connection {connections}",
    )


def test_reconnect_resumes_and_reconnect_1000_identifies() -> None:
    with FakeGateway(token=TOKEN, identify_window=0.05).run_in_thread() as fake:
        # The re-identify waits out the limiter's window: keep it short here.
        shard = new_shard(fake.api_base, identify_limiter=InProcessIdentifyLimiter(window=0.1))
        with shard:
            until_ready(shard, 1)
            shard.reconnect()
            until_ready(shard, 2)
            shard.reconnect(1000)
            until_ready(shard, 3)
            first, second, third = fake.connections
            assert (second.query, third.query) == (first.query, first.query)
            assert [c.connection.resumed for c in (second, third)] == [True, False]
            assert (first.close_code, second.close_code) == (4000, 1000)
            assert shard.counters.reconnects == {"requested": 2}
            assert (shard.counters.identifies, shard.counters.resumes) == (2, 1)


def test_disconnect_4000_leaves_a_session_another_shard_resumes() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        first = new_shard(fake.api_base)
        first.start()
        until_ready(first, 1)
        first.disconnect(4000)
        assert first.state is ShardState.STOPPED
        session = first.session
        assert session is not None
        with new_shard(fake.api_base, session=session):
            until(lambda: len(fake.connections) == 2, "the second shard's connection")
            conn = fake.connections[1]
            conn.wait_identified()
            assert conn.connection.resumed
            assert conn.payloads(6)[0]["session_id"] == session.session_id


def test_send_needs_a_connection_and_goes_out_once_live_from_any_thread() -> None:
    with FakeGateway(token=TOKEN, heartbeat_interval=5.0).run_in_thread() as fake:
        shard = new_shard(fake.api_base)
        with pytest.raises(LocalProtocolError, match="not connected"):
            shard.send(UpdatePresence(status="idle"))
        with shard:
            conn = fake.next_connection()
            conn.wait_identified()
            statuses = ["idle", "dnd", "online", "invisible"]
            senders = [
                threading.Thread(target=shard.send, args=(UpdatePresence(status=s),))  # type: ignore[arg-type]
                for s in statuses
            ]
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            conn.wait_for_op(3, count=4)
            assert sorted(d["status"] for d in conn.payloads(3)) == sorted(statuses)


def test_events_iterator_ends_when_the_shard_stops_and_counts_drops() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = new_shard(fake.api_base)
        stream = shard.events("MESSAGE_CREATE", max_buffer=2)
        with shard:
            fake.next_connection().wait_identified()
            for n in range(5):
                fake.dispatch("MESSAGE_CREATE", {"content": str(n)}, shard_id=0)
            until(lambda: shard.counters.dispatches >= 5 + 4, "READY, 3 GUILD_CREATEs, 5 messages")
        got = [event.data["content"] for event in stream]  # ends: the shard stopped
        assert got == ["3", "4"]
        assert stream.dropped == 3
        assert shard.counters.dropped_events == 3


def test_state_changes_carry_reasons() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = new_shard(fake.api_base)
        changes: list[tuple[str, str, str]] = []
        shard.on(
            "state", lambda e: changes.append((e.data.old.value, e.data.new.value, e.data.reason))
        )
        with shard:
            until_ready(shard, 1)
            fake.connections[0].close(4000)
            until_ready(shard, 2)
        path = [(old, new) for old, new, _ in changes]
        assert path[:3] == [
            ("idle", "connecting"),
            ("connecting", "identifying"),
            ("identifying", "ready"),
        ]
        assert ("ready", "reconnecting") in path
        assert ("connecting", "resuming") in path
        assert path[-1] == ("ready", "stopped")
        reconnecting = next(reason for old, new, reason in changes if new == "reconnecting")
        assert "4000" in reconnecting


def test_cluster_close_from_another_thread_joins_everything() -> None:
    with FakeGateway(token=TOKEN, shards=3, max_concurrency=3).run_in_thread() as fake:
        cluster = Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513)
        ready: list[int] = []
        cluster.on("READY", lambda e: ready.append(e.shard_id))

        def close_when_ready() -> None:
            until(lambda: len(ready) == 3, "3 READY")
            cluster.close()

        closer = threading.Thread(target=close_when_ready, name="closer")
        closer.start()
        cluster.run("auto")  # returns once closer closed the cluster
        closer.join()
        assert sorted(ready) == [0, 1, 2]
        assert all(s.state is ShardState.STOPPED for s in cluster.shards.values())
        assert [c.close_code for c in fake.connections] == [1000, 1000, 1000]


def consume(stream: EventStream, timeout: float = 10.0) -> tuple[list[str], BaseException | None]:
    """Iterate ``stream`` on a helper thread; return the names seen and what it raised.

    A stream that never ends fails the test (after closing it, so nothing leaks).
    """
    names: list[str] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            names.extend(event.name for event in stream)
        except Exception as exc:  # the test looks at it
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        stream.close()
        thread.join()
        pytest.fail(f"the event stream did not end; it saw {names}")
    return names, raised[0] if raised else None


def test_cluster_events_end_with_the_fatal_error_when_every_shard_stopped() -> None:
    # Regression: with every shard stopped on 4014, `for event in cluster.events()`
    # waited for ever.
    fake_gateway = FakeGateway(token=TOKEN, shards=2, max_concurrency=2, privileged_intents=0)
    with fake_gateway.run_in_thread() as fake:
        gateway = Gateway(TOKEN, api_base=fake.api_base)
        with Cluster(gateway, intents=513 | 2) as cluster:
            stream = cluster.events()
            cluster.spawn(2)
            names, error = consume(stream)
            assert isinstance(error, DisallowedIntentsError)
            assert error is cluster.errors[0]
            assert names.count("error") == 2
            # An iterator made now has nothing to feed it either.
            assert isinstance(consume(cluster.events())[1], DisallowedIntentsError)


def test_cluster_events_end_when_every_shard_was_disconnected() -> None:
    with (
        FakeGateway(token=TOKEN).run_in_thread() as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
    ):
        stream = cluster.events()
        [shard] = cluster.spawn(1)
        until(lambda: shard.state is ShardState.READY, "READY")
        shard.disconnect()
        names, error = consume(stream)
        assert error is None
        assert names[-1] == "disconnect"



def test_cluster_events_feed_again_once_a_stopped_shard_is_started_by_hand() -> None:
    # Regression: the streams ended when the last shard stopped, and a shard started
    # again by hand fed none of the streams opened after (they ended at once).
    with (
        FakeGateway(token=TOKEN).run_in_thread() as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
    ):
        [shard] = cluster.spawn(1)
        until(lambda: shard.state is ShardState.READY, "READY")
        shard.disconnect()
        until(lambda: shard.state is ShardState.STOPPED, "STOPPED")
        shard.start()
        until(lambda: shard.state is ShardState.READY, "READY again")
        stream = cluster.events("MESSAGE_CREATE")
        fake.dispatch("MESSAGE_CREATE", {"content": "again"})
        event = stream.get(timeout=10)
        assert event is not None
        assert event.data["content"] == "again"

def test_a_refused_token_leaves_the_cluster_as_itself() -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        gateway = Gateway("wrong-token", api_base=fake.api_base)
        with pytest.raises(InvalidTokenError), Cluster(gateway, intents=513) as cluster:
            cluster.spawn("auto")


def test_cluster_with_a_url_asks_no_gateway_bot() -> None:
    # Regression: Cluster(url=...) still asked GET /gateway/bot; here REST points
    # nowhere and one failed attempt ends the lookup with an error.
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        gateway = Gateway(TOKEN, api_base="http://127.0.0.1:9/api/v10", max_retries=0)
        with Cluster(gateway, intents=513, url=fake.gateway_url) as cluster:
            stream = cluster.events("READY")
            [shard] = cluster.spawn("auto")
            assert stream.get(timeout=10) is not None
        assert shard.id == 0
        assert not gateway.fetched
        assert fake.connections[0].payloads(2)[0]["shard"] == [0, 1]


def test_discord_api_base_points_the_library_at_a_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        monkeypatch.setenv("DISCORD_API_BASE", fake.api_base)
        assert Gateway(TOKEN).api_base == fake.api_base
        with Cluster(TOKEN, intents=513) as cluster:
            stream = cluster.events("READY")
            cluster.spawn("auto")
            assert stream.get(timeout=10) is not None
        assert cluster.gateway.api_base == fake.api_base


def test_the_single_shard_pattern_with_a_thread_exits() -> None:
    # disconnect() before the shard's thread got to connect(): remembered, so the
    # connect() that follows returns at once instead of running for ever.
    with FakeGateway(token=TOKEN).run_in_thread() as fake:
        shard = new_shard(fake.api_base)
        shard.disconnect()
        runner = threading.Thread(target=shard.connect)
        runner.start()
        runner.join(10)
        assert not runner.is_alive()
        assert shard.state is ShardState.STOPPED
        assert fake.connections == []
