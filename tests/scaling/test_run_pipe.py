"""A closed stdout ends ``run`` and ``worker`` quietly (141), as it ends ``listen``.

As ``cat`` does (tests/cli/test_pipe.py): the process stops cleanly (sessions saved,
leases released, the batch in hand acknowledged), prints nothing, and exits
128 + SIGPIPE. And ``run``'s first status line names the gateway URL it connects
to, as ``listen``'s does, not the REST base it asked.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import pytest

from cli._pipe import PipeResult, first_line_then_close
from gateway_redis.streams import EventPublisher
from gateway_testing import FakeGateway

from ._gateways import SRC, TOKEN
from ._publishing import KEYS, anyio_backend
from ._publishing import TOKEN as STREAMS_TOKEN

__all__ = ["anyio_backend"]  # the fixture, imported to apply here

TIMEOUT = 45.0


def _env(token: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    env.pop("DISCORD_TOKEN", None)
    if token is not None:
        env["DISCORD_TOKEN"] = token
    return env


def _run(redis_url: str, *extra: str) -> tuple[PipeResult, str]:
    fake = FakeGateway(token=TOKEN, shards=1, event_rate=200.0, identify_window=0.05)
    with fake.run_in_thread() as running:
        argv = [
            "run", "--redis", redis_url, "--api-base", running.api_base, "--token", TOKEN,
            "--jsonl", "--count", "1", "--shard-count", "1", *extra,
        ]  # fmt: skip
        return first_line_then_close(argv, env=_env(), timeout=TIMEOUT), running.gateway_url


def test_run_ends_quietly_when_its_stdout_closes(redis_url: str) -> None:
    result, _ = _run(redis_url)
    assert b'"event":"READY"' in result.first.replace(b" ", b"")
    assert result.err == ""
    assert result.status == 141


def test_runs_first_line_names_the_gateway_url(redis_url: str) -> None:
    result, gateway_url = _run(redis_url, "--status", "on")
    first = result.err.splitlines()[0]
    assert first.startswith("· connecting to ws://127.0.0.1:"), first
    assert gateway_url.rstrip("/") in first


@pytest.mark.anyio
async def test_worker_ends_quietly_when_its_stdout_closes(redis_url: str) -> None:
    argv = ["worker", "--redis", redis_url, "--group", "pipe", "--consumer", "c1"]
    publisher = EventPublisher(redis_url, KEYS)
    async with anyio.create_task_group() as tg:
        tg.start_soon(publisher.run)

        async def keep_publishing() -> None:
            # The worker sees its reader gone only when it writes: events keep coming.
            for seq in range(1, 10_000):
                publisher.publish("MESSAGE_CREATE", 0, "s1", seq, {"n": seq})
                await anyio.sleep(0.02)

        tg.start_soon(keep_publishing)
        result = await anyio.to_thread.run_sync(
            lambda: first_line_then_close(argv, env=_env(STREAMS_TOKEN), timeout=TIMEOUT)
        )
        tg.cancel_scope.cancel()
    await publisher.aclose()
    assert b'"event":"MESSAGE_CREATE"' in result.first.replace(b" ", b"")
    assert result.err == ""
    assert result.status == 141


def test_run_packs_dispatches_in_entries_when_asked(redis_url: str) -> None:
    import redis

    from gateway_redis._keys import Keys

    result, _ = _run(redis_url, "--events-per-entry", "5")
    assert result.status == 141
    client = redis.Redis.from_url(redis_url)
    try:
        entries: Any = client.xrange(Keys.for_token(TOKEN).events)
    finally:
        client.close()
    assert entries  # READY at least: the queue is drained on the way out
    assert {field for _, fields in entries for field in fields} == {b"metas", b"payloads"}
