"""``Gateway``: a token's connection information, from ``GET /gateway/bot`` (httpx.Client).

The blocking twin of ``gateway_anyio.Gateway``: same constructor, same properties,
same errors; ``fetch()`` blocks instead of being awaited.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from gateway_proto.config import DEFAULT_USER_AGENT
from gateway_proto.driver_support import (
    DEFAULT_API_BASE,
    GatewayBase,
    GatewayInfo,
    resolve_api_base,
)

__all__ = ["DEFAULT_API_BASE", "Gateway"]

_log = logging.getLogger("gateway_sync.gateway")


class Gateway(GatewayBase):
    """Connection information for one bot token (``url``, ``shards``, limits).

    Prefer :meth:`for_token`, which hands out one instance per token and API base,
    so every shard and cluster of a process shares it. Call :meth:`fetch` to ask
    Discord (the answer changes as the bot joins guilds, so it is not cached for
    long); the properties read the last answer. Thread-safe.

    Args:
        token: the bot token (with or without the ``Bot`` prefix).
        api_base: the REST base URL (point it at a fake gateway in tests); default:
            the ``DISCORD_API_BASE`` environment variable if set, else
            :data:`DEFAULT_API_BASE` (Discord's).
        timeout: seconds for one HTTP request.
        max_retries: network errors and 5xx answers retried this many times.
        transport: an ``httpx.BaseTransport`` (tests inject a mock one).
        verify: TLS verification for REST: ``True``, ``False`` or an ``ssl.SSLContext``.
        backoff_base: the first retry's upper bound in seconds (doubling, capped at 10).
        user_agent: the ``User-Agent`` of REST requests, and of the WebSocket upgrade
            of every shard built on this gateway that is not given its own (default:
            ``gateway_proto.DEFAULT_USER_AGENT``, Discord's ``DiscordBot (URL, version)``).
        sleep: how to wait between attempts (``time.sleep``; injectable for tests).

    """

    _instances: ClassVar[dict[tuple[str, str], Gateway]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        token: str,
        *,
        api_base: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        verify: Any = True,
        backoff_base: float = 0.5,
        user_agent: str = DEFAULT_USER_AGENT,
        sleep: Callable[[float], object] = time.sleep,
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
        self._sleep = sleep
        self._lock = threading.Lock()

    @classmethod
    def for_token(cls, token: str, *, api_base: str | None = None, **options: Any) -> Gateway:
        """Return the process-wide ``Gateway`` of ``token`` (created on first use).

        ``api_base`` defaults as in the constructor (``DISCORD_API_BASE``, else Discord's).
        """
        api_base = resolve_api_base(api_base, os.environ)
        key = (token.removeprefix("Bot ").strip(), api_base)
        with cls._instances_lock:
            gateway = cls._instances.get(key)
            if gateway is None:
                gateway = cls._instances[key] = cls(token, api_base=api_base, **options)
            return gateway

    def fetch(self, *, user_agent: str | None = None) -> GatewayInfo:
        """``GET {api_base}/gateway/bot`` and return (and keep) the answer.

        A 429 waits the time Discord asks for; network errors and 5xx answers are
        retried ``max_retries`` times with capped, jittered exponential backoff.

        ``user_agent`` replaces :attr:`user_agent` for this request (a shard passes its own).

        Raises:
            InvalidTokenError: Discord answered 401: the token is wrong.
            GatewayRequestError: any other failure, after the retries.

        """
        with (
            self._lock,
            httpx.Client(
                timeout=self.timeout, transport=self._transport, verify=self._verify
            ) as client,
        ):
            self._info = self._fetch(client, user_agent)
            return self._info

    def _fetch(self, client: httpx.Client, user_agent: str | None) -> GatewayInfo:
        fetch = self._fetch_policy(_log, user_agent=user_agent)
        outcome: GatewayInfo | float
        while True:
            try:
                response = client.get(fetch.url(self.api_base), headers=fetch.headers)
            except httpx.TransportError as exc:
                outcome = fetch.failed(exc)
            else:
                outcome = fetch.answered(
                    response.status_code, response.headers, _json_or_none(response)
                )
            if isinstance(outcome, GatewayInfo):
                return outcome
            self._sleep(outcome)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
