"""A real ``redis-server`` per test session, on a free loopback port, with no persistence.

Never a mock: the tests run against Redis itself (Debian's ``redis-server``, which
``scripts/test.sh`` installs when it is missing). A missing server fails loudly;
it is never a skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running ``redis-server``: where it listens, and how to restart it."""

    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(port: int | None = None) -> RedisServer:
    """Start ``redis-server`` on loopback (``port``, or a free one) and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: `apt-get install redis-server` "
            "(scripts/test.sh does this on Debian)"
        )
    port = port or _free_port()
    workdir = tempfile.mkdtemp(prefix="spectacles-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", workdir,
            "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited with {process.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return RedisServer("127.0.0.1", port, process)
        except OSError:
            time.sleep(0.02)
    process.kill()
    pytest.fail(f"redis-server did not answer on port {port} within 10 s")


def stop_redis(server: RedisServer) -> None:
    """Stop the server and wait for it."""
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One ``redis-server`` for the whole test session."""
    server = start_redis()
    try:
        yield server
    finally:
        stop_redis(server)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, its database flushed before each test."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url
