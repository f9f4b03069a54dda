r"""A small bot on the anyio driver, running on asyncio: a cluster, handlers, an event loop.

It spawns the shards Discord recommends, logs every shard's READY with a handler,
and prints messages as they arrive by iterating over the cluster's events.

Offline (the default without a token): starts the fake gateway (``gateway_testing``)
on the same event loop and connects to it::

    python examples/anyio_bot.py --max-events 20

Against Discord, or any gateway given its REST base::

    DISCORD_TOKEN=... python examples/anyio_bot.py
    python examples/anyio_bot.py --token ... --api-base http://127.0.0.1:8765/api/v10

Arguments may also come from the environment: ``DISCORD_TOKEN``, ``DISCORD_API_BASE``,
``EXAMPLE_MAX_EVENTS`` and ``EXAMPLE_DURATION``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import anyio

from gateway_anyio import DEFAULT_API_BASE, Cluster, Connected, Gateway, GatewayEvent
from gateway_proto.intents import Intents
from gateway_testing import FakeGateway

INTENTS = Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.GUILD_MESSAGE_REACTIONS
OFFLINE_TOKEN = "offline-demo-token"  # the fake's token, not a secret


@contextlib.asynccontextmanager
async def gateway_for(args: argparse.Namespace) -> AsyncIterator[Gateway]:
    """Yield the ``Gateway`` to use: Discord's (or ``--api-base``), or an offline fake's."""
    if args.token:
        yield Gateway(args.token, api_base=args.api_base)
        return
    async with FakeGateway(token=OFFLINE_TOKEN, shards=2, event_rate=20.0) as fake:
        yield Gateway(OFFLINE_TOKEN, api_base=fake.api_base)


async def run(args: argparse.Namespace) -> int:
    """Run the bot until ``--max-events``, ``--duration``, Ctrl-C or a fatal close."""
    async with gateway_for(args) as gateway, Cluster(gateway, intents=INTENTS) as cluster:

        @cluster.on("connect")
        async def on_connect(event: GatewayEvent) -> None:
            # Handlers run in their own task with their own buffer: a slow one never
            # delays heartbeats.
            assert isinstance(event.data, Connected)
            how = "resumed" if event.data.resumed else "identified"
            print(f"shard {event.shard_id} {how}", flush=True)

        await cluster.spawn("auto")
        seen = 0
        with anyio.move_on_after(args.duration or float("inf")):
            async for event in cluster.events("MESSAGE_CREATE", "MESSAGE_REACTION_ADD"):
                seen += 1
                data = event.data
                if event.name == "MESSAGE_CREATE":
                    author = data["author"].get("username", "?")
                    print(f"[{event.shard_id}] {author}: {data.get('content', '')}", flush=True)
                else:
                    emoji = (data.get("emoji") or {}).get("name")
                    print(f"[{event.shard_id}] reaction {emoji}", flush=True)
                if args.max_events and seen >= args.max_events:
                    break
        # Leaving the `async with` closes every shard with 1000 (the bot goes offline).
    if cluster.errors:
        for shard_id, error in cluster.errors.items():
            print(f"shard {shard_id} stopped: {error}", file=sys.stderr)
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    """Read the options, with the environment as defaults (the example test uses it)."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", default=env.get("DISCORD_TOKEN"))
    parser.add_argument("--api-base", default=env.get("DISCORD_API_BASE", DEFAULT_API_BASE))
    parser.add_argument("--max-events", type=int, default=env.get("EXAMPLE_MAX_EVENTS"))
    parser.add_argument("--duration", type=float, default=env.get("EXAMPLE_DURATION"))
    args = parser.parse_args()
    if not args.token:  # offline: stop by itself unless told otherwise
        args.max_events = args.max_events or 20
        args.duration = args.duration or 30.0
    return args


if __name__ == "__main__":
    arguments = parse_args()
    try:
        # anyio.run(run, arguments) would do too; asyncio.run shows that the driver
        # is plain asyncio code underneath.
        sys.exit(asyncio.run(run(arguments)))
    except KeyboardInterrupt:
        sys.exit(130)
