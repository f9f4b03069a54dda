"""Code that MUST fail type checking: every line marked ``# E: <code>`` is an error.

Not part of the ordinary ``mypy`` run (pyproject excludes this folder);
tests/types_check/test_must_fail.py runs mypy on it and compares the errors with
the markers, line by line.
"""

from __future__ import annotations

import gateway_anyio
import gateway_sync
from gateway_proto.driver_support import GatewayEvent
from gateway_proto.events import Closed
from gateway_proto.payloads import GuildCreate, MessageCreate, User


async def anyio_handlers(shard: gateway_anyio.Shard, cluster: gateway_anyio.Cluster) -> None:
    @shard.on("MESSAGE_CREATE")
    async def misspelled(event: GatewayEvent[MessageCreate, gateway_anyio.Shard]) -> None:
        print(event.data["contnet"])  # E: typeddict-item
        await event.shard.sendd(42)  # E: attr-defined

    # A handler written for another event is refused.
    @shard.on("MESSAGE_CREATE")  # E: arg-type
    async def wrong_payload(event: GatewayEvent[GuildCreate, gateway_anyio.Shard]) -> None:
        pass

    # ...and so is one that expects a Cluster where a Shard comes.
    @cluster.on("MESSAGE_CREATE")  # E: arg-type
    async def wrong_shard(event: GatewayEvent[MessageCreate, gateway_anyio.Cluster]) -> None:
        pass

    # "*" delivers every kind of event: a handler for one payload type does not fit.
    @shard.on("*")  # E: type-var
    async def too_narrow(event: GatewayEvent[MessageCreate, gateway_anyio.Shard]) -> None:
        pass

    async for event in cluster.events("MESSAGE_CREATE"):
        event.data["author"]["usernmae"]  # E: typeddict-item
        event.data["content"] + 1  # E: operator
        event.shard.reconect()  # E: attr-defined

    async for closed in shard.events("close"):
        print(closed.data.cdoe)  # E: attr-defined


def sync_handlers(shard: gateway_sync.Shard, cluster: gateway_sync.Cluster) -> None:
    @cluster.on("close")
    def on_close(event: GatewayEvent[Closed, gateway_sync.Shard]) -> None:
        event.shard.sendd(42)  # E: attr-defined

    for event in shard.events("GUILD_CREATE"):
        print(event.data["name"].lower().foo)  # E: attr-defined
        print(event.data.get("unavailable").bar)  # E: union-attr


def building_payloads() -> None:
    user: User = {"id": "1", "username": "a"}  # E: typeddict-item
    print(user)
