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
