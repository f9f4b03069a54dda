"""Heartbeater: a table of (time, action, expected)."""

from __future__ import annotations

import pytest

from gateway_proto import Heartbeater


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
