"""The sans-I/O core driven by a plain ``asyncio.Protocol``: no anyio, no driver.

This is the embedding proof: ``gateway_proto.GatewayConnection`` needs only bytes
and the time. Here asyncio's own callbacks supply both:

* ``loop.create_connection`` opens TCP (and TLS for ``wss://``);
* ``data_received`` -> ``conn.receive_data(data, now)``;
* ``loop.call_at(conn.next_deadline(), ...)`` -> ``conn.handle_timeout(now)``;
* after every input, ``transport.write(conn.data_to_send())``;
* ``conn.events()`` yields what happened (HELLO, dispatches, a close, ...).

``Reconnector`` (also pure) decides whether to resume, identify or stop after a
close, and how long to back off. The same shape works for Twisted, Tornado, a GUI
toolkit's loop, or anything else with sockets and timers.

Without a token it runs offline: the fake gateway (``gateway_testing``) starts in a
background thread (it is an anyio server; this file itself uses no anyio)::

    python examples/asyncio_protocol.py --max-events 20
    DISCORD_TOKEN=... python examples/asyncio_protocol.py
    python examples/asyncio_protocol.py --token ... --api-base http://127.0.0.1:8765/api/v10

Arguments may also come from the environment: ``DISCORD_TOKEN``, ``DISCORD_API_BASE``,
``EXAMPLE_MAX_EVENTS`` and ``EXAMPLE_DURATION``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import ssl
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from gateway_proto.config import ShardConfig
from gateway_proto.connection import GatewayConnection
from gateway_proto.events import Closed, Dispatch, Event, IdentifyNeeded
from gateway_proto.intents import Intents
from gateway_proto.reconnect import Reconnector
from gateway_testing import FakeGateway

DISCORD_API = "https://discord.com/api/v10"
OFFLINE_TOKEN = "offline-demo-token"  # the fake's token, not a secret


@contextlib.contextmanager
def offline_api_base() -> Iterator[str]:
    """Run the fake gateway in a background thread; yield its REST base URL."""
    with FakeGateway(token=OFFLINE_TOKEN, shards=1, event_rate=20.0).run_in_thread() as fake:
        yield fake.api_base


def fetch_gateway_url(api_base: str, token: str) -> str:
    """Ask ``GET /gateway/bot`` for the WebSocket URL (stdlib only; blocking)."""
    request = urllib.request.Request(
        f"{api_base.rstrip('/')}/gateway/bot",
        headers={"Authorization": f"Bot {token}", "User-Agent": "spectacles-gateway example"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return str(body["url"])


class GatewayProtocol(asyncio.Protocol):
    """Pumps bytes and timer ticks between asyncio and one ``GatewayConnection``."""

    def __init__(self, conn: GatewayConnection, app: App) -> None:
        self.conn = conn
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[Closed] = self.loop.create_future()

    # asyncio's callbacks: each one feeds the core, then pumps its output.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """TCP (and TLS) is up: queue the WebSocket handshake."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.connect(self.loop.time())
        self.pump()

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: feed them to the core."""
        self.conn.receive_data(data, self.loop.time())
        self.pump()

    def eof_received(self) -> bool:
        """Tell the core the peer closed its side."""
        self.conn.receive_data(b"", self.loop.time())  # b"" means the peer went away
        self.pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the core the transport is gone (if it does not know yet)."""
        if not self.closed.done():
            self.conn.receive_data(b"", self.loop.time())
            self.pump()

    def on_timer(self) -> None:
        """Fire the core's deadline: heartbeats, zombie checks, timeouts."""
        self.timer = None
        self.conn.handle_timeout(self.loop.time())
        self.pump()

    # The pump: events out, bytes out, timer re-armed.

    def pump(self) -> None:
        """Drain events, write what the core wants written, re-arm the timer."""
        for event in self.conn.events():
            self.handle(event)
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadline = self.conn.next_deadline()
        if deadline is not None and not self.closed.done():
            # loop.time() is the clock every `now` came from, so deadlines line up.
            self.timer = self.loop.call_at(deadline, self.on_timer)
        if self.closed.done() and self.transport is not None:
            self.transport.close()

    def handle(self, event: Event) -> None:
        """React to one event of the core."""
        self.app.reconnector.observe(event)
        if isinstance(event, IdentifyNeeded):
            # One shard, one process: no identify limiter needed. A cluster would
            # wait here for its bucket (see docs/sharding.md).
            self.conn.identify(self.loop.time())
        elif isinstance(event, Dispatch):
            self.app.on_dispatch(self, event)
        elif isinstance(event, Closed) and not self.closed.done():
            self.closed.set_result(event)

    def stop(self) -> None:
        """Close with 1000: the session ends and the bot goes offline."""
        if not self.closed.done():
            # May run again before Closed arrives (a later dispatch of the same
            # read, the duration timer): closing what is closing does nothing.
            self.conn.close(1000, now=self.loop.time())
            self.pump()


class App:
    """The bot: prints dispatches, stops after ``max_events`` or ``duration``."""

    def __init__(self, config: ShardConfig, max_events: int | None) -> None:
        self.reconnector = Reconnector(config, rng=random.Random())
        self.max_events = max_events
        self.count = 0
        self.stopping = False
        self.current: GatewayProtocol | None = None

    def on_dispatch(self, protocol: GatewayProtocol, event: Dispatch) -> None:
        """Print one dispatch; stop once enough were seen."""
        self.count += 1
        keys = ", ".join(sorted(event.data)[:4]) if isinstance(event.data, dict) else ""
        print(f"#{event.sequence} {event.name} ({keys})", flush=True)
        if self.max_events is not None and self.count >= self.max_events:
            self.stop()

    def stop(self) -> None:
        """Stop for good, whatever connection is current."""
        self.stopping = True
        if self.current is not None:
            self.current.stop()

    async def run(self) -> int:
        """Connect, and reconnect as the ``Reconnector`` says, until stopped."""
        loop = asyncio.get_running_loop()
        while True:
            conn = self.reconnector.new_connection()
            parts = urlsplit(conn.url)
            tls = parts.scheme == "wss"
            host = parts.hostname or "localhost"
            port = parts.port or (443 if tls else 80)
            protocol = self.current = GatewayProtocol(conn, self)
            closed: Closed | None
            try:
                await loop.create_connection(
                    lambda p=protocol: p,  # bind this attempt's protocol
                    host,
                    port,
                    ssl=ssl.create_default_context() if tls else None,
                    server_hostname=host if tls else None,
                )
            except OSError as exc:
                print(f"connect failed: {exc}", file=sys.stderr)
                closed = None
            else:
                closed = await protocol.closed
            if self.stopping:
                return 0
            now = asyncio.get_running_loop().time()  # times how long a lost session is resumed
            delay = (
                self.reconnector.after_connect_failure(now=now)
                if closed is None
                else self.reconnector.after_close(closed, now=now)
            )
            if delay is None:  # a fatal close: bad token, disallowed intents, ...
                error = self.reconnector.fatal_error
                print(f"stopped: {error or (closed and closed.reason)}", file=sys.stderr)
                return 1
            await asyncio.sleep(delay)


async def amain(args: argparse.Namespace) -> int:
    """Find the gateway URL, then run one shard until stopped."""
    loop = asyncio.get_running_loop()
    url = await loop.run_in_executor(None, fetch_gateway_url, args.api_base, args.token)
    config = ShardConfig(
        token=args.token,
        intents=int(Intents.GUILDS | Intents.GUILD_MESSAGES),
        url=url,
        compression="zlib-stream",
    )
    app = App(config, args.max_events)
    if args.duration:
        loop.call_later(args.duration, app.stop)
    return await app.run()


def parse_args() -> argparse.Namespace:
    """Read the options, with the environment as defaults (the example test uses it)."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", default=env.get("DISCORD_TOKEN"))
    parser.add_argument("--api-base", default=env.get("DISCORD_API_BASE", DISCORD_API))
    parser.add_argument("--max-events", type=int, default=env.get("EXAMPLE_MAX_EVENTS"))
    parser.add_argument("--duration", type=float, default=env.get("EXAMPLE_DURATION"))
    return parser.parse_args()


def main() -> int:
    """Run online with a token, else offline against a fake gateway in a thread."""
    args = parse_args()
    with contextlib.ExitStack() as stack:
        if not args.token:
            args.api_base = stack.enter_context(offline_api_base())
            args.token = OFFLINE_TOKEN
            args.max_events = args.max_events or 20
            args.duration = args.duration or 30.0
        try:
            return asyncio.run(amain(args))
        except KeyboardInterrupt:
            return 130
    return 1  # unreachable: the stack swallows nothing


if __name__ == "__main__":
    sys.exit(main())
