"""The status display's state: per-shard views and the events/s counter, pure arithmetic.

:class:`StatusBoard` knows each shard's state, latency, identify wait and last
rejection, and counts events; it writes the progress and status lines from
``now`` alone, so the arithmetic is tested without sleeping.
:class:`~gateway_cli.display.Display` decides when a line is printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ShardView", "StatusBoard"]

#: Above this many shards the status line summarises instead of listing each shard.
_LIST_SHARDS_UP_TO = 8


@dataclass(slots=True)
class ShardView:
    """What the status display knows about one shard.

    Attributes:
        shard_id: the shard's id.
        state: a short state name (``connecting``, ``identifying``, ``ready``, ...).
        latency: the last heartbeat round trip, in seconds.
        ready: whether the session is live: READY or RESUMED arrived, and the shard
            has not left the ``ready`` state since (a reconnecting shard is not ready).
        identify_at: when the shard may identify, while it waits for its bucket.
        rejected: why the server refused the shard's last connection before READY
            (close code and reason), until the shard is ready again.

    """

    shard_id: int
    state: str = "waiting"
    latency: float | None = None
    ready: bool = False
    identify_at: float | None = None
    rejected: str | None = None


@dataclass(slots=True)
class StatusBoard:
    """Per-shard state and an events/s counter, as pure arithmetic on ``now``."""

    shards: dict[int, ShardView] = field(default_factory=dict)
    events: int = 0
    _window_start: float | None = None
    _window_events: int = 0

    @classmethod
    def for_shards(cls, shard_ids: Iterable[int]) -> StatusBoard:
        """Return a board tracking these shard ids."""
        return cls(shards={sid: ShardView(sid) for sid in shard_ids})

    def view(self, shard_id: int) -> ShardView:
        """Return (creating if needed) the view of a shard."""
        view = self.shards.get(shard_id)
        if view is None:
            view = self.shards[shard_id] = ShardView(shard_id)
        return view

    @property
    def ready_count(self) -> int:
        """How many shards are live now (READY or RESUMED, and not left since)."""
        return sum(view.ready for view in self.shards.values())

    @property
    def all_ready(self) -> bool:
        """Whether every tracked shard is ready."""
        return bool(self.shards) and self.ready_count == len(self.shards)

    def count_event(self, now: float) -> None:
        """Count one dispatch received at ``now``."""
        if self._window_start is None:
            self._window_start = now
        self.events += 1
        self._window_events += 1

    def take_rate(self, now: float) -> float:
        """Return events/s since the last call (or the first event), and start over."""
        start = self._window_start
        count = self._window_events
        self._window_start = now
        self._window_events = 0
        if start is None or now <= start:
            return 0.0
        return count / (now - start)

    def progress_line(self, now: float) -> str:
        """Return the identify progress: shards ready and the bucket wait, if any."""
        line = f"identifying: {self.ready_count}/{len(self.shards)} shards ready"
        waits = [
            (view.identify_at - now, view.shard_id)
            for view in self.shards.values()
            if view.identify_at is not None and view.identify_at > now and not view.ready
        ]
        if waits:
            # The earliest wait, ties (to a tenth of a second) going to the lower shard id.
            wait, shard_id = min(waits, key=lambda w: (round(w[0], 1), w[1]))
            line += (
                f"; {len(waits)} waiting for identify buckets "
                f"(next: shard {shard_id} in {wait:.1f} s)"
            )
        rejected = [v for v in self.shards.values() if v.rejected is not None]
        if rejected:
            first = min(rejected, key=lambda v: v.shard_id)
            others = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            line += f"; shard {first.shard_id} rejected: {first.rejected}{others}"
        return line

    def status_line(self, now: float) -> str:
        """Return the compact periodic status, and reset the events/s window."""
        rate = self.take_rate(now)
        head = f"{self.ready_count}/{len(self.shards)} ready · {rate:.1f} events/s"
        views = sorted(self.shards.values(), key=lambda v: v.shard_id)
        if len(views) <= _LIST_SHARDS_UP_TO:
            return head + " · " + " · ".join(_shard_cell(v) for v in views)
        states: dict[str, int] = {}
        for view in views:
            states[view.state] = states.get(view.state, 0) + 1
        latencies = sorted(v.latency for v in views if v.latency is not None)
        cells = [", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
        if latencies:
            median = latencies[len(latencies) // 2]
            cells.append(f"latency median {_ms(median)}, max {_ms(latencies[-1])}")
        return head + " · " + " · ".join(cells)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _shard_cell(view: ShardView) -> str:
    latency = _ms(view.latency) if view.latency is not None else "-"
    state = view.state if view.rejected is None else f"rejected: {view.rejected}"
    return f"#{view.shard_id} {state} {latency}"
