"""Identify concurrency arithmetic: buckets, 5 s windows, the session start budget."""

from __future__ import annotations

import pytest

from gateway_proto import IdentifySchedule, SessionStartLimit


def test_one_identify_per_bucket_per_window() -> None:
    schedule = IdentifySchedule(max_concurrency=2)
    slots = [schedule.reserve(shard, now=0.0) for shard in range(6)]
    assert [(s.at, s.bucket) for s in slots] == [
        (0.0, 0),
        (0.0, 1),
        (5.0, 0),
        (5.0, 1),
        (10.0, 0),
        (10.0, 1),
    ]
    assert not any(s.waits_for_reset for s in slots)
    # Later calls start from their own now when the bucket is long free.
    assert schedule.reserve(0, now=100.0).at == 100.0


def test_sixteen_buckets_start_in_order() -> None:
    schedule = IdentifySchedule(max_concurrency=16)
    slots = [schedule.reserve(shard, now=0.0) for shard in range(32)]
    assert [s.at for s in slots] == [0.0] * 16 + [5.0] * 16
    assert schedule.bucket(17) == 1


def test_session_start_budget_waits_for_the_reset() -> None:
    limit = SessionStartLimit(total=2, remaining=1, reset_after=60.0, max_concurrency=1)
    schedule = IdentifySchedule(limit=limit, now=10.0)
    assert schedule.remaining == 1
    first = schedule.reserve(0, now=10.0)
    assert (first.at, first.waits_for_reset) == (10.0, False)
    second = schedule.reserve(0, now=11.0)
    assert second.waits_for_reset
    assert second.at == 70.0  # the budget resets 60 s after it was fetched
    assert schedule.remaining == 1


def test_from_api_converts_milliseconds() -> None:
    limit = SessionStartLimit.from_api(
        {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 16}
    )
    assert limit == SessionStartLimit(
        total=1000, remaining=999, reset_after=14_400.0, max_concurrency=16
    )
    with pytest.raises(ValueError, match="malformed"):
        SessionStartLimit.from_api({"total": 1})


def test_update_limit_changes_the_bucket_count() -> None:
    schedule = IdentifySchedule(max_concurrency=1)
    schedule.reserve(0, now=0.0)
    schedule.update_limit(
        SessionStartLimit(total=10, remaining=10, reset_after=1.0, max_concurrency=4), now=0.0
    )
    assert schedule.max_concurrency == 4
    assert schedule.reserve(4, now=0.0).at == 0.0


@pytest.mark.parametrize(("concurrency", "window"), [(0, 5.0), (1, 0.0)])
def test_bad_arguments(concurrency: int, window: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        IdentifySchedule(concurrency, window=window)
