"""Heartbeater: a table of (time, action, expected)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_proto import DEFAULT_HEARTBEAT_GRID, ConfigError, Heartbeater
from gateway_proto.heartbeat import MAX_GRID_FRACTION

from .helpers import FixedRandom, make_config, open_connection


def test_first_beat_is_jittered_then_every_interval() -> None:
    heart = Heartbeater(40.0, now=100.0, jitter=0.25)
    assert heart.next_due == 110.0
    assert not heart.is_due(109.9)
    assert heart.is_due(110.0)
    assert not heart.is_zombie()
    heart.beat(110.0)
    assert heart.next_due == 150.0
    assert heart.is_zombie()  # sent, not acknowledged yet
    assert heart.ack(110.3) == pytest.approx(0.3)
    assert not heart.is_zombie()
    assert heart.latency == pytest.approx(0.3)


def test_zombie_after_a_missed_ack() -> None:
    heart = Heartbeater(10.0, now=0.0, jitter=0.0)
    assert heart.is_due(0.0)
    heart.beat(0.0)
    assert heart.is_due(10.0)
    assert heart.is_zombie()


def test_requested_beats_keep_the_schedule_and_their_ack_counts() -> None:
    heart = Heartbeater(10.0, now=0.0, jitter=0.5)
    heart.beat(5.0)
    heart.beat_requested(7.0)
    assert heart.next_due == 15.0
    assert heart.ack(7.5) == pytest.approx(0.5)
    assert not heart.is_zombie()


def test_unsolicited_ack_has_no_latency() -> None:
    heart = Heartbeater(10.0, now=0.0, jitter=0.5)
    assert heart.ack(1.0) is None
    assert heart.latency is None
    heart.beat(5.0)
    assert heart.ack(5.25) == 0.25
    assert heart.ack(5.5) is None
    assert heart.latency == 0.25


@pytest.mark.parametrize(("interval", "jitter"), [(0.0, 0.5), (-1.0, 0.5), (1.0, 1.0), (1.0, -0.1)])
def test_bad_arguments(interval: float, jitter: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Heartbeater(interval, now=0.0, jitter=jitter)


# -- the grid: shards of one process beat together ----------------------------------------


def test_the_grid_moves_each_beat_back_to_a_multiple_of_it() -> None:
    heart = Heartbeater(41.25, now=101.0, jitter=0.5, grid=2.5)
    assert heart.next_due == 120.0  # 121.625 exactly
    heart.beat(120.003)  # the timer fired a little late
    assert heart.next_due == 160.0  # 161.253 exactly: 1.253 s early, on the grid
    heart.beat(160.0)
    assert heart.next_due == 200.0


def test_beats_due_within_one_grid_step_fall_on_the_same_point() -> None:
    hearts = [Heartbeater(41.25, now=now, jitter=0.0, grid=2.5) for now in (50.1, 51.0, 52.4)]
    assert {h.next_due for h in hearts} == {50.0}
    for heart, late in zip(hearts, (0.001, 0.01, 0.1), strict=True):
        heart.beat(50.0 + late)
    assert {h.next_due for h in hearts} == {90.0}


def test_the_grid_is_capped_at_an_eighth_of_the_interval() -> None:
    heart = Heartbeater(0.04, now=0.0, jitter=0.0, grid=2.5)  # a test server's interval
    heart.beat(1.003)
    assert heart.next_due == pytest.approx(1.04)  # 1.043 on a grid of 5 ms


def test_a_grid_of_zero_keeps_the_exact_schedule() -> None:
    heart = Heartbeater(41.25, now=101.0, jitter=0.5)
    assert heart.next_due == 121.625
    heart.beat(121.7)
    assert heart.next_due == pytest.approx(162.95)


@given(
    interval=st.floats(0.001, 3600.0),
    now=st.floats(0.0, 1e9),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
    grid=st.floats(0.0, 1e4),
    late=st.floats(0.0, 10.0),
)
def test_a_beat_is_never_late_nor_more_than_the_grid_early(
    interval: float, now: float, jitter: float, grid: float, late: float
) -> None:
    heart = Heartbeater(interval, now=now, jitter=jitter, grid=grid)
    step = min(grid, interval * MAX_GRID_FRACTION)
    slack = 1e-9 * max(1.0, now)  # float rounding at large clocks
    first = now + interval * min(jitter, 0.9)
    assert first - step - slack <= heart.next_due <= first + slack
    beat_at = max(now, heart.next_due) + late
    heart.beat(beat_at)
    exact = beat_at + interval
    assert exact - step - slack <= heart.next_due <= exact + slack
    assert heart.next_due > beat_at  # the next beat is always ahead: no busy loop


@pytest.mark.parametrize("grid", [-1.0, math.nan])
def test_a_bad_grid_is_refused(grid: float) -> None:
    with pytest.raises(ValueError, match="grid"):
        Heartbeater(10.0, now=0.0, jitter=0.5, grid=grid)
    with pytest.raises(ConfigError, match="heartbeat_grid"):
        make_config(heartbeat_grid=grid)
    with pytest.raises(ConfigError, match="heartbeat_grid"):
        make_config(heartbeat_grid=math.inf)
    with pytest.raises(ConfigError, match="heartbeat_grid"):
        make_config(heartbeat_grid="2.5")


def test_connections_hello_at_different_times_beat_together() -> None:
    config = make_config(heartbeat_grid=DEFAULT_HEARTBEAT_GRID)
    deadlines = []
    for hello_at, jitter in ((100.0, 0.3), (100.5, 0.25), (99.0, 0.3)):
        conn, peer = open_connection(config=config, now=hello_at, rng=FixedRandom(jitter))
        conn.receive_data(peer.hello(41_250), hello_at)
        first = conn.next_deadline()
        assert first is not None
        conn.handle_timeout(first)
        conn.receive_data(peer.ack(), first + 0.05)
        deadlines.append(conn.next_deadline())
    assert deadlines == [150.0, 150.0, 150.0]  # off it: 153.625, 152.0625, 152.625
