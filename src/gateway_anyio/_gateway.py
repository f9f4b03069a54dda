"""``Gateway``: a token's connection information, from ``GET /gateway/bot`` (httpx)."""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

import anyio
import httpx

from gateway_proto.backoff import Backoff
from gateway_proto.driver_support import (
    GatewayFetch,
    GatewayInfo,
)
from gateway_proto.identify import SessionStartLimit

__all__ = ["DEFAULT_API_BASE", "Gateway"]

#: Discord's REST base for API v10.
DEFAULT_API_BASE = "https://discord.com/api/v10"

_log = logging.getLogger("gateway_anyio.gateway")


class Gateway:
    """Connection information for one bot token (``url``, ``shards``, limits).

    Prefer :meth:`for_token`, which hands out one instance per token and API base,
    so every shard and cluster of a process shares it. Call :meth:`fetch` to ask
    Discord (it is not cached for long on purpose: the recommended shard count and
    the session start budget change); the properties read the last answer.

    Args:
        token: the bot token (with or without the ``Bot`` prefix).
        api_base: the REST base URL (point it at a fake gateway in tests).
        timeout: seconds for one HTTP request.
        max_retries: network errors and 5xx answers retried this many times.
        transport: an ``httpx.AsyncBaseTransport`` (tests inject a mock one).
        verify: TLS verification for REST: ``True``, ``False`` or an ``ssl.SSLContext``.
        backoff_base: the first retry's upper bound in seconds (doubling, capped at 10).

    """

    _instances: ClassVar[dict[tuple[str, str], Gateway]] = {}

    def __init__(
        self,
        token: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        max_retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Any = True,
        backoff_base: float = 0.5,
    ) -> None:
        token = token.strip()
        if token.startswith("Bot "):
            token = token[4:]
        if not token:
            raise ValueError("token must be a non-empty str")
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._transport = transport
        self._verify = verify
        self._info: GatewayInfo | None = None
        self._backoff_base = backoff_base

    @classmethod
    def for_token(cls, token: str, *, api_base: str = DEFAULT_API_BASE, **options: Any) -> Gateway:
        """Return the process-wide ``Gateway`` of ``token`` (created on first use)."""
        key = (token.removeprefix("Bot ").strip(), api_base.rstrip("/"))
        gateway = cls._instances.get(key)
        if gateway is None:
            gateway = cls._instances[key] = cls(token, api_base=api_base, **options)
        return gateway

    def __repr__(self) -> str:
        return f"Gateway(api_base={self.api_base!r}, info={self._info!r})"

    @property
    def token(self) -> str:
        """The bot token, without the ``Bot`` prefix (never logged)."""
        return self._token

    @property
    def info(self) -> GatewayInfo:
        """The last answer of :meth:`fetch` (``RuntimeError`` before the first)."""
        if self._info is None:
            raise RuntimeError("Gateway.fetch() has not been awaited yet")
        return self._info

    @property
    def fetched(self) -> bool:
        """Whether :meth:`fetch` has answered at least once."""
        return self._info is not None

    @property
    def url(self) -> str:
        """The WebSocket URL to connect to."""
        return self.info.url

    @property
    def shards(self) -> int:
        """The recommended shard count."""
        return self.info.shards

    @property
    def session_start_limit(self) -> SessionStartLimit:
        """The identify budget (``reset_after`` in seconds)."""
        return self.info.session_start_limit

    @property
    def max_concurrency(self) -> int:
        """Identifies allowed per 5 s window (the number of buckets)."""
        return self.info.max_concurrency

    async def fetch(self) -> GatewayInfo:
        """``GET {api_base}/gateway/bot`` and return (and keep) the answer.

        A 429 waits the time Discord asks for; network errors and 5xx answers are
        retried ``max_retries`` times with capped, jittered exponential backoff.

        Raises:
            InvalidTokenError: Discord answered 401: the token is wrong.
            GatewayRequestError: any other failure, after the retries.

        """
        fetch = GatewayFetch(
            self._token,
            max_retries=self.max_retries,
            backoff=Backoff(random.Random(), base=self._backoff_base, cap=10.0),
            log=_log,
        )
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
