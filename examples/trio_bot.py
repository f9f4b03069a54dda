r"""A one-shard bot on trio: the anyio driver's ``Shard`` in a trio nursery.

The shard runs as a task (``shard.connect()`` returns once it is disconnected);
the main task iterates over its events. Sending a command works the same way on
asyncio: here the bot sets its presence once the session is live.

Offline (the default without a token): starts the fake gateway (``gateway_testing``)
in the same trio run and connects to it::

    python examples/trio_bot.py --max-events 20

Against Discord, or any gateway given its REST base::

    DISCORD_TOKEN=... python examples/trio_bot.py
    python examples/trio_bot.py --token ... --api-base http://127.0.0.1:8765/api/v10

Arguments may also come from the environment: ``DISCORD_TOKEN``, ``DISCORD_API_BASE``,
``EXAMPLE_MAX_EVENTS`` and ``EXAMPLE_DURATION``.
"""

from __future__ import annotations

import argparse
import os
import sys

import trio

from gateway_anyio import DEFAULT_API_BASE, Gateway, Shard
from gateway_proto.commands import Activity, UpdatePresence
from gateway_proto.intents import Intents
from gateway_testing import FakeGateway

OFFLINE_TOKEN = "offline-demo-token"  # the fake's token, not a secret


async def run(args: argparse.Namespace) -> int:
    """Run online with a token, else against a fake gateway started here."""
    if args.token:
        return await run_bot(Gateway(args.token, api_base=args.api_base), args)
    async with FakeGateway(token=OFFLINE_TOKEN, shards=1, event_rate=20.0) as fake:
        return await run_bot(Gateway(OFFLINE_TOKEN, api_base=fake.api_base), args)


async def run_bot(gateway: Gateway, args: argparse.Namespace) -> int:
    """Run the bot until ``--max-events``, ``--duration``, Ctrl-C or a fatal close."""
    shard = Shard(gateway, 0, shard_count=1, intents=Intents.GUILDS | Intents.GUILD_MESSAGES)
    error: BaseException | None = None

    async def keep_connected() -> None:
        nonlocal error
        try:
            await shard.connect()
        except Exception as exc:  # a fatal close (bad token, intents, ...) ends the bot
            error = exc
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        events = shard.events()  # before connecting, so nothing is missed
        nursery.start_soon(keep_connected)
        seen = 0
        with trio.move_on_after(args.duration or float("inf")):
            async for event in events:
                if event.name == "READY":
                    user = event.data["user"]["username"]
                    print(f"ready as {user}; session {shard.session}", flush=True)
                    presence = UpdatePresence(
                        status="online", activities=[Activity(name="trio", type=0)]
                    )
                    await shard.send(presence)
                elif event.name in ("MESSAGE_CREATE", "TYPING_START", "PRESENCE_UPDATE"):
                    print(f"#{event.sequence} {event.name}", flush=True)
                else:
                    continue  # lifecycle events (state, send, receive, ...) are not counted
                seen += 1
                if args.max_events and seen >= args.max_events:
                    break
        await shard.disconnect(1000)
    if error is not None:
        print(f"stopped: {error}", file=sys.stderr)
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
        sys.exit(trio.run(run, arguments))
    except KeyboardInterrupt:
        sys.exit(130)
