"""What the status server knows of a process's shards: plain values read at request time.

Theory of operation: nothing here runs per event. When ``/metrics``, ``/readyz`` or
the page asks, a :class:`StatusSource` reads every shard of a cluster once into a
:class:`ShardView` (state, how long in it, latency, a copy of the counters, the
last close) and the identify limiter into a :class:`LimiterView`. The two drivers
are read differently:

- an anyio shard lives in the event loop the status server runs in, so the reads
  happen between two of the loop's steps and see one consistent moment;
- a blocking shard belongs to its I/O thread: the server thread reads only the
  ``ShardSnapshot`` that thread publishes (one attribute, replaced whole) and the
  shard's counters (plain ints, and dicts copied in one C call under the GIL),
  never the connection.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

import gateway_anyio
import gateway_sync
from gateway_proto.driver_support import ShardCounters, ShardState
from gateway_proto.events import Closed

__all__ = ["LimiterView", "ShardView", "StatusSource", "anyio_source", "sync_source"]

AnyShard = gateway_anyio.Shard | gateway_sync.Shard


@dataclass(frozen=True, slots=True)
class ShardView:
    """One shard at the moment it was read.

    Attributes:
        shard_id: the shard's id.
        state: where it is in its life.
        state_age: seconds since it entered ``state`` (``None``: never changed).
        latency: the last heartbeat round trip in seconds (``None`` before one).
        counters: a copy of the shard's counters.
        last_close: how its last connection ended (``None`` before one did).

    """

    shard_id: int
    state: ShardState
    state_age: float | None
    latency: float | None
    counters: ShardCounters
    last_close: Closed | None


@dataclass(frozen=True, slots=True)
class LimiterView:
    """The process's identify limiter at the moment it was read (fields ``None``: unknown).

    Attributes:
        remaining: session starts left in the budget.
        reset_in: seconds until the budget resets.
        waits: times a shard had to wait for an identify permit.

    """

    remaining: int | None
    reset_in: float | None
    waits: int | None


class _Cluster(Protocol):
    @property
    def shards(self) -> Mapping[int, Any]: ...


def _copy_counters(counters: ShardCounters) -> ShardCounters:
    # Shallow copy, then fresh dicts: later counting never shows through the view.
    copied = copy.copy(counters)
    copied.reconnects = dict(counters.reconnects)
    copied.dispatch_names = dict(counters.dispatch_names)
    copied.closes = dict(counters.closes)
    copied.reconnect_codes = dict(counters.reconnect_codes)
    return copied


def _read_limiter(limiter: object) -> LimiterView | None:
    if limiter is None:
        return None
    remaining = getattr(limiter, "remaining", None)
    reset_in = getattr(limiter, "reset_in", None)
    waits = getattr(limiter, "waits", None)
    return LimiterView(
        remaining if isinstance(remaining, int) else None,
        reset_in if isinstance(reset_in, float) else None,
        waits if isinstance(waits, int) else None,
    )


class StatusSource:
    """Reads a cluster's shards (and its identify limiter) into views, on request.

    Args:
        shards: returns the shards to show (called at every read).
        read: turns one shard into a :class:`ShardView`, given the clock's ``now``.
        clock: the time source the shards' ``since`` times use.
        limiter: returns the identify limiter (or ``None``).
        alive: whether a shard's runner still answers (``/livez``).

    """

    def __init__(
        self,
        shards: Callable[[], list[Any]],
        read: Callable[[Any, float], ShardView],
        clock: Callable[[], float],
        limiter: Callable[[], object] = lambda: None,
        alive: Callable[[Any], bool] = lambda shard: True,
    ) -> None:
        self._shards = shards
        self._read = read
        self.clock = clock
        self._limiter = limiter
        self._alive = alive

    def read(self) -> list[ShardView]:
        """Every shard's view, by shard id."""
        now = self.clock()
        shards = sorted(self._shards(), key=lambda shard: int(shard.id))
        return [self._read(shard, now) for shard in shards]

    def limiter(self) -> LimiterView | None:
        """Read the identify limiter, if the cluster has a limiter that tells."""
        return _read_limiter(self._limiter())

    def dead(self) -> list[int]:
        """Ids of the shards whose runner should run but does not answer."""
        return [int(shard.id) for shard in self._shards() if not self._alive(shard)]


def _read_anyio(shard: gateway_anyio.Shard, now: float) -> ShardView:
    since = shard.state_since
    return ShardView(
        shard.id,
        shard.state,
        None if since is None else max(0.0, now - since),
        shard.latency,
        _copy_counters(shard.counters),
        shard.last_close,
    )


def _read_sync(shard: gateway_sync.Shard, now: float) -> ShardView:
    snapshot = shard._snapshot  # taken once: its fields belong together
    return ShardView(
        shard.id,
        snapshot.state,
        None if snapshot.since == 0.0 else max(0.0, now - snapshot.since),
        snapshot.latency,
        _copy_counters(shard.counters),
        snapshot.last_close,
    )


def _sync_alive(shard: gateway_sync.Shard) -> bool:
    # A shard that should be running has an I/O thread; one that died without
    # stopping the shard is what a liveness probe is for.
    if shard._snapshot.state in (ShardState.IDLE, ShardState.STOPPED):
        return True
    thread = shard._thread
    return thread is not None and thread.is_alive()


def _shards_of(cluster: _Cluster | AnyShard) -> Callable[[], list[Any]]:
    if isinstance(cluster, (gateway_anyio.Shard, gateway_sync.Shard)):
        return lambda: [cluster]
    return lambda: list(cluster.shards.values())


def anyio_source(cluster: gateway_anyio.Cluster | gateway_anyio.Shard) -> StatusSource:
    """Read an anyio ``Cluster`` (or one ``Shard``), in the shards' event loop."""
    return StatusSource(
        _shards_of(cluster),
        _read_anyio,
        anyio.current_time,
        lambda: getattr(cluster, "identify_limiter", None),
    )


def sync_source(cluster: gateway_sync.Cluster | gateway_sync.Shard) -> StatusSource:
    """Read a blocking ``Cluster`` (or one ``Shard``), from any thread."""
    return StatusSource(
        _shards_of(cluster),
        _read_sync,
        time.monotonic,
        lambda: getattr(cluster, "identify_limiter", None),
        _sync_alive,
    )
