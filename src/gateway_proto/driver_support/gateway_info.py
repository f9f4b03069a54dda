"""``GET /gateway/bot``: its answer, its errors and the retry policy of one fetch (no I/O).

:class:`GatewayInfo` parses the answer, :class:`GatewayBase` is what both
drivers' ``Gateway`` share, and :class:`GatewayFetch` decides, response by
response, whether to return, wait and ask again, or give up.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway_proto.backoff import Backoff
from gateway_proto.config import DEFAULT_USER_AGENT, check_user_agent
from gateway_proto.errors import GatewayError
from gateway_proto.identify import SessionStartLimit

from .redaction import redact

#: Discord's REST base for API v10.
DEFAULT_API_BASE = "https://discord.com/api/v10"
#: The environment variable both drivers read when no ``api_base`` is given: one
#: setting points REST (and so, through ``GET /gateway/bot``, the gateway URL) at a
#: fake or self-hosted server.
API_BASE_ENV = "DISCORD_API_BASE"


def resolve_api_base(given: str | None, environ: Mapping[str, str]) -> str:
    """Return the REST base: ``given``, else ``environ["DISCORD_API_BASE"]``, else Discord's.

    An empty variable counts as unset. The drivers pass ``os.environ``; the core
    reads no environment of its own.
    """
    if given:
        return given.rstrip("/")
    return (environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")


class GatewayRequestError(GatewayError):
    """``GET /gateway/bot`` failed for good (after retries), or answered nonsense.

    Attributes:
        status_code: the last HTTP status, or ``None`` for a network failure.

    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class InvalidTokenError(GatewayRequestError):
    """Discord refused the token (HTTP 401): fix the token; retrying will not help."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayInfo:
    """The answer of ``GET /gateway/bot``.

    Attributes:
        url: the WebSocket URL to connect to.
        shards: the recommended shard count.
        session_start_limit: the identify budget and ``max_concurrency``.

    """

    url: str
    shards: int
    session_start_limit: SessionStartLimit

    @property
    def max_concurrency(self) -> int:
        """Identifies allowed per 5 s (the number of identify buckets)."""
        return self.session_start_limit.max_concurrency

    @classmethod
    def from_api(cls, data: Any) -> GatewayInfo:
        """Parse the decoded JSON body.

        Raises:
            ValueError: if a field is missing or of the wrong type.

        """
        if not isinstance(data, Mapping):
            raise ValueError(f"GET /gateway/bot answered {data!r}, not an object")
        url = data.get("url")
        shards = data.get("shards")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"GET /gateway/bot gave no ws(s) url: {url!r}")
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"GET /gateway/bot gave a bad shard count: {shards!r}")
        limit = data.get("session_start_limit")
        if not isinstance(limit, dict):
            raise ValueError(f"GET /gateway/bot gave no session_start_limit: {limit!r}")
        return cls(url=url, shards=shards, session_start_limit=SessionStartLimit.from_api(limit))


def parse_retry_after(headers: Mapping[str, str], body: Any, *, default: float = 1.0) -> float:
    """Return the seconds a 429 asks to wait (body ``retry_after``, else the header)."""
    if isinstance(body, Mapping):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    for key in ("retry-after", "x-ratelimit-reset-after"):
        raw = headers.get(key)
        if raw is not None:
            try:
                return max(0.0, float(raw))
            except ValueError:
                continue
    return default


class GatewayBase:
    """What both drivers' ``Gateway`` share: the token, the settings, the last answer.

    The drivers add only ``fetch`` (with their own HTTP client and sleep) and the
    per-token registry. :attr:`user_agent` goes on every REST request, and shards
    built on this gateway send it on the WebSocket upgrade too, unless given their own.
    """

    def __init__(
        self,
        token: str,
        *,
        api_base: str,
        timeout: float,
        max_retries: int,
        backoff_base: float,
        user_agent: str = DEFAULT_USER_AGENT,
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
        self._backoff_base = backoff_base
        #: The ``User-Agent`` of REST requests and (by default) of the shards' upgrades.
        self.user_agent = check_user_agent(user_agent)
        self._info: GatewayInfo | None = None

    def __repr__(self) -> str:
        return f"Gateway(api_base={self.api_base!r}, info={self._info!r})"

    @property
    def token(self) -> str:
        """The bot token, without the ``Bot`` prefix (never logged)."""
        return self._token

    @property
    def info(self) -> GatewayInfo:
        """The last answer of ``fetch`` (``RuntimeError`` before the first)."""
        if self._info is None:
            raise RuntimeError("Gateway.fetch() has not answered yet")
        return self._info

    @property
    def fetched(self) -> bool:
        """Whether ``fetch`` has answered at least once."""
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

    def _fetch_policy(self, log: logging.Logger, *, user_agent: str | None = None) -> GatewayFetch:
        """Return a fresh retry policy for one ``fetch`` (``user_agent``: else this gateway's)."""
        backoff = Backoff(random.Random(), base=self._backoff_base, cap=10.0)
        return GatewayFetch(
            self._token,
            max_retries=self.max_retries,
            backoff=backoff,
            log=log,
            user_agent=check_user_agent(user_agent or self.user_agent),
        )


class GatewayFetch:
    """The decisions of one ``GET /gateway/bot`` with retries, without the I/O.

    A driver sends :attr:`headers` to :meth:`url`, then reports what happened:
    :meth:`answered` with the response (it returns the :class:`GatewayInfo`, or
    the seconds to wait before asking again), or :meth:`failed` for a transport
    error (the seconds to wait). Both raise when asking again is pointless: a 401
    (:class:`InvalidTokenError`), another 4xx, a 200 with a malformed body, or
    ``max_retries`` exhausted (:class:`GatewayRequestError`). A 429 waits what
    Discord asks and does not count as a retry.
    """

    def __init__(
        self,
        token: str,
        *,
        max_retries: int,
        backoff: Backoff,
        log: logging.Logger,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.headers = {"Authorization": f"Bot {token}", "User-Agent": user_agent}
        self._token = token
        self._max_retries = max_retries
        self._backoff = backoff
        self._log = log

    @staticmethod
    def url(api_base: str) -> str:
        """Return the endpoint under ``api_base``."""
        return f"{api_base}/gateway/bot"

    def answered(self, status: int, headers: Mapping[str, str], body: Any) -> GatewayInfo | float:
        """Take a response (``body``: its JSON, ``None`` if it had none)."""
        if status == 200:
            try:
                return GatewayInfo.from_api(body)
            except ValueError as exc:
                raise GatewayRequestError(
                    f"GET /gateway/bot answered nonsense: {exc}", status_code=200
                ) from None
        if status == 401:
            raise InvalidTokenError(
                "Discord refused the bot token (HTTP 401 on GET /gateway/bot); check the token",
                status_code=401,
            )
        if status == 429:
            delay = parse_retry_after(headers, body)
            self._log.warning("GET /gateway/bot rate limited; retrying in %.2f s", delay)
            return delay
        problem = f"HTTP {status}"
        if status < 500:  # other 4xx: asking again will not help
            raise GatewayRequestError(f"GET /gateway/bot failed: {problem}", status_code=status)
        return self._retry(problem, status)

    def failed(self, error: BaseException) -> float:
        """Take a transport error (refused, reset, timed out, TLS...)."""
        return self._retry(redact(f"{type(error).__name__}: {error}", [self._token]), None)

    def _retry(self, problem: str, status: int | None) -> float:
        if self._backoff.attempt >= self._max_retries:
            raise GatewayRequestError(
                f"GET /gateway/bot failed after {self._backoff.attempt + 1} attempts: {problem}",
                status_code=status,
            )
        delay = self._backoff.next_delay()
        self._log.warning("GET /gateway/bot failed (%s); retrying in %.2f s", problem, delay)
        return delay
