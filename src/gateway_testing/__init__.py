"""gateway_testing: a faithful fake Discord gateway, for tests, demos and offline bots.

``FakeGateway`` serves the gateway WebSocket (JSON or ETF; zlib-stream, zstd-stream or
no compression) and ``GET /api/v10/gateway[/bot]`` on one loopback port, enforces
Discord's rules with Discord's close codes, and lets a test script dispatches and
inject faults. :mod:`gateway_testing.corpus` generates the realistic payloads.

    async with FakeGateway(token="test-token", shards=2, heartbeat_interval=0.5) as fake:
        conn = await fake.next_connection()
        await conn.wait_identified()
        await fake.dispatch("MESSAGE_CREATE", {...})
"""

from __future__ import annotations

from gateway_testing._codec import MissingDependency
from gateway_testing._connection import FakeConnection
from gateway_testing._gateway import FakeGateway
from gateway_testing._options import FakeOptions, FakeOptionsDict
from gateway_testing._records import ClientPayload, HttpRequest, ServerPayload
from gateway_testing._session import Dispatch, FakeSession
from gateway_testing._thread import ThreadedConnection, ThreadedFakeGateway

__all__ = [
    "ClientPayload",
    "Dispatch",
    "FakeConnection",
    "FakeGateway",
    "FakeOptions",
    "FakeOptionsDict",
    "FakeSession",
    "HttpRequest",
    "MissingDependency",
    "ServerPayload",
    "ThreadedConnection",
    "ThreadedFakeGateway",
]
