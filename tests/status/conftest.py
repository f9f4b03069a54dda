"""Helpers of the status server tests: scrape and parse over real loopback HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "status-token.abcdef.0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse an exposition with prometheus_client's own parser: {(name, labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def shard_value(parsed: dict[Any, float], name: str, shard: int, **labels: str) -> float | None:
    """One shard's sample of ``name`` (with ``labels``), or ``None`` when absent."""
    key = (name, tuple(sorted({"shard": str(shard), **labels}.items())))
    return parsed.get(key)


async def get(url: str) -> httpx.Response:
    """GET ``url`` with a fresh client (no connection reuse across assertions)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.get(url)


#: The traffic counters summed over a process's shards: metric name -> ShardCounters field.
PROCESS_COUNTERS = {
    "gateway_received_bytes_total": "bytes_received",
    "gateway_decompressed_bytes_total": "payload_bytes",
    "gateway_messages_decoded_total": "messages_decoded",
    "gateway_decode_seconds_total": "decode_seconds",
}


def process_totals(counters: list[Any]) -> dict[str, float]:
    """The process-wide sums the collector exports, computed from ``counters`` (shard order)."""
    return {
        name: sum(getattr(c, field) for c in counters) for name, field in PROCESS_COUNTERS.items()
    }


def check_process_totals(
    parsed: dict[Any, float], before: dict[str, float], after: dict[str, float]
) -> None:
    """Each scraped sum lies between the sums read just before and just after the scrape.

    Heartbeats keep the byte, message and decode counters moving while a scrape is
    served: a value read at another moment may differ, but never falls outside.
    """
    for name in PROCESS_COUNTERS:
        assert before[name] <= parsed[(name, ())] <= after[name], name
        assert parsed[(name, ())] > 0, name
