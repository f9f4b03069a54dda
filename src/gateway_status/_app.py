"""The status server's ASGI application: ``/metrics``, ``/livez``, ``/readyz`` and the page.

A hand-written ASGI app (no framework): six GET routes, each answered from one read
of a :class:`~gateway_status.StatusSource`. It never acts on a shard: every
route only reads. The page (``/``, ``/static/...``) is three files shipped in
this package; it polls ``/status.json`` and needs nothing from outside the
process, so it works offline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ._collector import GatewayCollector
from ._health import page_document, readiness
from ._views import StatusSource

__all__ = ["StatusApp"]

_log = logging.getLogger("gateway_status")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("_static").joinpath(name).read_bytes()


class StatusApp:
    """The ASGI application of the status server.

    Args:
        source: the shards to report on.
        grace: seconds a shard may be out of READY before ``/readyz`` fails.
        process: a name for this process, shown on the page.
        fleet: reads the whole fleet (a :class:`gateway_status.fleet.FleetReader`),
            served at ``/fleet.json`` and drawn by the page; ``None``: this process only.

    """

    def __init__(
        self,
        source: StatusSource,
        *,
        grace: float = 30.0,
        process: str = "",
        fleet: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        if grace < 0:
            raise ValueError("grace must not be negative")
        self.source = source
        self.grace = grace
        self.process = process
        self.fleet = fleet
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(source))
        # Read once: the page is the same for every request.
        self._assets = {path: (_asset(name), kind) for path, (name, kind) in _STATIC.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI connection (HTTP requests and the lifespan protocol)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: not served
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain", head=False)
            return
        try:
            if path == "/fleet.json":
                status, body, kind = await self._fleet()
            else:
                status, body, kind = self._route(path)
        except Exception:
            # A bug in reading must not reach the server as a traceback page; it
            # never touches the shards, which go on.
            _log.exception("the status server failed to answer %s", path)
            status, body, kind = 500, b'{"error": "internal error"}\n', "application/json"
        await _respond(send, status, body, kind, head=method == "HEAD")

    async def _fleet(self) -> tuple[int, bytes, str]:
        if self.fleet is None:
            return 404, b"not found\n", "text/plain"
        document = await self.fleet()
        # A fleet that could not be read (Redis down) is the reader's answer, not a crash.
        status = 503 if document.get("error") else 200
        return status, _json(document), "application/json"

    def _route(self, path: str) -> tuple[int, bytes, str]:
        if path == "/metrics":
            return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
        if path == "/livez":
            dead = self.source.dead()
            body = {"live": not dead, "dead_shards": dead}
            return (503 if dead else 200), _json(body), "application/json"
        if path == "/readyz":
            ready, body = readiness(self.source.read(), self.grace)
            return (200 if ready else 503), _json(body), "application/json"
        if path == "/status.json":
            document = page_document(self.source.read(), self.source.clock(), self.process)
            document["fleet"] = self.fleet is not None
            return 200, _json(document), "application/json"
        asset = self._assets.get(path)
        if asset is not None:
            return 200, asset[0], asset[1]
        return 404, b"not found\n", "text/plain"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _json(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True).encode() + b"\n"


async def _respond(send: Send, status: int, body: bytes, kind: str, *, head: bool) -> None:
    headers = [
        (b"content-type", kind.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
