"""A fake gateway for idle shards, in a child process (shared by the idle benchmarks).

The fake (``gateway_testing.FakeGateway``) serves ``shards`` shards with
``max_concurrency`` = ``shards`` (identify is not the limit), 41.25 s heartbeats
(Discord's usual HELLO interval), one small guild per shard and a session start
budget that never runs out. It runs in a process of its own, so that its CPU time
is not counted with the shards'.

Use: ``with IdleFake(1000) as fake: ... fake.port ...``; the child stops when its
stdin closes.
"""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType

__all__ = ["HEARTBEAT_INTERVAL", "TOKEN", "IdleFake", "fake_main"]

TOKEN = "bench-token"
#: Seconds, sent in HELLO (Discord's usual interval).
HEARTBEAT_INTERVAL = 41.25


def fake_main(shards: int) -> None:
    """Child: a fake gateway for ``shards`` idle shards; prints its port; stops on stdin EOF."""
    import anyio
    import anyio.to_thread

    from gateway_testing import FakeGateway

    async def serve() -> None:
        async with FakeGateway(
            token=TOKEN,
            shards=shards,
            max_concurrency=shards,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            guilds_per_shard=1,
            members_per_guild=5,
            session_start_total=100_000,
            history_limit=20,
        ) as fake:
            print(fake.port, flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)

    anyio.run(serve)


class IdleFake:
    """The fake gateway of :func:`fake_main` in a child process, for a ``with`` block."""

    def __init__(self, shards: int) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(shards)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        #: The fake's loopback port (HTTP ``/api/v10`` and the WebSocket).
        self.port = int(self._proc.stdout.readline())

    @property
    def api_base(self) -> str:
        """The fake's REST base, for a ``Gateway``'s ``api_base``."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    def close(self) -> None:
        """Stop the child and wait for it."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._proc.stdout.close()

    def __enter__(self) -> IdleFake:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


if __name__ == "__main__":
    fake_main(int(sys.argv[1]))
