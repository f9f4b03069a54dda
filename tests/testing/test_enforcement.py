"""Every rule the fake enforces like Discord, each with its close code (or op 9)."""

from __future__ import annotations

import logging
from typing import Any

import erlpack
import pytest

from gateway_testing import FakeGateway

from .conftest import FAST, connect, identified

pytestmark = pytest.mark.anyio

PROPS = {"os": "linux", "browser": "t", "device": "t"}


async def _close_code_after(fake: FakeGateway, *payloads: Any, **kw: Any) -> int | None:
    client = await connect(fake, **kw)
    await client.hello()
    for payload in payloads:
        if isinstance(payload, (str, bytes)):
            await client.send_raw(payload)
        else:
            await client.send(payload)
    return await client.closed_code()


def _identify(**d: Any) -> dict[str, Any]:
    return {"op": 2, "d": {"token": "test-token", "intents": 513, "properties": PROPS, **d}}


async def test_unknown_opcode_4001(fake: FakeGateway) -> None:
    assert await _close_code_after(fake, {"op": 5, "d": None}) == 4001
    assert await _close_code_after(fake, {"d": None}) == 4001


async def test_malformed_payload_for_an_opcode_4001(fake: FakeGateway) -> None:
    assert await _close_code_after(fake, {"op": 1, "d": "soon"}) == 4001
    assert await _close_code_after(fake, {"op": 2, "d": {"token": "test-token"}}) == 4001


async def test_undecodable_4002(fake: FakeGateway) -> None:
    assert await _close_code_after(fake, "{not json") == 4002
    assert await _close_code_after(fake, "[1, 2]") == 4002


async def test_oversized_payload_4002(fake: FakeGateway) -> None:
    big = {"op": 1, "d": None, "pad": "x" * 4096}
    assert await _close_code_after(fake, big) == 4002
    assert fake.connections[-1].sent[-1].size > 4096


async def test_etf_atom_keys_4002(fake: FakeGateway) -> None:
    atom_keys = erlpack.pack({erlpack.Atom("op"): 1, erlpack.Atom("d"): None})
    assert await _close_code_after(fake, atom_keys, encoding="etf") == 4002


async def test_etf_binary_keys_are_fine(fake: FakeGateway) -> None:
    client = await connect(fake, encoding="etf")
    await client.hello()
    await client.send({"op": 1, "d": None})  # erlpack packs str keys as binaries
    assert (await client.recv())["op"] == 11
    await client.aclose()


async def test_command_before_identify_4003(fake: FakeGateway) -> None:
    request = {"op": 8, "d": {"guild_id": "1", "query": "", "limit": 0}}
    assert await _close_code_after(fake, request) == 4003


async def test_bad_token_4004(fake: FakeGateway) -> None:
    assert await _close_code_after(fake, _identify(token="wrong")) == 4004


async def test_second_identify_4005(fake: FakeGateway) -> None:
    client, _, _ = await identified(fake)
    await client.send(_identify())
    assert await client.closed_code() == 4005


async def test_command_rate_limit_4008(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "command_limit": 5}) as fake:
        client = await connect(fake)
        await client.hello()
        for _ in range(6):
            await client.send({"op": 1, "d": None})
        assert await client.closed_code() == 4008
        assert len(fake.connections[0].heartbeats) == 5


@pytest.mark.parametrize(("interval", "closed_after"), [(0.2, "24"), (0.5, "60")])
async def test_heartbeats_that_fill_the_command_limit_are_warned_about_at_start(
    anyio_backend: str, caplog: pytest.LogCaptureFixture, interval: float, closed_after: str
) -> None:
    # Heartbeats count against 120 per 60 s, as on Discord: at these intervals they
    # alone fill it, so every connection is closed with 4008 within a minute.
    caplog.set_level(logging.WARNING, logger="gateway_testing")
    async with FakeGateway(token="test-token", heartbeat_interval=interval):
        pass
    (record,) = [r for r in caplog.records if "4008" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert f"heartbeat_interval={interval:g}" in message
    assert f"after about {closed_after} s" in message


async def test_an_interval_that_leaves_room_for_commands_is_not_warned_about(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway_testing")
    async with FakeGateway(token="test-token", heartbeat_interval=1.0):
        pass
    async with FakeGateway(token="test-token", heartbeat_interval=0.2, command_limit=10**6):
        pass
    assert not [r for r in caplog.records if "4008" in r.getMessage()]


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0,1"])
async def test_bad_shard_4010(fake: FakeGateway, shard: Any) -> None:
    assert await _close_code_after(fake, _identify(shard=shard)) == 4010


async def test_shard_count_must_be_a_multiple_4010(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "shard_count_multiple": 16}) as fake:
        assert await _close_code_after(fake, _identify(shard=[0, 8])) == 4010


async def test_sharding_required_4011(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "shards": 2, "max_guilds_per_shard": 4}) as fake:
        assert await _close_code_after(fake, _identify()) == 4011  # 6 guilds on one shard


@pytest.mark.parametrize("v", [None, "9", "6", "ten"])
async def test_bad_api_version_4012(fake: FakeGateway, v: str | None) -> None:
    client = await connect(fake, v=v)
    assert await client.closed_code() == 4012


@pytest.mark.parametrize("intents", [1 << 17, -1, "513", None])
async def test_bad_intents_4013(fake: FakeGateway, intents: Any) -> None:
    assert await _close_code_after(fake, _identify(intents=intents)) == 4013


async def test_disallowed_intents_4014(anyio_backend: str) -> None:
    async with FakeGateway(**{**FAST, "privileged_intents": 2, "identify_window": 0.0}) as fake:
        assert await _close_code_after(fake, _identify(intents=1 | 256)) == 4014
        client = await connect(fake)
        await client.hello()
        await client.identify(intents=1 | 2)  # GUILD_MEMBERS is allowed here
        assert (await client.recv())["t"] == "READY"
        await client.aclose()


async def test_identify_over_max_concurrency_gets_op9(anyio_backend: str) -> None:
    async with FakeGateway(
        **{**FAST, "shards": 4, "max_concurrency": 2, "identify_window": 30.0}
    ) as fake:
        for shard in ([0, 4], [1, 4]):  # buckets 0 and 1: both go through
            client, _, _ = await identified(fake, shard=shard)
            await client.aclose()
        late = await connect(fake)
        await late.hello()
        await late.identify(shard=[2, 4])  # bucket 0 again within the window
        assert await late.recv() == {"t": None, "s": None, "op": 9, "d": False}
        assert fake.connections[-1].identify_rejected == 1
        assert fake.connections[-1].session is None
        await late.aclose()


async def test_session_start_limit_exhaustion_is_loud(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeGateway(**{**FAST, "session_start_total": 1, "identify_window": 0.0}) as fake:
        client, _, _ = await identified(fake)
        await client.aclose()
        assert fake.session_start_remaining == 0
        with caplog.at_level(logging.ERROR, logger="gateway_testing"):
            assert await _close_code_after(fake, _identify()) == 4004
        assert fake.session_starts_exhausted
        assert "session start limit exhausted" in caplog.text


async def test_session_starts_reset_after_the_window(anyio_backend: str) -> None:
    async with FakeGateway(
        **{**FAST, "session_start_total": 1, "session_start_reset": 0.0, "identify_window": 0.0}
    ) as fake:
        for _ in range(2):
            client, _, _ = await identified(fake)
            await client.aclose()
        assert not fake.session_starts_exhausted
