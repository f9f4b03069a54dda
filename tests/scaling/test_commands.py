"""Commands back: a worker's command reaches the owning shard, its reply reaches the worker."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from anyio.abc import TaskGroup

from gateway_anyio import Cluster
from gateway_proto.commands import (
    Activity,
    RequestChannelInfo,
    RequestGuildMembers,
    RequestSoundboardSounds,
    UpdatePresence,
    UpdateVoiceState,
)
from gateway_proto.errors import InvalidCommandError
from gateway_redis.commands import CommandApplier, decode_command, encode_command
from gateway_redis.streams import EventPublisher
from gateway_redis.worker import StreamEvent, Worker
from gateway_testing import FakeGateway
from gateway_testing.corpus import guild_ids_for_shard

from ._publishing import KEYS, TOKEN, anyio_backend, publishing_cluster, until

__all__ = ["anyio_backend"]  # the fixture, imported to apply here

pytestmark = pytest.mark.anyio


async def test_a_member_request_goes_to_its_shard_and_the_chunk_comes_back(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    guild = guild_ids_for_shard(1, 2, 3)[0]
    worker = Worker(redis_url, KEYS, events=["GUILD_MEMBERS_CHUNK"], start="0")
    await worker.create_groups()
    publisher = EventPublisher(redis_url, KEYS)
    applier = CommandApplier(redis_url, KEYS, owned=lambda: {0, 1}, block=0.2, min_idle=1.0)

    def start_applier(cluster: Cluster, tg: TaskGroup) -> None:
        tg.start_soon(applier.service, cluster)

    chunks: list[StreamEvent] = []
    async with (
        FakeGateway(token=TOKEN, shards=2, identify_window=0.05) as fake,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(worker.run, chunks.append)
        async with publishing_cluster(fake, publisher, 2, also=start_applier) as cluster:
            # A malformed entry first: logged and acknowledged, the gateway goes on.
            raw = aioredis.Redis.from_url(redis_url)
            try:
                await raw.xadd(KEYS.commands(1), {"op": "8", "d": '{"guild_id": "x"}'})
                await raw.xadd(KEYS.commands(1), {"op": "2", "d": "{}"})  # IDENTIFY: no
            finally:
                await raw.aclose()
            command = RequestGuildMembers(guild_id=guild, query="", limit=5, nonce="n1")
            await worker.send(1, command)
            conn = next(c for c in fake.connections if c.session and c.session.shard[0] == 1)
            with anyio.fail_after(10):
                request = await conn.wait_for_op(8)
            assert request.d == command.to_payload()
            await until(lambda: len(chunks) == 1)
            assert all(not c.payloads(8) for c in fake.connections if c is not conn)
            assert cluster.shards[1].state.value == "ready"
            tg.cancel_scope.cancel()
    await worker.aclose()
    await publisher.aclose()
    await applier.aclose()
    (chunk,) = chunks
    assert (chunk.shard_id, chunk.data["guild_id"], chunk.data["nonce"]) == (1, guild, "n1")
    assert len(chunk.data["members"]) == 5
    assert (applier.applied, applier.rejected) == (1, 2)
    dropped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("dropping command" in m for m in dropped) == 2


@pytest.mark.parametrize(
    "command",
    [
        UpdatePresence(status="idle", activities=[Activity(name="tests", type=4, state="hi")]),
        UpdatePresence(),
        UpdateVoiceState(guild_id=1, channel_id=None, self_mute=True),
        RequestGuildMembers(guild_id="2", user_ids=[3, 4], presences=True),
        RequestSoundboardSounds(guild_ids=[5]),
        RequestChannelInfo(guild_id=6, fields=["status"]),
    ],
)
def test_commands_survive_the_stream_unchanged(command: Any) -> None:
    fields = {k.encode(): v for k, v in encode_command(command).items()}
    assert decode_command(fields) == command


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"op": b"8"},
        {b"op": b"x", b"d": b"{}"},
        {b"op": b"1", b"d": b"1"},
        {b"op": b"8", b"d": b"[]"},
        {b"op": b"8", b"d": b"{not json"},
        {b"op": b"8", b"d": b'{"guild_id": "1"}'},  # neither query nor user_ids
        {b"op": b"8", b"d": b'{"guild_id": "1", "query": "", "token": "t"}'},
        {b"op": b"4", b"d": b'{"guild_id": "1"}'},  # channel_id is required
        {b"op": b"3", b"d": b'{"activities": [{"name": "a", "emoji": 1}]}'},
        {b"op": b"3", b"d": b'{"activities": "many"}'},
    ],
)
def test_bad_command_entries_are_refused_with_a_typed_error(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(InvalidCommandError):
        decode_command(fields)
