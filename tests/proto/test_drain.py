"""``EventDrain``: the per-event loop both drivers run, fed bytes, without sockets or clocks."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_proto import Reconnector
from gateway_proto.driver_support import (
    CONNECT,
    HAND_OVER_BYTES,
    HAND_OVER_EVERY,
    RECEIVE,
    SEND,
    ConnectionReactor,
    EventDrain,
    GatewayEvent,
    Reaction,
    ShardCounters,
    ShardState,
    UnsentCommands,
)
from gateway_proto.events import Dispatch

from .helpers import drive, make_config, open_connection


class _Driver:
    """What a driver gives the drain, recording everything in one ordered log."""

    def __init__(self, *, receive: bool = False, listening: frozenset[str] = frozenset()) -> None:
        self.log: list[Any] = []
        self.listening = listening | {RECEIVE} if receive else listening
        self.batches: list[int] = []
        self.counts = 0
        self.counters = ShardCounters()
        self.reconnector = Reconnector(make_config())

    def drain_for(self, conn: Any) -> EventDrain:
        return EventDrain(
            shard="the shard",
            shard_id=3,
            counters=self.counters,
            reconnector=self.reconnector,
            reactor=ConnectionReactor(conn, ready_timeout=5.0),
            unsent=UnsentCommands(),
            hand_over=self.hand_over,
            wants=self.listening.__contains__,
            on_reaction=self.log.append,
            on_counts=self.count,
            clock=lambda: 0.0,
        )

    def hand_over(self, batch: list[GatewayEvent]) -> None:
        self.batches.append(len(batch))
        self.log += list(batch)  # a copy: the drain may not reuse the list, but check order

    def count(self) -> None:
        self.counts += 1

    def names(self) -> list[str]:
        return [
            item.name if isinstance(item, GatewayEvent) else f"reaction:{item.state}"
            for item in self.log
        ]


def _connection_with_ready_and(dispatches: int, driver: _Driver) -> Any:
    """A connection past IDENTIFY with READY and ``dispatches`` received, undrained.

    Returns the connection, its drain and the server's side (for more input).
    """
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    drain = driver.drain_for(conn)
    drain.drain(conn)
    conn.identify(0.0)
    drive(conn, peer)
    data = peer.ready() + b"".join(
        peer.dispatch("MESSAGE_CREATE", {"n": n}) for n in range(dispatches)
    )
    conn.receive_data(data, 1.0)
    return conn, drain, peer


def test_dispatches_go_over_in_batches_in_order_with_the_reaction_before_ready() -> None:
    driver = _Driver()
    conn, drain, _ = _connection_with_ready_and(150, driver)
    assert drain.drain(conn) is False
    events = [item for item in driver.log if isinstance(item, GatewayEvent)]
    dispatches = [e for e in events if e.name in ("READY", "MESSAGE_CREATE")]
    assert [e.name for e in dispatches] == ["READY"] + ["MESSAGE_CREATE"] * 150
    assert [e.data["n"] for e in dispatches[1:]] == list(range(150))
    assert all(e.shard_id == 3 and e.shard == "the shard" for e in dispatches)
    assert all(size <= HAND_OVER_EVERY for size in driver.batches)
    # READY's reaction (state READY, emit CONNECT) comes before READY itself is delivered.
    ready_at = driver.log.index(dispatches[0])
    reactions = [i for i, item in enumerate(driver.log) if isinstance(item, Reaction) and item.emit]
    connect = [i for i in reactions if driver.log[i].emit[0] == CONNECT]
    assert len(connect) == 1
    assert connect[0] < ready_at
    assert driver.log[connect[0]].state is ShardState.READY
    assert driver.counters.dispatches == 151
    assert driver.counters.dispatch_names == {"READY": 1, "MESSAGE_CREATE": 150}
    assert not any(e.name == RECEIVE for e in events)


def test_a_limit_stops_after_that_many_dispatches_and_the_rest_waits() -> None:
    driver = _Driver()
    conn, drain, _ = _connection_with_ready_and(100, driver)
    rounds = 1
    while drain.drain(conn, HAND_OVER_EVERY):
        rounds += 1
    assert rounds == 2  # 101 dispatches: 64, then 37 and the end
    assert driver.counters.dispatches == 101


@pytest.mark.usefixtures("wire_path")
def test_a_limit_also_stops_after_a_step_of_big_dispatches() -> None:
    # Big payloads (a GUILD_CREATE burst) go over a few at a time, so that the
    # consumers free them before more are decoded; in order, none lost.
    driver = _Driver()
    conn, drain, peer = _connection_with_ready_and(0, driver)
    assert drain.drain(conn) is False  # READY
    big = HAND_OVER_BYTES // 2 + 1
    conn.receive_data(
        b"".join(peer.dispatch("GUILD_CREATE", {"n": n, "blob": "x" * big}) for n in range(5)), 2.0
    )
    steps = []
    while True:
        before = driver.counters.dispatches
        more = drain.drain(conn, HAND_OVER_EVERY)
        steps.append(driver.counters.dispatches - before)
        if not more:
            break
    assert steps == [2, 2, 1]  # the second one's bytes pass the bound
    created = [
        e.data["n"]
        for e in driver.log
        if isinstance(e, GatewayEvent) and e.data is not None and e.name == "GUILD_CREATE"
    ]
    assert created == list(range(5))
    # Without a limit nothing bounds a drain.
    conn.receive_data(
        b"".join(peer.dispatch("GUILD_CREATE", {"n": n, "blob": "x" * big}) for n in range(5)), 3.0
    )
    assert drain.drain(conn) is False
    assert driver.counters.dispatch_names["GUILD_CREATE"] == 10


def test_receive_events_are_built_only_when_something_listens() -> None:
    driver = _Driver(receive=True)
    conn, drain, _ = _connection_with_ready_and(2, driver)
    drain.drain(conn)
    received = [e for e in driver.log if isinstance(e, GatewayEvent) and e.name == RECEIVE]
    assert [type(e.data) for e in received][-2:] == [Dispatch, Dispatch]
    assert [e.data.data for e in received][-2:] == [{"n": 0}, {"n": 1}]


def test_ready_reaches_the_reconnector() -> None:
    driver = _Driver()
    conn, drain, _ = _connection_with_ready_and(3, driver)
    driver.reconnector.backoff.attempt = 4
    drain.drain(conn)
    # READY went live: the reconnector reset the backoff.
    assert driver.reconnector.backoff.attempt == 0


def _heartbeat_reactions(
    listening: frozenset[str], driver: _Driver | None = None
) -> list[Reaction]:
    driver = driver or _Driver(listening=listening)
    conn, drain, _ = _connection_with_ready_and(0, driver)
    drain.drain(conn)
    driver.log.clear()
    driver.counts = 0
    deadline = conn.next_deadline()
    assert deadline is not None
    conn.handle_timeout(deadline)  # the heartbeat is due: the core sends it
    drain.drain(conn)
    return [item for item in driver.log if isinstance(item, Reaction)]


def test_a_heartbeats_send_event_goes_only_to_someone_listening() -> None:
    quiet = _heartbeat_reactions(frozenset())
    assert quiet == []  # nothing to do: no reaction is built or handed over
    heard = _heartbeat_reactions(frozenset({SEND}))
    assert [reaction.emit[0] for reaction in heard if reaction.emit] == [SEND]
    assert heard[0].emit is not None
    assert heard[0].emit[1]["op"] == 1


def test_a_quiet_heartbeat_is_counted_once_per_drain() -> None:
    driver = _Driver()
    assert _heartbeat_reactions(frozenset(), driver) == []
    assert driver.counts == 1  # the drain's end, not once more for the heartbeat
    heard = _Driver(listening=frozenset({SEND}))
    assert len(_heartbeat_reactions(frozenset(), heard)) == 1
    assert heard.counts == 2  # before its reaction, and at the end


def test_a_heartbeat_ack_asks_for_nothing_unless_receive_is_heard() -> None:
    for listening, expected in ((frozenset(), []), (frozenset({RECEIVE}), [RECEIVE])):
        driver = _Driver(listening=listening)
        conn, drain, peer = _connection_with_ready_and(0, driver)
        drain.drain(conn)
        driver.log.clear()
        conn.receive_data(peer.ack(), 2.0)
        drain.drain(conn)
        reactions = [item for item in driver.log if isinstance(item, Reaction)]
        assert [r.emit[0] for r in reactions if r.emit] == expected
