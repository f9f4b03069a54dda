r"""A small threaded bot on the blocking driver: a cluster, handlers, an iterator.

No event loop anywhere: shards run on their own I/O threads, handlers on threads of
their own, and the main thread iterates over the cluster's events.

Offline (the default): starts the fake gateway (``gateway_testing``) in a
background thread and connects to it::

    python examples/threaded_bot.py --max-events 20

Against Discord (or any gateway, given its REST base)::

    DISCORD_TOKEN=... python examples/threaded_bot.py
    python examples/threaded_bot.py --token ... --api-base http://127.0.0.1:8765/api/v10

Ctrl-C stops it cleanly (every shard closes with 1000, every thread is joined).
Arguments may also come from the environment: ``DISCORD_TOKEN``, ``DISCORD_API_BASE``,
``EXAMPLE_MAX_EVENTS`` and ``EXAMPLE_DURATION``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

from gateway_proto.intents import Intents
from gateway_sync import DEFAULT_API_BASE, Cluster, Connected, Gateway, GatewayEvent
from gateway_testing import FakeGateway

INTENTS = Intents.GUILDS | Intents.GUILD_MESSAGES | Intents.GUILD_MESSAGE_REACTIONS
OFFLINE_TOKEN = "offline-demo-token"


@contextlib.contextmanager
def offline_gateway() -> Iterator[str]:
    """Run the fake gateway in a background thread; yield its REST base URL."""
    # A lively fake: two shards, a deterministic stream of about 10 events per second.
    with FakeGateway(token=OFFLINE_TOKEN, shards=2, event_rate=10.0).run_in_thread() as fake:
        yield fake.api_base


def run(token: str, api_base: str, max_events: int | None, duration: float | None) -> int:
    """Run the bot until ``max_events``, ``duration``, Ctrl-C or a fatal close."""
    cluster = Cluster(Gateway(token, api_base=api_base), intents=INTENTS)

    @cluster.on("connect")
    def on_connect(event: GatewayEvent) -> None:
        # Runs on this handler's own thread: blocking here never delays heartbeats.
        assert isinstance(event.data, Connected)
        how = "resumed" if event.data.resumed else "identified"
        print(f"shard {event.shard_id} {how}", flush=True)

    if duration:
        # close() is thread-safe: a timer thread may end the bot.
        timer = threading.Timer(duration, cluster.close)
        timer.daemon = True
        timer.start()
    seen = 0
    try:
        cluster.spawn("auto")
        # The iterator ends when the cluster closes (timer, Ctrl-C, fatal errors).
        for event in cluster.events("MESSAGE_CREATE", "MESSAGE_REACTION_ADD"):
            seen += 1
            data = event.data
            if event.name == "MESSAGE_CREATE":
                author = data["author"].get("username", "?")
                print(f"[{event.shard_id}] {author}: {data.get('content', '')}", flush=True)
            else:
                emoji = (data.get("emoji") or {}).get("name")
                print(f"[{event.shard_id}] reaction {emoji}", flush=True)
            if max_events and seen >= max_events:
                break
    except KeyboardInterrupt:
        print("interrupted: closing", file=sys.stderr)
    finally:
        started = time.monotonic()
        cluster.close()  # 1000: the bot goes offline; joins every thread
        print(f"closed in {time.monotonic() - started:.2f} s", file=sys.stderr)
    for shard_id, error in cluster.errors.items():
        print(f"shard {shard_id} stopped: {error}", file=sys.stderr)
    return 1 if cluster.errors else 0


def parse_args() -> argparse.Namespace:
    """Read the options, with the environment as defaults."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", default=env.get("DISCORD_TOKEN"))
    parser.add_argument("--api-base", default=env.get("DISCORD_API_BASE"))
    parser.add_argument("--max-events", type=int, default=env.get("EXAMPLE_MAX_EVENTS"))
    parser.add_argument("--duration", type=float, default=env.get("EXAMPLE_DURATION"))
    return parser.parse_args()


def main() -> int:
    """Run online when given a token, else offline against the fake gateway."""
    args = parse_args()
    if args.token:
        return run(args.token, args.api_base or DEFAULT_API_BASE, args.max_events, args.duration)
    with offline_gateway() as api_base:
        return run(OFFLINE_TOKEN, api_base, args.max_events or 20, args.duration or 30.0)


if __name__ == "__main__":
    sys.exit(main())
