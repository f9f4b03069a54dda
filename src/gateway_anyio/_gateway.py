"""``Gateway``: a token's connection information, from ``GET /gateway/bot`` (httpx)."""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

import anyio
import httpx

from gateway_proto.config import DEFAULT_USER_AGENT
from gateway_proto.driver_support import (
    DEFAULT_API_BASE,
    GatewayBase,
    GatewayInfo,
    resolve_api_base,
)

__all__ = ["DEFAULT_API_BASE", "Gateway"]

_log = logging.getLogger("gateway_anyio.gateway")


class Gateway(GatewayBase):
    """Connection information for one bot token (``url``, ``shards``, limits).

    Prefer :meth:`for_token`, which hands out one instance per token and API base,
    so every shard and cluster of a process shares it. Call :meth:`fetch` to ask
    Discord (it is not cached for long on purpose: the recommended shard count and
    the session start budget change); the properties read the last answer.

    Args:
        token: the bot token (with or without the ``Bot`` prefix).
        api_base: the REST base URL (point it at a fake gateway in tests); default:
            the ``DISCORD_API_BASE`` environment variable if set, else
            :data:`DEFAULT_API_BASE` (Discord's).
        timeout: seconds for one HTTP request.
        max_retries: network errors and 5xx answers retried this many times.
        transport: an ``httpx.AsyncBaseTransport`` (tests inject a mock one).
        verify: TLS verification for REST: ``True``, ``False`` or an ``ssl.SSLContext``.
        backoff_base: the first retry's upper bound in seconds (doubling, capped at 10).
        user_agent: the ``User-Agent`` of REST requests, and of the WebSocket upgrade
            of every shard built on this gateway that is not given its own (default:
            ``gateway_proto.DEFAULT_USER_AGENT``, Discord's ``DiscordBot (URL, version)``).

    """

    _instances: ClassVar[dict[tuple[str, str], Gateway]] = {}

    def __init__(
        self,
        token: str,
        *,
        api_base: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Any = True,
        backoff_base: float = 0.5,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        super().__init__(
            token,
            api_base=resolve_api_base(api_base, os.environ),
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            user_agent=user_agent,
        )
        self._transport = transport
        self._verify = verify
        self._backoff_base = backoff_base

    @classmethod
    def for_token(cls, token: str, *, api_base: str | None = None, **options: Any) -> Gateway:
        """Return the process-wide ``Gateway`` of ``token`` (created on first use).

        ``api_base`` defaults as in the constructor (``DISCORD_API_BASE``, else Discord's).
        """
        api_base = resolve_api_base(api_base, os.environ)
        key = (token.removeprefix("Bot ").strip(), api_base)
        gateway = cls._instances.get(key)
        if gateway is None:
            gateway = cls._instances[key] = cls(token, api_base=api_base, **options)
        return gateway

    async def fetch(self, *, user_agent: str | None = None) -> GatewayInfo:
        """``GET {api_base}/gateway/bot`` and return (and keep) the answer.

        A 429 waits the time Discord asks for; network errors and 5xx answers are
        retried ``max_retries`` times with capped, jittered exponential backoff.

        ``user_agent`` replaces :attr:`user_agent` for this request (a shard passes its own).

        Raises:
            InvalidTokenError: Discord answered 401: the token is wrong.
            GatewayRequestError: any other failure, after the retries.

        """
        fetch = self._fetch_policy(_log, user_agent=user_agent)
        async with httpx.AsyncClient(
            timeout=self.timeout, transport=self._transport, verify=self._verify
        ) as client:
            outcome: GatewayInfo | float
            while True:
                try:
                    response = await client.get(fetch.url(self.api_base), headers=fetch.headers)
                except httpx.TransportError as exc:
                    outcome = fetch.failed(exc)
                else:
                    outcome = fetch.answered(
                        response.status_code, response.headers, _json_or_none(response)
                    )
                if isinstance(outcome, GatewayInfo):
                    self._info = outcome
                    return outcome
                await anyio.sleep(outcome)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
