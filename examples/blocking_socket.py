"""The sans-I/O core driven by hand over one blocking socket (+ TLS): no driver, no loop.

    DISCORD_TOKEN=... python examples/blocking_socket.py [wss://gateway.discord.gg/]

Without a token it runs offline, against the fake gateway (``gateway_testing``) in a
background thread, for 30 s. Stops after EXAMPLE_MAX_EVENTS dispatches or
EXAMPLE_DURATION seconds, if set.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from gateway_proto import Closed, Dispatch, GatewayConnection, IdentifyNeeded, Intents, ShardConfig
from gateway_testing import FakeGateway

token, api = os.environ.get("DISCORD_TOKEN"), os.environ.get("DISCORD_API_BASE")
duration = os.environ.get("EXAMPLE_DURATION", "inf")
offline = contextlib.ExitStack()  # closed at the end: it stops the fake's thread
if not token:  # offline: a fake gateway streaming 20 events/s, in a background thread
    fake = offline.enter_context(FakeGateway(token="offline", event_rate=20.0).run_in_thread())
    token, api, duration = "offline", fake.api_base, os.environ.get("EXAMPLE_DURATION", "30")
url = sys.argv[1] if len(sys.argv) > 1 else "wss://gateway.discord.gg/"
if len(sys.argv) < 2 and api:  # e.g. the fake's
    with urllib.request.urlopen(f"{api}/gateway") as response:  # GET /gateway needs no token
        url = json.load(response)["url"]
config = ShardConfig(token=token, intents=Intents.GUILDS | Intents.GUILD_MESSAGES, url=url)
max_events = int(os.environ.get("EXAMPLE_MAX_EVENTS", "0"))
stop_at = time.monotonic() + float(duration)

conn = GatewayConnection(config)  # to resume: GatewayConnection(config, session=old_session)
parts = urlsplit(conn.url)
tls = parts.scheme == "wss"
sock = socket.create_connection((parts.hostname, parts.port or (443 if tls else 80)))
if tls:
    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
conn.connect(time.monotonic())
seen = 0
try:
    while True:
        for event in conn.events():  # first: the core decodes each message as it is handed out
            if isinstance(event, IdentifyNeeded):  # one shard: no identify limiter to wait for
                conn.identify(time.monotonic())
            elif isinstance(event, Dispatch):
                seen += 1
                print(f"#{event.sequence} {event.name}", flush=True)
            elif isinstance(event, Closed):  # always the last event; flush our close frame
                print(f"closed: {event.code} {event.reason} ({event.cause.value})")
                sock.sendall(conn.data_to_send())
                sock.close()
                sys.exit(0 if event.error is None else 1)
        sock.sendall(conn.data_to_send())  # after every input: write what the core wants written
        if 0 < max_events <= seen or time.monotonic() >= stop_at:
            conn.close(1000, now=time.monotonic())  # 1000: the session ends, the bot goes offline
            max_events, stop_at = 0, float("inf")
            continue
        core_deadline = conn.next_deadline()  # heartbeats, zombie check, rate limit, timeouts
        deadline = stop_at if core_deadline is None else min(core_deadline, stop_at)
        sock.settimeout(
            None if deadline == float("inf") else max(deadline - time.monotonic(), 1e-3)
        )
        try:
            data = sock.recv(65536)
        except TimeoutError:
            conn.handle_timeout(max(deadline, time.monotonic()))  # a timer that woke early counts
            continue
        conn.receive_data(data, time.monotonic())  # b"" at EOF: the core reports Closed
finally:
    offline.close()
