"""The HTTP side of the fake's port: the handshake split and the two REST endpoints.

Theory of operation: every TCP connection starts as HTTP/1.1 parsed by ``h11``. A
request that asks for ``Upgrade: websocket`` is handed, bytes and all, to the gateway
side (a server-side ``wsproto`` connection replays the same bytes). Anything else is
REST: ``GET /api/v10/gateway`` (no auth), ``GET /api/v10/gateway/bot`` (``Authorization:
Bot <token>``, 401 otherwise) and, while the test asked for it, 429 with ``retry_after``
in the body and ``Retry-After`` (whole seconds, rounded up, as Discord sends it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import h11

__all__ = ["RestReply", "is_websocket_upgrade", "rest_reply"]

API_PREFIX = "/api/v10"


@dataclass(frozen=True, slots=True)
class RestReply:
    """A REST response to write: status, JSON body and extra headers."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()

    def events(self, keep_alive: bool) -> list[h11.Response | h11.Data | h11.EndOfMessage]:
        """Return the h11 events that write this reply."""
        data = json.dumps(self.body).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(data))),
            *self.headers,
        ]
        if not keep_alive:
            headers.append(("connection", "close"))
        return [
            h11.Response(status_code=self.status, headers=headers),
            h11.Data(data=data),
            h11.EndOfMessage(),
        ]


def is_websocket_upgrade(request: h11.Request) -> bool:
    """Tell whether ``request`` asks to become a WebSocket."""
    for name, value in request.headers:
        if name.lower() == b"upgrade" and value.lower() == b"websocket":
            return True
    return False


def header(request: h11.Request, wanted: bytes) -> str | None:
    """Return one header's value (decoded as latin-1), or ``None``."""
    for name, value in request.headers:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None


def rate_limited(retry_after: float) -> RestReply:
    """Return Discord's 429 answer."""
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    headers = (
        ("retry-after", str(max(1, math.ceil(retry_after)))),
        ("x-ratelimit-scope", "user"),
        ("x-ratelimit-global", "false"),
    )
    return RestReply(429, body, headers)


def rest_reply(
    method: str, path: str, authorization: str | None, *, token: str, gateway: dict[str, Any]
) -> RestReply:
    """Return the reply to a REST request that is not rate limited.

    ``gateway`` is the ``GET /gateway/bot`` body; ``GET /gateway`` returns its ``url``.
    """
    path = path.rstrip("/") or "/"
    if path not in (f"{API_PREFIX}/gateway", f"{API_PREFIX}/gateway/bot"):
        return RestReply(404, {"message": "404: Not Found", "code": 0})
    if method != "GET":
        return RestReply(405, {"message": "405: Method Not Allowed", "code": 0})
    if path.endswith("/gateway"):
        return RestReply(200, {"url": gateway["url"]})
    if authorization != f"Bot {token}":
        return RestReply(401, {"message": "401: Unauthorized", "code": 0})
    return RestReply(200, gateway)
