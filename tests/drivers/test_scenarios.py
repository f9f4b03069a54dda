"""Driver scenarios, shared by every driver (see ``adapter.py``), on loopback.

Each scenario runs once per adapter (anyio on asyncio, anyio on trio, the blocking
driver): the fake gateway scripts Discord's side, the adapter runs the driver, and
the assertions are about order and counts only, never about elapsed time.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import ssl
from typing import Any

import anyio
import pytest
import trustme

from gateway_proto import errors
from gateway_proto.commands import Status, UpdatePresence, UpdateVoiceState
from gateway_proto.events import CloseCause, Closed
from gateway_testing import FakeGateway

from .adapter import TOKEN, DriverAdapter, Running

pytestmark = pytest.mark.anyio

# Short heartbeats make zombies show up fast; the fake's grace is one interval.
INTERVAL = 0.25


def fake(**options: Any) -> FakeGateway:
    options.setdefault("heartbeat_interval", INTERVAL)
    return FakeGateway(token=TOKEN, **options)


async def dispatch_messages(gw: FakeGateway, numbers: range, shard_id: int = 0) -> None:
    for n in numbers:
        await gw.dispatch("MESSAGE_CREATE", {"n": n, "content": f"message {n}"}, shard_id=shard_id)


def assert_exactly_once_in_order(run: Running, count: int, shard_id: int = 0) -> None:
    numbers = [s.data["n"] for s in run.dispatches("MESSAGE_CREATE", shard_id=shard_id)]
    assert numbers == list(range(count))
    sequences = [s.sequence or 0 for s in run.dispatches(shard_id=shard_id)]
    assert sequences == sorted(set(sequences)), "a dispatch was duplicated or reordered"


def closes(run: Running) -> list[Closed]:
    return [s.data for s in run.seen if s.name == "close"]


async def test_hello_identify_ready_dispatches(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with fake() as gw, driver.start_shard(gw) as run:
        ready = await run.wait_for("READY")
        await dispatch_messages(gw, range(5))
        await run.wait_for("MESSAGE_CREATE", count=5)
        assert_exactly_once_in_order(run, 5)
        conn = gw.connections[0]
        identify = conn.identifies[0]
        assert identify["token"] == TOKEN
        assert (identify["shard"], identify["intents"]) == ([0, 1], 513)
        assert conn.compress == "zlib-stream"
        shard = run.shard()
        assert shard.session.session_id == ready.data["session_id"]
        assert shard.seq == run.dispatches()[-1].sequence
        names = [s.name for s in run.seen]
        assert names.index("open") < names.index("READY") < names.index("MESSAGE_CREATE")
        assert "connect" in names
        assert (shard.counters.identifies, shard.counters.resumes) == (1, 0)
        sent = [s.data for s in run.seen if s.name == "send"]
        assert sent
        assert all(TOKEN not in repr(payload) for payload in sent)
    driver_logs = [r for r in caplog.records if r.name.startswith("gateway_")]
    assert driver_logs
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_zombie_resumes_and_replays_exactly_once(driver: DriverAdapter) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await dispatch_messages(gw, range(5))
        await run.wait_for("MESSAGE_CREATE", count=5)
        gw.connections[0].stop_acking()
        # While the client decides it is talking to a zombie, events keep coming;
        # the ones it misses are replayed after RESUME.
        await dispatch_messages(gw, range(5, 10))
        await gw.wait_for_connection(1)
        await run.wait_for("RESUMED")
        await dispatch_messages(gw, range(10, 15))
        await run.wait_for("MESSAGE_CREATE", count=15)
        assert_exactly_once_in_order(run, 15)
        assert [c.cause for c in closes(run)] == [CloseCause.ZOMBIE]
        assert gw.connections[0].close_code not in (1000, 1001)
        assert gw.connections[1].resumed
        counters = run.shard().counters
        assert (counters.identifies, counters.resumes) == (1, 1)
        assert counters.reconnects == {"zombie": 1}


async def test_op7_reconnect_resumes(driver: DriverAdapter) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await dispatch_messages(gw, range(3))
        await run.wait_for("MESSAGE_CREATE", count=3)
        await gw.connections[0].reconnect()
        await run.wait_for("RESUMED")
        await dispatch_messages(gw, range(3, 6))
        await run.wait_for("MESSAGE_CREATE", count=6)
        assert_exactly_once_in_order(run, 6)
        assert gw.connections[1].resumed
        assert gw.connections[1].path == gw.options.resume_path
        assert run.shard().counters.reconnects == {"reconnect_requested": 1}


@pytest.mark.parametrize("resumable", [True, False])
async def test_op9_invalid_session(driver: DriverAdapter, resumable: bool) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await gw.connections[0].invalid_session(resumable=resumable)
        await gw.wait_for_connection(1, timeout=10)
        if resumable:
            await run.wait_for("RESUMED", timeout=10)
            assert gw.connections[1].resumed
        else:
            # A new session: identified again, through the identify limiter.
            await run.wait_for("READY", count=2, timeout=10)
            assert not gw.connections[1].resumed
            assert len(gw.connections[1].identifies) == 1
            assert [shard for _, shard in run.identify_log] == [0, 0]
        counters = run.shard().counters
        assert counters.identifies == (1 if resumable else 2)
        assert counters.resumes == (1 if resumable else 0)
        assert counters.reconnects == {"invalid_session": 1}


async def test_disconnect_before_start_stops_the_first_run_before_it_connects(
    driver: DriverAdapter,
) -> None:
    # Regression (docs/drivers.md's single shard: start_soon(connect), then
    # disconnect()): a disconnect() before the shard started was dropped, and the
    # run it was meant to stop went on for ever.
    async with fake() as gw, driver.start_shard(gw, disconnect_first=True) as run:
        assert await run.wait_stopped() is None
        assert gw.connections == []
        assert run.shard().state.value == "stopped"
        assert [s.name for s in run.seen].count("disconnect") == 1
        await run.connect_again()  # the request was used up: this run goes on
        await run.wait_for("READY")
        assert len(gw.connections) == 1


async def test_disconnect_while_stopped_does_not_stop_the_next_run(
    driver: DriverAdapter,
) -> None:
    # Regression: disconnect() on a stopped shard left a stop request behind, and
    # the next run stopped at its first close instead of reconnecting.
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await gw.connections[0].reconnect()  # op 7: resume, don't stop
        await run.wait_for("RESUMED")
        await run.disconnect(4000)  # a real stop, the session stays resumable
        assert [s.name for s in run.seen].count("disconnect") == 1
        await run.disconnect(4000)  # the shard is stopped: nothing to do
        await run.connect_again()
        await run.wait_for("RESUMED", count=2)
        await gw.connections[2].reconnect()
        await run.wait_for("RESUMED", count=3)
        assert [c.cause for c in closes(run)] == [
            CloseCause.RECONNECT_REQUESTED,
            CloseCause.REQUESTED,
            CloseCause.RECONNECT_REQUESTED,
        ]
        assert [s.name for s in run.seen].count("disconnect") == 1
        assert all(conn.resumed for conn in gw.connections[1:])
        assert run.shard().state.value == "ready"


FATAL = {
    4004: errors.AuthenticationFailedError,
    4010: errors.InvalidShardError,
    4011: errors.ShardingRequiredError,
    4012: errors.InvalidApiVersionError,
    4013: errors.InvalidIntentsError,
    4014: errors.DisallowedIntentsError,
}


@pytest.mark.parametrize("code", sorted(FATAL))
async def test_fatal_close_raises_and_does_not_reconnect(driver: DriverAdapter, code: int) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await gw.connections[0].close(code)
        error = await run.wait_stopped()
        assert type(error) is FATAL[code]
        assert isinstance(error, errors.FatalCloseError)
        assert error.code == code
        assert TOKEN not in str(error)
        assert len(gw.connections) == 1
        assert run.shard().state.value == "stopped"
        assert [s.name for s in run.seen].count("disconnect") == 1


async def test_bad_token_is_refused_by_rest_with_a_typed_error(driver: DriverAdapter) -> None:
    async with FakeGateway(token="another-token") as gw, driver.start_shard(gw) as run:
        error = await run.wait_stopped()
        assert type(error).__name__ == "InvalidTokenError"
        assert error is not None
        assert TOKEN not in str(error)
        assert gw.connections == []


async def test_dropped_tcp_connection_resumes(driver: DriverAdapter) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await dispatch_messages(gw, range(3))
        await run.wait_for("MESSAGE_CREATE", count=3)
        await gw.connections[0].drop()
        await dispatch_messages(gw, range(3, 6))  # buffered for the resume
        await run.wait_for("RESUMED")
        await run.wait_for("MESSAGE_CREATE", count=6)
        assert_exactly_once_in_order(run, 6)
        assert gw.connections[1].resumed
        assert [c.cause for c in closes(run)] == [CloseCause.CONNECTION_LOST]


async def test_tls_with_a_trusted_test_ca(driver: DriverAdapter) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with fake(ssl_context=server) as gw, driver.start_shard(gw, ssl_context=client) as run:
        assert gw.gateway_url.startswith("wss://")
        await run.wait_for("READY")
        await dispatch_messages(gw, range(2))
        await run.wait_for("MESSAGE_CREATE", count=2)
        assert_exactly_once_in_order(run, 2)


async def test_tls_verification_is_on_by_default(driver: DriverAdapter) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    # REST is trusted, the gateway is not: the default context must refuse the cert.
    async with (
        fake(ssl_context=server) as gw,
        driver.start_shard(gw, ssl_context=None, rest_verify=client) as run,
    ):
        await run.wait_for("error")
        assert not any(conn.identifies for conn in gw.connections)
        assert run.shard().state.value in ("connecting", "reconnecting")


async def test_cluster_identifies_bucket_by_bucket(driver: DriverAdapter) -> None:
    window = 0.3
    # The limiter measures the window from each IDENTIFY's send, plus IDENTIFY_MARGIN
    # (0.1 s) for the way to the server; the fake measures arrivals. On a CI machine
    # running the whole suite on two cores, one IDENTIFY's arrival was delayed more
    # than the margin behind the next, and the fake refused the next (op 9): so the
    # fake enforces a window 0.1 s shorter, and the client's own spacing is checked
    # against the full window below.
    # Heartbeats every 2 s: with the default 0.25 s, a loaded CI machine can miss an ACK,
    # and the zombie shard's second connection resumes instead of identifying.
    gw = fake(
        shards=8, max_concurrency=2, identify_window=window - 0.1, heartbeat_interval=2.0
    )
    async with gw, driver.start_cluster(gw, 8, identify_window=window) as run:
        await run.wait_for("READY", count=8, timeout=20)
        log = run.identify_log
        assert sorted(shard for _, shard in log) == list(range(8))
        for bucket in (0, 1):
            times = sorted(at for at, shard in log if shard % 2 == bucket)
            assert len(times) == 4
            assert all(b - a >= window - 1e-6 for a, b in itertools.pairwise(times))
        # The fake enforces the window too: it never had to refuse an identify (op 9).
        assert sum(conn.identify_rejected for conn in gw.connections) == 0
        identified = [tuple(d["shard"]) for conn in gw.connections for d in conn.identifies]
        assert sorted(identified) == [(shard, 8) for shard in range(8)]


async def test_spawn_auto_takes_the_count_from_rest(driver: DriverAdapter) -> None:
    async with fake(shards=3, max_concurrency=3) as gw, driver.start_cluster(gw, "auto") as run:
        await run.wait_for("READY", count=3)
        shards = sorted(tuple(conn.identifies[0]["shard"]) for conn in gw.connections)
        assert shards == [(0, 3), (1, 3), (2, 3)]
        assert any(r.path.endswith("/gateway/bot") for r in gw.http_requests)
        assert {s.shard_id for s in run.dispatches("READY")} == {0, 1, 2}


async def test_slow_handler_never_delays_heartbeats(driver: DriverAdapter) -> None:
    async with (
        fake() as gw,
        driver.start_shard(gw, slow_handlers={"MESSAGE_CREATE": 3 * INTERVAL}) as run,
    ):
        await run.wait_for("READY")
        beats_before = len(gw.connections[0].heartbeats)
        await dispatch_messages(gw, range(1))
        await run.wait_for("slow_handler_done:MESSAGE_CREATE")
        # Three intervals passed inside the handler: heartbeats went on meanwhile,
        # no zombie close, no 4009, still the first connection.
        assert len(gw.connections[0].heartbeats) >= beats_before + 2
        assert len(gw.connections) == 1
        assert gw.connections[0].server_close_code is None
        assert closes(run) == []
        assert run.shard().counters.reconnects == {}


async def test_request_guild_members(driver: DriverAdapter) -> None:
    # A realistic heartbeat: with a 0.25 s one, the fake's own 120 per 60 s limit
    # (heartbeats count there) would close the connection during the requests.
    gw = fake(members_per_guild=2500, member_request_window=1.0, heartbeat_interval=5.0)
    async with gw, driver.start_shard(gw, intents=513 | 2) as run:
        await run.wait_for("READY")
        guild_id = gw.guilds_for(0, 1)[0]
        members = await run.request_guild_members(guild_id)
        assert len(members) == 2500
        assert len({m["user"]["id"] for m in members}) == 2500
        # Asking again within the window gets RATE_LIMITED; the driver waits and resends.
        again = await run.request_guild_members(guild_id)
        assert len(again) == 2500
        assert run.dispatches("RATE_LIMITED") != []
        requests = gw.connections[0].payloads(8)
        assert len(requests) == 3
        assert len({r["nonce"] for r in requests}) == 2  # a fresh nonce per request


async def test_cluster_events_carry_their_shard(driver: DriverAdapter) -> None:
    async with fake(shards=2, max_concurrency=2) as gw, driver.start_cluster(gw, 2) as run:
        await run.wait_for("READY", count=2)
        await dispatch_messages(gw, range(3), shard_id=1)
        await dispatch_messages(gw, range(2), shard_id=0)
        await run.wait_for("MESSAGE_CREATE", count=5)
        assert_exactly_once_in_order(run, 3, shard_id=1)
        assert_exactly_once_in_order(run, 2, shard_id=0)
        assert {s.shard_id for s in run.seen if s.name == "connect"} == {0, 1}


async def test_spent_session_starts_wait_for_the_reset(driver: DriverAdapter) -> None:
    # One session start left, the budget resets after 1 s: the second shard must
    # wait for the reset (and say so), never identify with the budget spent.
    gw = fake(shards=2, max_concurrency=2, session_start_remaining=1, session_start_reset=1.0)
    async with gw, driver.start_cluster(gw, 2) as run:
        await run.wait_for("READY", count=2)
        waits = [s.data for s in run.seen if s.name == "identify_wait"]
        assert [w.waits_for_reset for w in waits] == [True]
        assert not gw.session_starts_exhausted


async def test_spawn_ids_with_a_pinned_shard_count(driver: DriverAdapter) -> None:
    # GET /gateway/bot recommends 2 shards; this process runs shards 4 and 5 of 16.
    gw = fake(shards=2, max_concurrency=2)
    async with gw, driver.start_cluster(gw, [4, 5], shard_count=16) as run:
        await run.wait_for("READY", count=2)
        shards = sorted(tuple(conn.identifies[0]["shard"]) for conn in gw.connections)
        assert shards == [(4, 16), (5, 16)]
        assert sorted(run.shard(i).id for i in (4, 5)) == [4, 5]


async def test_cluster_asks_for_identifies_in_shard_id_order(driver: DriverAdapter) -> None:
    window = 0.1
    # The fake enforces a shorter window than the client keeps, and heartbeats slowly:
    # see test_cluster_identifies_bucket_by_bucket (arrival jitter on a loaded machine).
    gw = fake(shards=4, max_concurrency=1, identify_window=window / 2, heartbeat_interval=2.0)
    async with gw, driver.start_cluster(gw, 4, identify_window=window) as run:
        await run.wait_for("READY", count=4)
        # One bucket: every identify waits for the one before, in shard id order.
        assert [shard for _, shard in run.identify_log] == [0, 1, 2, 3]
        arrived = [conn.identifies[0]["shard"][0] for conn in gw.connections if conn.identifies]
        assert arrived == [0, 1, 2, 3]
        assert sum(conn.identify_rejected for conn in gw.connections) == 0


def _presences(gw: FakeGateway) -> list[str]:
    return [d["status"] for conn in gw.connections for d in conn.payloads(3)]


async def _until(check: Any, what: str) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)
    assert check(), what


STATUSES: tuple[Status, ...] = ("idle", "dnd", "invisible")
#: Permits a connection to the fake (0.25 s heartbeats) has for commands after its
#: IDENTIFY: the heartbeat reserve is capped at half of 120, and IDENTIFY took one.
ROOM = 59


async def _fill_and_queue(run: Running) -> None:
    """Use up the command budget with voice states, then send the three presences.

    The presences wait in the rate limiter, so they are still queued when the
    connection ends.
    """
    for _ in range(ROOM):
        await run.send(UpdateVoiceState(guild_id=1, channel_id=None))
    for status in STATUSES:
        await run.send(UpdatePresence(status=status))


async def test_a_short_heartbeat_interval_leaves_room_for_commands(driver: DriverAdapter) -> None:
    # Regression: with the 0.2 s heartbeats of README.md's fake, the heartbeat reserve
    # (and the heartbeats counted once more in the log) took the whole budget, and no
    # send() was ever written.
    async with fake(heartbeat_interval=0.2) as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await _until(lambda: len(gw.connections[0].heartbeats) >= 5, "a few heartbeats")
        for status in STATUSES:
            await run.send(UpdatePresence(status=status))
        await _until(lambda: len(_presences(gw)) == 3, "the presences")
        assert _presences(gw) == list(STATUSES)


async def test_queued_commands_survive_a_resume(driver: DriverAdapter) -> None:
    # The presence updates wait for the rate limiter, so they are still queued when
    # the connection drops; the resumed connection (5 s heartbeats) sends them, in
    # order, once each.
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await _fill_and_queue(run)
        first = len(gw.connections[0].payloads(3))
        assert first == 0
        gw.options = dataclasses.replace(gw.options, heartbeat_interval=5.0)
        await gw.connections[0].drop()
        await run.wait_for("RESUMED")
        await _until(lambda: len(_presences(gw)) == 3, "the queued presences")
        assert _presences(gw) == list(STATUSES)
        assert len(gw.connections[1].payloads(3)) == 3 - first


async def test_queued_commands_are_reported_when_the_shard_stops(driver: DriverAdapter) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await _fill_and_queue(run)
        await gw.connections[0].close(4004)
        await run.wait_stopped()
        stopped = (await run.wait_for("disconnect")).data
        sent = _presences(gw)
        assert sent == []
        # Every command either went out or is reported, in order; none vanished.
        assert [*sent, *(c.status for c in stopped.unsent)] == list(STATUSES)
