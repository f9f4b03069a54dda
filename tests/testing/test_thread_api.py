"""The thread runner's proxies have the async fake's API, name for name.

docs/testing.md promises that ``run_in_thread()`` gives the same API as the async
fake, blocking. These tests compare the public names (class attributes and the
records a live object carries), so the two cannot drift apart again, and use the
names that were missing once.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from gateway_testing import FakeConnection, FakeGateway, ThreadedConnection, ThreadedFakeGateway

PROPS = {"os": "linux", "browser": "t", "device": "t"}

#: The fake's own plumbing: called by the fake itself on its loop (the protocol, the
#: server and the connections call each other through these), never by a test.
CONNECTION_PLUMBING = {
    "fake",  # the loop-side FakeGateway; from a thread, use the ThreadedFakeGateway
    "run",
    "send_payload",
    "send_dispatch",
    "send_burst",
    "close_with",
    "has_room",
    "first_heartbeat_deadline",
    "first_heartbeat_late",
}
GATEWAY_PLUMBING = {
    "attach",
    "detach",
    "connection_ended",
    "connection_of",
    "full_member_request",
    "guilds_for",
    "identify_allowed",
    "live_session",
    "new_session",
    "take_session_start",
    "run_in_thread",  # the proxy is what it returns
}


def public(obj: object) -> set[str]:
    """Public names of ``obj``: its class's attributes and its instance records."""
    cls = obj if isinstance(obj, type) else type(obj)
    names = set(dir(cls)) | set(getattr(obj, "__dict__", {}))
    return {name for name in names if not name.startswith("_")}


@contextlib.contextmanager
def identified_client(fake: ThreadedFakeGateway) -> Iterator[ThreadedConnection]:
    """Open a raw client, identify it, heartbeat once; yield the proxy of its connection."""
    with urllib.request.urlopen(f"{fake.api_base}/gateway") as response:
        url = json.load(response)["url"]
    with connect(f"{url}/?v=10&encoding=json", compression=None) as ws:
        assert json.loads(ws.recv())["op"] == 10
        conn = fake.next_connection()
        identify = {"token": "sync-token", "intents": 513, "properties": PROPS}
        ws.send(json.dumps({"op": 2, "d": identify}))
        conn.wait_identified()
        ws.send(json.dumps({"op": 1, "d": None}))
        yield conn


def test_the_proxies_have_every_public_name_of_the_async_fake() -> None:
    fake_gateway = FakeGateway(token="sync-token", heartbeat_interval=5.0)
    with fake_gateway.run_in_thread() as fake, identified_client(fake) as conn:
        missing = public(conn.connection) - public(conn) - CONNECTION_PLUMBING
        assert not missing, f"ThreadedConnection lacks {sorted(missing)}"
        missing = public(fake.fake) - public(fake) - GATEWAY_PLUMBING
        assert not missing, f"ThreadedFakeGateway lacks {sorted(missing)}"
    # The class-level names too, in case an instance record shadows a method.
    assert public(FakeConnection) - public(ThreadedConnection) <= CONNECTION_PLUMBING
    assert public(FakeGateway) - public(ThreadedFakeGateway) <= GATEWAY_PLUMBING


def test_the_thread_proxy_waits_and_shows_identifies_and_heartbeats() -> None:
    fake_gateway = FakeGateway(token="sync-token", heartbeat_interval=5.0)
    with fake_gateway.run_in_thread() as fake, identified_client(fake) as conn:
        conn.wait_until(lambda: len(conn.connection.heartbeats) >= 1)
        # One shape: the `d` the client sent, as payloads(op) gives it.
        assert conn.identifies == conn.payloads(2)
        assert conn.identifies[0]["intents"] == 513
        assert conn.heartbeats == [None]
        assert [r.op for r in conn.records(1)] == [1]
        assert conn.identified
        assert conn.number == 0
        assert fake.wait_for_connection(0).number == 0
        with pytest.raises(TimeoutError):
            conn.wait_until(lambda: False, timeout=0.05)
        conn.write_delay = 0.01  # a knob set through the proxy lands on the loop
        assert conn.connection.write_delay == 0.01
        assert fake.port == fake.fake.port
