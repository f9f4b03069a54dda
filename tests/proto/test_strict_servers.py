"""The core against servers stricter than Discord's documentation (PROTOCOL.md 13b).

One server closes 4000 "Heartbeat expired" when the first heartbeat comes later
than exactly one interval after its HELLO; another counts commands in fixed
windows. Time is a number here: each test walks the connection through minutes of
simulated time and checks what the server would have counted.
"""

from __future__ import annotations

import itertools

import pytest

from gateway_proto import Heartbeater, PayloadSent, UpdatePresence
from gateway_proto.heartbeat import FIRST_BEAT_LATEST
from gateway_testing._session import FixedWindow, SlidingWindow

from .helpers import FixedRandom, drive, events, open_connection, ready_connection


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.9, 0.95, 0.999999, 1.0 - 2**-53])
def test_the_first_heartbeat_leaves_room_for_the_trip_whatever_the_jitter(jitter: float) -> None:
    interval = 41.25
    heart = Heartbeater(interval, now=0.0, jitter=jitter)
    assert heart.next_due == pytest.approx(interval * min(jitter, FIRST_BEAT_LATEST))
    # A tenth of the interval (4.1 s on Discord) is left for HELLO's and the beat's trips.
    assert heart.next_due <= interval - interval / 10 + 1e-9


def test_the_connection_beats_first_within_nine_tenths_of_an_interval() -> None:
    # The worst jitter a random.Random can draw, through the real connection.
    conn, peer = open_connection(rng=FixedRandom(1.0 - 2**-53))
    conn.receive_data(peer.hello(41_250), 100.0)
    events(conn)
    deadline = conn.next_deadline()
    assert deadline is not None
    assert deadline - 100.0 == pytest.approx(41.25 * FIRST_BEAT_LATEST)
    conn.handle_timeout(deadline)
    assert drive(conn, peer) == [{"op": 1, "d": None}]


def _send_times(minutes: int) -> list[float]:
    """Every payload's send time: a bot that sends as many commands as it may."""
    conn, peer = ready_connection(now=0.0, interval_ms=41_250)
    times = [0.0]  # IDENTIFY
    now = 0.0
    while now < minutes * 60.0:
        while len(conn.pending_commands) < 200:  # always more than a window holds
            conn.send(UpdatePresence(status="idle"), now)
        for event in events(conn):
            if isinstance(event, PayloadSent):
                times.append(now)
        for payload in drive(conn, peer):
            if payload["op"] == 1:
                conn.receive_data(peer.ack(), now)
        deadline = conn.next_deadline()
        assert deadline is not None
        now = max(deadline, now)
        conn.handle_timeout(now)
    return times


def test_the_limiter_never_trips_a_fixed_window_or_a_sliding_one() -> None:
    times = _send_times(minutes=5)
    assert len(times) > 5 * 115  # it did send at the limit, minute after minute
    # The fake's enforcement, fed the same times: windows from the first payload...
    for window in (FixedWindow(120, 60.0), SlidingWindow(120, 60.0)):
        assert all(window.hit(t) for t in times)
    # ...and fixed windows at any other phase.
    for phase in (0.001, 7.5, 29.9, 59.999):
        windows = [(t + phase) // 60 for t in times]
        assert max(len(list(g)) for _, g in itertools.groupby(windows)) <= 120
