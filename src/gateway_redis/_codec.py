"""JSON for payloads on Redis (orjson when installed, else the standard library), and Redis clients.

The core hands drivers decoded dispatches (``Dispatch(name, data, sequence)``), and
with ``keep_raw`` the bytes they came in (``Dispatch.raw``), which the publisher
sends on as they are when they are JSON. Otherwise (ETF, or ``keep_raw`` off)
publishing encodes ``data`` once more: orjson (the ``speed`` extra) does that in
about 1.5 µs for an everyday event; :mod:`json` takes several times as long.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

__all__ = ["DUMPS", "HAVE_ORJSON", "LOADS", "connect", "default_consumer_name"]


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in the test extra
    HAVE_ORJSON = False
    DUMPS: Callable[[Any], bytes] = _json_dumps
    LOADS: Callable[[bytes], Any] = json.loads
else:
    HAVE_ORJSON = True
    DUMPS = orjson.dumps
    LOADS = orjson.loads


def connect(redis: str | aioredis.Redis) -> aioredis.Redis:
    """Return a client for a URL (bytes replies), or the client given."""
    if isinstance(redis, str):
        return aioredis.Redis.from_url(redis, socket_connect_timeout=5.0)
    return redis


def default_consumer_name() -> str:
    """Return ``host-pid``: unique per process, stable while it runs."""
    return f"{socket.gethostname()}-{os.getpid()}"
