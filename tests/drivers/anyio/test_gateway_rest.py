"""``Gateway.fetch``: GET /gateway/bot parsing, 401, 429 and retries (mock transport)."""

from __future__ import annotations

import httpx
import pytest

from gateway_anyio import Gateway, GatewayRequestError, InvalidTokenError

pytestmark = pytest.mark.anyio

BODY = {
    "url": "wss://gateway.example/",
    "shards": 9,
    "session_start_limit": {
        "total": 1000,
        "remaining": 999,
        "reset_after": 14400000,
        "max_concurrency": 4,
    },
}


def gateway(handler: httpx.MockTransport) -> Gateway:
    return Gateway("Bot secret-token", api_base="https://api.example/api/v10", transport=handler)


async def test_fetch_parses_the_answer_and_sends_the_token() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=BODY)

    gw = gateway(httpx.MockTransport(handle))
    info = await gw.fetch()
    assert (gw.url, gw.shards, gw.max_concurrency) == ("wss://gateway.example/", 9, 4)
    assert info.session_start_limit.reset_after == 14400.0
    assert [str(r.url) for r in seen] == ["https://api.example/api/v10/gateway/bot"]
    assert seen[0].headers["authorization"] == "Bot secret-token"
    assert "secret-token" not in repr(gw)


async def test_401_raises_a_typed_error_at_once() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"message": "401: Unauthorized", "code": 0})

    with pytest.raises(InvalidTokenError, match="refused the bot token") as info:
        await gateway(httpx.MockTransport(handle)).fetch()
    assert (calls, info.value.status_code) == (1, 401)


async def test_429_waits_retry_after_then_succeeds() -> None:
    answers = [
        httpx.Response(429, json={"retry_after": 0.01, "global": False}),
        httpx.Response(200, json=BODY),
    ]
    gw = gateway(httpx.MockTransport(lambda request: answers.pop(0)))
    assert (await gw.fetch()).shards == 9
    assert answers == []


async def test_network_errors_and_5xx_are_retried_then_give_up() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(502)

    gw = Gateway(
        "tok",
        api_base="https://api.example",
        transport=httpx.MockTransport(handle),
        max_retries=3,
        backoff_base=0.01,
    )
    with pytest.raises(GatewayRequestError, match="after 4 attempts"):
        await gw.fetch()
    assert calls == 4


async def test_nonsense_is_a_request_error() -> None:
    gw = gateway(httpx.MockTransport(lambda request: httpx.Response(200, json={"url": 3})))
    with pytest.raises(GatewayRequestError, match="nonsense"):
        await gw.fetch()


def test_for_token_gives_one_instance_per_token_and_base() -> None:
    a = Gateway.for_token("Bot one", api_base="https://a.example")
    assert Gateway.for_token("one", api_base="https://a.example/") is a
    assert Gateway.for_token("one", api_base="https://b.example") is not a
    assert Gateway.for_token("two", api_base="https://a.example") is not a
