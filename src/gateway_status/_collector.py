"""The Prometheus collector: every metric is read from the shards when scraped.

Theory of operation: the drivers already count what a shard does
(``ShardCounters``, kept by the shard whether or not anyone scrapes). This
collector adds nothing to a shard's path: at scrape time it reads a
:class:`~gateway_status.StatusSource` once and turns the views into metric
families, so the cost of metrics is paid by the scrape alone. Dispatch names are
folded into a bounded label set (:mod:`gateway_status._names`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway_proto.driver_support import ShardState

from ._names import dispatch_label
from ._views import ShardView, StatusSource

__all__ = ["GatewayCollector"]

_STATES = tuple(ShardState)


class GatewayCollector(Collector):
    """A ``prometheus_client`` collector over one process's shards.

    Register it with a ``CollectorRegistry`` (the status server does, with a
    registry of its own); every metric it yields is described in
    docs/operations.md.

    Args:
        source: where the shards are read from.
        prefix: the metric names' prefix.

    """

    def __init__(self, source: StatusSource, prefix: str = "gateway") -> None:
        self._source = source
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        """Describe nothing: the registry then never collects at registration time."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Read the shards once and yield every metric family."""
        views = self._source.read()
        yield from self._shard_metrics(views)
        yield from self._limiter_metrics()

    def _shard_metrics(self, views: list[ShardView]) -> Iterator[Metric]:
        p = self._prefix
        state = GaugeMetricFamily(
            f"{p}_shard_state", "1 for the state the shard is in, 0 for the others.",
            labels=["shard", "state"],
        )  # fmt: skip
        age = GaugeMetricFamily(
            f"{p}_shard_state_seconds", "Seconds since the shard entered its current state.",
            labels=["shard"],
        )  # fmt: skip
        latency = GaugeMetricFamily(
            f"{p}_heartbeat_latency_seconds", "The last heartbeat round trip.", labels=["shard"]
        )

        def counter(name: str, doc: str, *extra: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"{p}_{name}", doc, labels=["shard", *extra])

        dispatches = counter("dispatches", "Dispatches delivered, by event name.", "event")
        identifies = counter("identifies", "IDENTIFYs sent (new sessions).")
        resumes = counter("resumes", "RESUMEs attempted.")
        connections = counter("connections", "Transport connections opened.")
        reconnects = counter("reconnects", "Reconnects, by cause.", "cause")
        closes = counter("closes", "Connections that ended, by close code (0: none).", "code")
        duplicates = counter(
            "duplicates_dropped", "Replayed dispatches already delivered, dropped."
        )
        dropped = counter("events_dropped", "Events dropped because a consumer fell behind.")
        for view in views:
            shard = str(view.shard_id)
            for each in _STATES:
                state.add_metric([shard, each.value], 1.0 if each is view.state else 0.0)
            if view.state_age is not None:
                age.add_metric([shard], view.state_age)
            if view.latency is not None:
                latency.add_metric([shard], view.latency)
            c = view.counters
            by_label: dict[str, int] = {}
            for name, count in c.dispatch_names.items():
                label = dispatch_label(name)
                by_label[label] = by_label.get(label, 0) + count
            for label, count in sorted(by_label.items()):
                dispatches.add_metric([shard, label], count)
            identifies.add_metric([shard], c.identifies)
            resumes.add_metric([shard], c.resumes)
            connections.add_metric([shard], c.connections)
            for cause, count in sorted(c.reconnects.items()):
                reconnects.add_metric([shard, cause], count)
            for code, count in sorted(c.closes.items()):
                closes.add_metric([shard, str(code)], count)
            duplicates.add_metric([shard], c.duplicates_dropped)
            dropped.add_metric([shard], c.dropped_events)
        yield from (state, age, latency, dispatches, identifies, resumes, connections)
        yield from (reconnects, closes, duplicates, dropped)

    def _limiter_metrics(self) -> Iterator[Metric]:
        p = self._prefix
        limiter = self._source.limiter()
        if limiter is None:
            return
        if limiter.remaining is not None:
            yield GaugeMetricFamily(
                f"{p}_identify_budget_remaining",
                "Session starts left before the budget resets.",
                value=limiter.remaining,
            )
        if limiter.reset_in is not None:
            yield GaugeMetricFamily(
                f"{p}_identify_budget_reset_seconds",
                "Seconds until the session start budget resets.",
                value=limiter.reset_in,
            )
        if limiter.waits is not None:
            yield CounterMetricFamily(
                f"{p}_identify_waits", "Times a shard waited for an identify permit.",
                value=limiter.waits,
            )  # fmt: skip
