"""Fixtures of the fake gateway's own tests: backends and an independent client."""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway_testing import FakeGateway

from ._client import Client, WebsocketsClient, connect_wsproto


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio runs no asyncio loop
        return False
    return True


async def connect(
    fake: FakeGateway,
    *,
    encoding: str = "json",
    compress: str | None = None,
    path: str = "/",
    v: str | None = "10",
    ssl_context: ssl.SSLContext | None = None,
    transport: str | None = None,
    bare: bool = False,
) -> Client:
    """Open a gateway WebSocket to ``fake``: websockets on asyncio, wsproto otherwise.

    ``bare``: send no ``User-Agent`` (wsproto only; websockets always sends one).
    """
    query: dict[str, str] = {"encoding": encoding}
    if v is not None:
        query["v"] = v
    if compress is not None:
        query["compress"] = compress
    target = f"{path}?{urllib.parse.urlencode(query)}"
    if transport is None:
        transport = "websockets" if _on_asyncio() else "wsproto"
    if transport == "websockets":
        from websockets.asyncio.client import connect as ws_connect

        scheme = "wss" if ssl_context is not None else "ws"
        ws = await ws_connect(
            f"{scheme}://127.0.0.1:{fake.port}{target}",
            max_size=None,
            compression=None,
            ssl=ssl_context,
            ping_interval=None,
        )
        return WebsocketsClient(ws, encoding, compress)
    return await connect_wsproto(
        "127.0.0.1",
        fake.port,
        target,
        encoding=encoding,
        compress=compress,
        ssl_context=ssl_context,
        bare=bare,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    """A fake with short timings: 0.2 s heartbeats, a 0.3 s identify window.

    Its grace before 4009 is long: these tests' clients never heartbeat, and a
    busy machine must not close them mid-test (the 4009 test asks for 0.3 s).
    """
    async with FakeGateway(**FAST) as running:
        yield running


FAST: dict[str, Any] = {
    "token": "test-token",
    "heartbeat_interval": 0.2,
    "heartbeat_grace": 30.0,
    "identify_window": 0.3,
    "member_request_window": 0.5,
    "close_timeout": 0.5,
}


async def identified(
    fake: FakeGateway, *, shard: list[int] | None = None, **kw: Any
) -> tuple[Client, Any, list[dict[str, Any]]]:
    """Connect, identify, read READY and every GUILD_CREATE; return (client, conn, payloads)."""
    client = await connect(fake, **kw)
    await client.hello()
    conn = fake.connections[-1]
    await client.identify(shard=shard)
    session = await conn.wait_identified()
    payloads = [await client.recv() for _ in range(1 + len(session.guild_ids))]
    return client, conn, payloads
