"""Serving the status app: in an anyio task group, or on a thread of its own.

The socket is bound here, before the server starts, so that a port in use or an
address that cannot be bound is a :class:`StatusServerError` raised to the caller
at once (from ``task_group.start`` or :func:`start_status_thread`) and never a
traceback in a server task or a stopped shard. Hypercorn then serves on a copy
of that socket, on asyncio or trio (whichever runs the caller's loop), and on an
asyncio loop of its own on the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import threading
from typing import Any

import anyio
import hypercorn.asyncio
import sniffio
from hypercorn.config import Config

import gateway_anyio
import gateway_sync
from gateway_proto.errors import GatewayError

from ._app import StatusApp
from ._views import anyio_source, sync_source

__all__ = [
    "StatusServerError",
    "StatusThread",
    "serve_app",
    "serve_status",
    "start_status_thread",
]

_log = logging.getLogger("gateway_status")

#: The default address: loopback only; any other is the caller's explicit choice.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Seconds the server gets to finish its requests once told to stop.
_SHUTDOWN_TIMEOUT = 2.0


class StatusServerError(GatewayError):
    """The status server could not start (the address is in use or cannot be bound).

    Attributes:
        host: the address asked for.
        port: the port asked for.

    """

    def __init__(self, host: str, port: int, why: str) -> None:
        super().__init__(f"cannot serve the status page on {host}:{port}: {why}")
        self.host = host
        self.port = port


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:  # getaddrinfo would wrap it around
        raise StatusServerError(host, port, "the port must be 0-65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise StatusServerError(host, port, f"unknown address ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StatusServerError(host, port, exc.strerror or str(exc)) from None
    return sock


def _config(sock: socket.socket) -> Config:
    config = Config()
    # Hypercorn takes over a duplicate; the caller closes the original.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.errorlog = _log
    config.accesslog = None
    config.graceful_timeout = 1.0
    return config


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


async def serve_status(
    cluster: gateway_anyio.Cluster | gateway_anyio.Shard,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    grace: float = 30.0,
    process: str = "",
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the status app for an anyio cluster until cancelled.

    Start it in the task group the cluster runs in:
    ``url = await task_group.start(serve_status, cluster)``; ``url`` is where
    the page is (``port=0`` picks a free port). It reads the shards in this event
    loop, only when asked.

    Raises:
        StatusServerError: the address is in use or cannot be bound (raised
            by ``task_group.start``; the shards are not touched).
        ValueError: ``grace`` is negative.

    """
    app = StatusApp(anyio_source(cluster), grace=grace, process=process)
    await serve_app(app, host, port, task_status=task_status)


async def serve_app(
    app: StatusApp,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a :class:`StatusApp` you built (another source, a fleet view) until cancelled.

    :func:`serve_status` is this with ``StatusApp(anyio_source(cluster))``; start it
    the same way, ``url = await task_group.start(serve_app, app, host, port)``.

    Raises:
        StatusServerError: the address is in use or cannot be bound (raised
            by ``task_group.start``).

    """
    sock = _bind(host, port)
    try:
        config = _config(sock)
        # Imported only under trio: trio is an extra of its own.
        backend = "trio" if sniffio.current_async_library() == "trio" else "asyncio"
        serve: Any = importlib.import_module(f"hypercorn.{backend}").serve
        stop = anyio.Event()
        # Hypercorn is never cancelled (on asyncio that leaves its connection tasks
        # behind): it is asked to stop, and gets _SHUTDOWN_TIMEOUT to do so.
        shield = anyio.CancelScope(shield=True)

        async def run() -> None:
            with shield:
                await serve(app, config, shutdown_trigger=stop.wait)

        url = _url(sock)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            _log.info("status page on %s", url)
            task_status.started(url)
            try:
                await anyio.sleep_forever()
            finally:
                stop.set()
                shield.deadline = anyio.current_time() + _SHUTDOWN_TIMEOUT
    finally:
        sock.close()


class StatusThread:
    """A status server running on a thread of its own (see :func:`start_status_thread`).

    Attributes:
        url: where the page is.

    """

    def __init__(self, app: StatusApp, sock: socket.socket) -> None:
        self.url = _url(sock)
        self._app = app
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-status", daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            serve: Any = hypercorn.asyncio.serve  # its app type is narrower than ASGI's
            await serve(self._app, _config(self._sock), shutdown_trigger=self._stop.wait)

        try:
            asyncio.run(main())
        except Exception:
            _log.exception("the status server stopped")
        finally:
            self._started.set()
            self._sock.close()

    def close(self) -> None:
        """Stop serving and wait for the thread to end (idempotent)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join()

    def __enter__(self) -> StatusThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_status_thread(
    cluster: gateway_sync.Cluster | gateway_sync.Shard,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    grace: float = 30.0,
    process: str = "",
) -> StatusThread:
    """Serve the status app for a blocking cluster on a daemon thread; return at once.

    The thread reads only what the shards' I/O threads publish (snapshots and
    counters). ``port=0`` picks a free port (see :attr:`StatusThread.url`).
    Stop it with :meth:`StatusThread.close` (or use it as a context manager).

    Raises:
        StatusServerError: the address is in use or cannot be bound.
        ValueError: ``grace`` is negative.

    """
    app = StatusApp(sync_source(cluster), grace=grace, process=process)
    return StatusThread(app, _bind(host, port))
