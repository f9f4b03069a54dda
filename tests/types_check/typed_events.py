"""Type tests: checked by the ordinary ``mypy`` run (never executed).

Each ``assert_type`` states what a user's editor and ``mypy --strict`` see for
``on()``/``events()`` with a documented event name, on both drivers and on a
Cluster. The companion file must_fail/wrong_fields.py holds what must NOT pass.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from typing_extensions import assert_type

import gateway_anyio
import gateway_sync
from gateway_proto.commands import Command
from gateway_proto.driver_support import Connected, GatewayEvent, Stopped
from gateway_proto.events import Closed
from gateway_proto.events import Event as CoreEvent
from gateway_proto.payloads import (
    GuildCreate,
    GuildMemberAdd,
    Interaction,
    Message,
    MessageCreate,
    MessageReactionAdd,
    Ready,
    User,
)


async def anyio_shard(shard: gateway_anyio.Shard) -> None:
    @shard.on("MESSAGE_CREATE")
    async def on_message(event: GatewayEvent[MessageCreate, gateway_anyio.Shard]) -> None:
        assert_type(event.data["content"], str)
        assert_type(event.data["author"], User)
        assert_type(event.data.get("guild_id"), str | None)
        assert_type(event.shard, gateway_anyio.Shard)
        assert_type(event.sequence, int | None)

    assert_type(
        on_message,
        Callable[[GatewayEvent[Message, gateway_anyio.Shard]], Coroutine[Any, Any, None]],
    )

    # A plain function is a handler too, and names that share a payload type share it.
    @shard.on("MESSAGE_UPDATE")
    def on_edit(event: GatewayEvent[Message, gateway_anyio.Shard]) -> None:
        assert_type(event.data["id"], str)

    # Lifecycle events carry the driver's own objects.
    @shard.on("close")
    def on_close(event: GatewayEvent[Closed, gateway_anyio.Shard]) -> None:
        assert_type(event.data.code, int | None)

    async with shard.events("GUILD_CREATE") as guilds:
        async for event in guilds:
            assert_type(event, GatewayEvent[GuildCreate, gateway_anyio.Shard])
            assert_type(event.data["members"][0]["roles"], list[str])

    async for ready in shard.events("READY"):
        assert_type(ready.data, Ready)
        assert_type(ready.data["session_id"], str)

    # Several names, or none: the untyped form.
    async for any_event in shard.events("READY", "RESUMED"):
        assert_type(any_event, GatewayEvent[Any, gateway_anyio.Shard])
    async for any_event in shard.events():
        assert_type(any_event.data, Any)

    # "*" and undocumented names take handlers of the untyped GatewayEvent.
    @shard.on("*")
    async def everything(event: GatewayEvent) -> None:
        assert_type(event.data, Any)

    shard.on("SOMETHING_NEW", everything)


async def anyio_cluster(cluster: gateway_anyio.Cluster) -> None:
    @cluster.on("INTERACTION_CREATE")
    async def on_interaction(event: GatewayEvent[Interaction, gateway_anyio.Shard]) -> None:
        assert_type(event.shard, gateway_anyio.Shard)
        assert_type(event.data["token"], str)

    async for event in cluster.events("MESSAGE_REACTION_ADD"):
        assert_type(event.data, MessageReactionAdd)
        assert_type(event.shard.id, int)

    async for connected in cluster.events("connect"):
        assert_type(connected.data, Connected)


def sync_shard(shard: gateway_sync.Shard) -> None:
    @shard.on("GUILD_MEMBER_ADD")
    def on_member(event: GatewayEvent[GuildMemberAdd, gateway_sync.Shard]) -> None:
        assert_type(event.data["guild_id"], str)
        assert_type(event.shard, gateway_sync.Shard)

    for event in shard.events("receive"):
        assert_type(event.data, CoreEvent)

    with shard.events("MESSAGE_CREATE") as stream:
        got = stream.get(timeout=1.0)
        if got is not None:
            assert_type(got.data["content"], str)


def sync_cluster(cluster: gateway_sync.Cluster) -> None:
    @cluster.on("disconnect")
    def on_stop(event: GatewayEvent[Stopped, gateway_sync.Shard]) -> None:
        assert_type(event.data.unsent, tuple[Command, ...])

    for event in cluster.events("MESSAGE_CREATE"):
        assert_type(event.data["mentions"][0]["username"], str)
        assert_type(event.shard, gateway_sync.Shard)


def payloads_are_plain_dicts() -> None:
    # What a codec returns is the payload: building one needs every required key.
    user: User = {
        "id": "1",
        "username": "a",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
    }
    assert_type(user.get("bot"), bool | None)

