"""Sharding: which shards to spawn (:func:`plan_shards`, :func:`plan_spawn`), in which order.

:class:`StartOrder` starts each identify bucket's shards one after another, in id order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from .gateway_info import GatewayInfo

#: What ``Cluster.spawn`` takes: a shard count, explicit shard ids, or ``"auto"``.
SpawnSpec = int | Sequence[int] | Literal["auto"]


def plan_spawn(
    spec: SpawnSpec, info: GatewayInfo | None, *, shard_count: int | None = None
) -> tuple[list[int], int, int]:
    """Return ``(shard ids, shard count, max_concurrency)`` for one ``Cluster.spawn``.

    ``info`` is the answer of ``GET /gateway/bot``, or ``None`` when the cluster was
    given a ``url`` and asks nothing: then ``"auto"`` means ``shard_count`` shards
    (default 1), and identifies go one at a time (``max_concurrency`` 1) unless the
    caller's own identify limiter says otherwise.
    """
    if info is None:
        ids, total = plan_shards(spec, 1, shard_count=shard_count)
        return ids, total, 1
    ids, total = plan_shards(spec, info.shards, shard_count=shard_count)
    return ids, total, info.max_concurrency


def plan_shards(
    spec: SpawnSpec, recommended: int | None, *, shard_count: int | None = None
) -> tuple[list[int], int]:
    """Turn a spawn spec into ``(shard ids, shard count)``.

    ``"auto"`` takes ``recommended`` (``shards`` of ``GET /gateway/bot``); an int ``n``
    spawns shards ``0..n-1`` of ``n``; explicit ids run in a total of
    ``recommended`` (or ``max(ids) + 1`` if that is unknown or too small).

    ``shard_count`` pins the total instead, for a process that runs a slice of a
    larger layout (``--shards 4-7/16``): then ``"auto"`` means every shard of
    ``shard_count``, an int ``n`` shards ``0..n-1`` of ``shard_count``, and ids must
    lie below it; ``recommended`` is ignored.

    Raises:
        ValueError: for an empty or invalid spec, or ids outside ``shard_count``.

    """
    if shard_count is not None:
        if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
            raise ValueError(f"shard_count must be a positive int, got {shard_count!r}")
        pinned, _ = plan_shards(spec, shard_count)
        if max(pinned) >= shard_count:
            raise ValueError(f"shard ids {spec!r} do not fit in shard_count={shard_count}")
        return pinned, shard_count
    if spec == "auto":
        if recommended is None or recommended < 1:
            raise ValueError('spawn("auto") needs the recommended shard count')
        return list(range(recommended)), recommended
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ValueError(f"shard count must be at least 1, got {spec}")
        return list(range(spec)), spec
    if isinstance(spec, (str, bytes)):
        raise ValueError(f'spawn takes a count, shard ids or "auto", got {spec!r}')
    ids: list[int] = list(cast("Sequence[int]", spec))
    if not ids or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise ValueError(f"shard ids must be non-negative ints, got {spec!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"shard ids must be unique, got {spec!r}")
    total = max(recommended or 0, max(ids) + 1)
    return sorted(ids), total


class StartOrder:
    """Which spawned shards may start connecting, so identifies are asked for in id order.

    Why: a shard asks for its identify permit after HELLO, so shards started all at
    once ask in whatever order their connections happened to open, and shard 1 may
    identify before shard 0. Discord wants buckets started in order. So per bucket
    (``shard_id % max_concurrency``) shards start one after another: the first of
    every bucket at once, each next one when its predecessor has *passed* its
    identify point (got its permit, or ended its first attempt some other way:
    resumed, failed to connect, stopped). Different buckets never wait for each
    other, and a shard connects while its predecessor's window runs, so a cold
    start takes no longer.

    Args:
        ids: the shard ids to start.
        max_concurrency: the number of identify buckets.

    """

    def __init__(self, ids: Iterable[int], max_concurrency: int) -> None:
        self._max_concurrency = max(1, max_concurrency)
        self._queues: dict[int, deque[int]] = {}
        for shard_id in sorted(ids):
            self._queues.setdefault(shard_id % self._max_concurrency, deque()).append(shard_id)
        self._started: set[int] = set()
        self._passed: set[int] = set()

    def first(self) -> list[int]:
        """Return the shards to start now (the first of each bucket), in id order."""
        heads = sorted(queue.popleft() for queue in self._queues.values() if queue)
        self._started.update(heads)
        return heads

    def passed(self, shard_id: int) -> int | None:
        """Note that ``shard_id`` passed its identify point; return the shard to start next.

        Only the first call per shard counts (re-identifies later are not starts).
        """
        if shard_id not in self._started or shard_id in self._passed:
            return None
        self._passed.add(shard_id)
        queue = self._queues.get(shard_id % self._max_concurrency)
        if not queue:
            return None
        following = queue.popleft()
        self._started.add(following)
        return following

    def pending(self) -> list[int]:
        """Return the shards not started yet, in id order."""
        return sorted(i for queue in self._queues.values() for i in queue)
