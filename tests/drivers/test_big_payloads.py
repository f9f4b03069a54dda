"""Big payloads and other servers' framing, end to end through every driver and the fake.

The core's own tests (tests/proto/test_big_payloads.py) cover every size in every
compression and encoding; here a smaller matrix checks that the drivers and the
fake carry the same payloads over loopback: just over zstandard's 128 KiB output
chunk, and a GUILD_CREATE of 8 MB, in each compression. Then the fake behaves
like the server reimplementations of PROTOCOL.md 13b: a zstd frame ended after
every message, and zlib-stream messages in 1 KiB continuation fragments.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway_testing import FakeGateway

from .adapter import TOKEN, DriverAdapter, Running
from .test_scenarios import assert_exactly_once_in_order, dispatch_messages

pytestmark = pytest.mark.anyio

# Big payloads take a while to compress and decode on a loaded machine: no
# heartbeat may run out meanwhile (the fake closes after interval + grace).
INTERVAL = 5.0
TIMEOUT = 30.0


def fake(**options: Any) -> FakeGateway:
    options.setdefault("heartbeat_interval", INTERVAL)
    return FakeGateway(token=TOKEN, **options)


def big_guild(size: int) -> dict[str, Any]:
    """A GUILD_CREATE ``d`` of about ``size`` bytes of JSON: random hex, ~2:1 compressible."""
    blob = random.Random(size).randbytes(size // 2).hex()
    return {"id": f"big-{size}", "name": "a big guild", "blob": blob}


async def send_big_then_small(gw: FakeGateway, run: Running, size: int) -> dict[str, Any]:
    """Dispatch a big GUILD_CREATE and a small message after it; wait for both."""
    d = big_guild(size)
    await gw.dispatch("GUILD_CREATE", d, shard_id=0)
    await dispatch_messages(gw, range(1))
    await run.wait_for("MESSAGE_CREATE", timeout=TIMEOUT)
    return d


def assert_no_errors(run: Running) -> None:
    trouble = [s for s in run.seen if s.name in ("close", "error")]
    assert not trouble, trouble


def the_big_one(run: Running, d: dict[str, Any]) -> dict[str, Any]:
    (seen,) = [s for s in run.dispatches("GUILD_CREATE") if s.data.get("id") == d["id"]]
    data: dict[str, Any] = seen.data
    return data


@pytest.mark.parametrize("size", [131_073, 8_000_000])
@pytest.mark.parametrize("compress", ["zlib-stream", "zstd-stream", "payload"])
async def test_big_guild_create(driver: DriverAdapter, compress: str, size: int) -> None:
    """Regression: zstd-stream cut every payload over 128 KiB, then looped on resume."""
    async with fake() as gw, driver.start_shard(gw, compression=compress) as run:
        await run.wait_for("READY", timeout=TIMEOUT)
        d = await send_big_then_small(gw, run, size)
        assert the_big_one(run, d) == d
        assert_exactly_once_in_order(run, 1)
        assert_no_errors(run)
        conn = gw.connections[0]
        if compress == "payload":
            assert conn.payload_compression
        else:
            assert conn.compress == compress


async def test_etf_big_guild_create_over_zstd(driver: DriverAdapter) -> None:
    async with (
        fake() as gw,
        driver.start_shard(gw, encoding="etf", compression="zstd-stream") as run,
    ):
        await run.wait_for("READY", timeout=TIMEOUT)
        d = await send_big_then_small(gw, run, 1_000_000)
        assert the_big_one(run, d) == d
        assert_no_errors(run)


async def test_zstd_frame_ended_after_every_message(driver: DriverAdapter) -> None:
    """A server that ends the zstd frame per message: each message starts a new frame."""
    async with (
        fake(zstd_end_frames=True) as gw,
        driver.start_shard(gw, compression="zstd-stream") as run,
    ):
        await run.wait_for("READY", timeout=TIMEOUT)
        await dispatch_messages(gw, range(5))
        d = big_guild(300_000)
        await gw.dispatch("GUILD_CREATE", d, shard_id=0)
        await dispatch_messages(gw, range(5, 10))
        await run.wait_for("MESSAGE_CREATE", count=10, timeout=TIMEOUT)
        assert the_big_one(run, d) == d
        assert_exactly_once_in_order(run, 10)
        assert_no_errors(run)


async def test_zlib_stream_in_1_kib_fragments(driver: DriverAdapter) -> None:
    """A server that sends zlib-stream messages as 1 KiB continuation fragments."""
    async with fake(fragment_size=1024) as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY", timeout=TIMEOUT)
        d = await send_big_then_small(gw, run, 2_000_000)
        await dispatch_messages(gw, range(1, 10))
        await run.wait_for("MESSAGE_CREATE", count=10, timeout=TIMEOUT)
        assert the_big_one(run, d) == d
        assert_exactly_once_in_order(run, 10)
        assert_no_errors(run)
        assert gw.connections[0].compress == "zlib-stream"
