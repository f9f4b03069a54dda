"""The Prometheus collector: every metric is read from the shards when scraped.

Theory of operation: the drivers already count what a shard does
(``ShardCounters``, kept by the shard whether or not anyone scrapes). This
collector adds nothing to a shard's path: at scrape time it reads a
:class:`~gateway_status.StatusSource` once and turns the views into metric
families, so the cost of metrics is paid by the scrape alone. Dispatch names are
folded into a bounded label set (:mod:`gateway_status._names`).

Scrape cost: ``prometheus_client`` renders about 5 µs per sample, so a scrape of
1,000 shards is mostly its text rendering, and the number of samples per shard is
what decides it. Hence: a shard's state is one sample (the state it is in, not one
per state with zeros), dispatches by event name and the byte, message and decode
time counters are summed over the process's shards (one sample each, not one per
shard), and each family's samples are built directly, with one label dict per
shard shared by every family that has only the ``shard`` label.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from ._names import dispatch_label
from ._views import ShardView, StatusSource

__all__ = ["GatewayCollector"]

#: Per-shard counters with only the ``shard`` label: (name, ShardCounters field, help).
_SHARD_COUNTERS = (
    ("dispatches", "dispatches", "Dispatches delivered."),
    ("identifies", "identifies", "IDENTIFYs sent (new sessions)."),
    ("resumes", "resumes", "RESUMEs attempted."),
    ("connections", "connections", "Transport connections opened."),
    ("duplicates_dropped", "duplicates_dropped", "Replayed dispatches already delivered, dropped."),
    ("events_dropped", "dropped_events", "Events dropped because a consumer fell behind."),
    ("commands_refused", "commands_refused", "Commands send() refused."),
    (
        "command_rate_limit_wait_seconds",
        "rate_limit_wait",
        "Seconds commands waited for a rate limit permit, summed.",
    ),
)
#: Counters summed over the process's shards (no label): (name, field, help).
_PROCESS_COUNTERS = (
    ("received_bytes", "bytes_received", "Bytes read from the gateway (compressed)."),
    ("decompressed_bytes", "payload_bytes", "Bytes of the messages decoded, decompressed."),
    ("messages_decoded", "messages_decoded", "Gateway messages decoded."),
    ("decode_seconds", "decode_seconds", "Seconds spent turning received bytes into events."),
)


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
        yield from self._process_metrics(views)
        yield from self._limiter_metrics()

    def _shard_metrics(self, views: list[ShardView]) -> Iterator[Metric]:
        p = self._prefix
        # One label dict per shard, shared by the samples of every family that has
        # only the shard label (the exposition only reads them).
        rows = [({"shard": str(view.shard_id)}, view) for view in views]
        state = GaugeMetricFamily(
            f"{p}_shard_state", "The state the shard is in (1; one sample per shard).",
            labels=["shard", "state"],
        )  # fmt: skip
        name = f"{p}_shard_state"
        state.samples = [
            Sample(name, {"shard": labels["shard"], "state": view.state.value}, 1.0)
            for labels, view in rows
        ]
        yield state
        age = GaugeMetricFamily(
            f"{p}_shard_state_seconds", "Seconds since the shard entered its current state.",
            labels=["shard"],
        )  # fmt: skip
        name = age.name
        age.samples = [
            Sample(name, labels, view.state_age)
            for labels, view in rows
            if view.state_age is not None
        ]
        yield age
        latency = GaugeMetricFamily(
            f"{p}_heartbeat_latency_seconds", "The last heartbeat round trip.", labels=["shard"]
        )
        name = latency.name
        latency.samples = [
            Sample(name, labels, view.latency) for labels, view in rows if view.latency is not None
        ]
        yield latency
        queued = GaugeMetricFamily(
            f"{p}_commands_queued", "Commands accepted and not written yet.", labels=["shard"]
        )
        name = queued.name
        queued.samples = [
            Sample(name, labels, view.counters.commands_queued) for labels, view in rows
        ]
        yield queued
        for metric, field, doc in _SHARD_COUNTERS:
            family = CounterMetricFamily(f"{p}_{metric}", doc, labels=["shard"])
            name = f"{p}_{metric}_total"
            family.samples = [
                Sample(name, labels, getattr(view.counters, field)) for labels, view in rows
            ]
            yield family
        reconnects = CounterMetricFamily(
            f"{p}_reconnects", "Reconnects, by cause and close code (0: none).",
            labels=["shard", "cause", "code"],
        )  # fmt: skip
        name = f"{p}_reconnects_total"
        reconnects.samples = [
            Sample(name, {"shard": labels["shard"], "cause": cause, "code": str(code)}, count)
            for labels, view in rows
            for (cause, code), count in sorted(view.counters.reconnect_codes.items())
        ]
        yield reconnects

    def _process_metrics(self, views: list[ShardView]) -> Iterator[Metric]:
        p = self._prefix
        by_event: dict[str, int] = {}
        for view in views:
            for event, count in view.counters.dispatch_names.items():
                label = dispatch_label(event)
                by_event[label] = by_event.get(label, 0) + count
        dispatches = CounterMetricFamily(
            f"{p}_dispatches_by_event",
            "Dispatches delivered by this process's shards, by event name.",
            labels=["event"],
        )
        for label, count in sorted(by_event.items()):
            dispatches.add_metric([label], count)
        yield dispatches
        for metric, field, doc in _PROCESS_COUNTERS:
            total = sum(getattr(view.counters, field) for view in views)
            yield CounterMetricFamily(f"{p}_{metric}", doc, value=total)

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
