"""The fake's port: WebSocket handshake, encodings x compressions, REST, TLS."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
import trustme

from gateway_testing import FakeGateway

from ._client import TOKEN
from .conftest import FAST, connect, identified

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the websockets client
@pytest.mark.parametrize("compress", [None, "zlib-stream", "zstd-stream"])
@pytest.mark.parametrize("encoding", ["json", "etf"])
async def test_every_encoding_and_compression(
    fake: FakeGateway, encoding: str, compress: str | None
) -> None:
    client, conn, payloads = await identified(fake, encoding=encoding, compress=compress)
    assert conn.encoding == encoding
    assert conn.compress == compress
    assert [p["t"] for p in payloads] == ["READY"] + ["GUILD_CREATE"] * 3
    assert [p["s"] for p in payloads] == [1, 2, 3, 4]
    await fake.dispatch("MESSAGE_CREATE", {"guild_id": fake.guild_ids[0], "content": "héllo"})
    message = await client.recv()
    assert message == {
        "t": "MESSAGE_CREATE",
        "s": 5,
        "op": 0,
        "d": {"guild_id": fake.guild_ids[0], "content": "héllo"},
    }
    # The client's payloads in the same encoding are decoded and recorded.
    await client.send({"op": 1, "d": 5})
    assert (await client.recv())["op"] == 11
    assert conn.payloads(1) == [5]
    if compress is not None:
        assert all(isinstance(m, bytes) for m in client.decoder.messages)
    elif encoding == "json":
        assert all(isinstance(m, str) for m in client.decoder.messages)
    await client.aclose()


async def test_hello_carries_the_interval_in_ms(anyio_backend: str) -> None:
    async with FakeGateway(heartbeat_interval=41.25) as fake:
        client = await connect(fake)
        assert (await client.hello())["d"] == {"heartbeat_interval": 41250}
        conn = await fake.next_connection()
        assert conn.path == "/"
        assert conn.query == {"v": "10", "encoding": "json"}
        await client.aclose()


async def test_identify_compress_deflates_large_payloads(fake: FakeGateway) -> None:
    client = await connect(fake)
    await client.hello()
    await client.identify(compress=True)
    payloads = await client.recv_until(t="GUILD_CREATE")
    assert payloads[-1]["t"] == "GUILD_CREATE"
    # READY and GUILD_CREATE are large: they came as zlib blobs in binary frames.
    assert any(isinstance(m, bytes) and m[:1] == b"\x78" for m in client.decoder.messages)
    await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_missing_optional_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway_testing._codec as codec

    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(codec, "import_module", missing)
    async with FakeGateway(**FAST) as fake:
        client = await connect(fake, encoding="etf")
        assert await client.closed_code() == 4002
        conn = await fake.next_connection()
        assert conn.server_close_reason is not None
        assert "erlpack" in conn.server_close_reason


async def test_rest_gateway_and_gateway_bot(anyio_backend: str) -> None:
    async with FakeGateway(
        token=TOKEN, shards=3, max_concurrency=2, session_start_total=10
    ) as fake:
        async with httpx.AsyncClient(base_url=fake.api_base) as http:
            plain = await http.get("/gateway")
            assert plain.status_code == 200
            assert plain.json() == {"url": f"ws://127.0.0.1:{fake.port}"}
            bot = await http.get("/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"})
            assert bot.status_code == 200
            body = bot.json()
            assert body["url"] == f"ws://127.0.0.1:{fake.port}"
            assert body["shards"] == 3
            limit = body["session_start_limit"]
            assert limit["total"] == 10
            assert limit["remaining"] == 10
            assert limit["max_concurrency"] == 2
            assert 0 < limit["reset_after"] <= 86_400_000
            bad = await http.get("/gateway/bot", headers={"Authorization": "Bot nope"})
            assert bad.status_code == 401
            assert bad.json()["message"] == "401: Unauthorized"
            assert (await http.get("/gateway/bot")).status_code == 401
            assert (await http.get("/nothing")).status_code == 404
        assert [r.status for r in fake.http_requests] == [200, 200, 401, 401, 404]


async def test_rest_rate_limit(anyio_backend: str) -> None:
    async with FakeGateway(token=TOKEN) as fake:
        fake.rate_limit_rest(count=2, retry_after=0.25)
        async with httpx.AsyncClient(base_url=fake.api_base) as http:
            auth = {"Authorization": f"Bot {TOKEN}"}
            first = await http.get("/gateway/bot", headers=auth)
            assert first.status_code == 429
            assert first.json()["retry_after"] == 0.25
            assert first.headers["retry-after"] == "1"
            assert (await http.get("/gateway/bot", headers=auth)).status_code == 429
            assert (await http.get("/gateway/bot", headers=auth)).status_code == 200


async def test_session_start_limit_is_decremented(fake: FakeGateway) -> None:
    before = fake.session_start_remaining
    client, _, _ = await identified(fake)
    assert fake.session_start_remaining == before - 1
    async with httpx.AsyncClient(base_url=fake.api_base) as http:
        body = (await http.get("/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"})).json()
    assert body["session_start_limit"]["remaining"] == before - 1
    await client.aclose()


async def test_tls(anyio_backend: str) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with FakeGateway(ssl_context=server_context, **FAST) as fake:
        assert fake.gateway_url.startswith("wss://127.0.0.1:")
        assert fake.api_base.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(base_url=fake.api_base, verify=client_context) as http:
            assert (await http.get("/gateway")).json()["url"].startswith("wss://")
        client, _, payloads = await identified(fake, ssl_context=client_context)
        assert payloads[0]["d"]["resume_gateway_url"].startswith("wss://")
        await client.aclose()
