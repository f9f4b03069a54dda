"""The fleet on one status page: every process's shards, read from a real Redis.

Two ``GatewayProcess`` objects share two shards (one each) against a fake gateway;
process A serves the status app with a :class:`FleetReader` over real loopback
HTTP. ``/fleet.json`` names who holds which shard, gives A's own shard its live
state, and shows a shard nobody holds once B stops. Then ``spectacles-gateway run
--status`` end to end, and a Redis that does not answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx
import pytest

from gateway_anyio import Gateway, ShardState
from gateway_redis._keys import Keys
from gateway_redis.leases import LeaseTiming
from gateway_redis.process import GatewayProcess, connect_redis
from gateway_status import StatusApp, serve_app
from gateway_status.fleet import FREE, HELD_ELSEWHERE, FleetReader, process_source
from gateway_testing import FakeGateway

from ._gateways import SRC, TOKEN
from ._publishing import anyio_backend
from .conftest import _free_port
from .test_process import running, wait_for

__all__ = ["anyio_backend"]  # the fixture (asyncio: redis.asyncio), imported to apply here

KEYS = Keys.for_token(TOKEN)
TIMEOUT = 45.0


def _process(fake: FakeGateway, redis_url: str, owner: str) -> GatewayProcess:
    return GatewayProcess(
        Gateway(TOKEN, api_base=fake.api_base),
        redis_url,
        intents=513,
        count=1,
        shard_count=2,
        timing=LeaseTiming(ttl=2.0),
        save_interval=0.2,
        owner=owner,
    )


async def _fleet(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        answer = await client.get(url + "fleet.json")
    return answer.status_code, answer.json()


async def _until_fleet(url: str, check: Any) -> dict[str, Any]:
    """Poll ``/fleet.json`` until ``check(document)`` holds (or fail after 10 s)."""
    with anyio.fail_after(10):
        while True:
            status, document = await _fleet(url)
            if status == 200 and check(document):
                return document
            await anyio.sleep(0.05)


def _by_id(document: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {shard["id"]: shard for shard in document["shards"]}


@pytest.mark.anyio
async def test_one_page_shows_which_process_holds_which_shard(redis_url: str) -> None:
    async with (
        FakeGateway(token=TOKEN, shards=2, max_concurrency=2, event_rate=20.0) as fake,
        anyio.create_task_group() as tg,
    ):
        a, b = _process(fake, redis_url, "proc-a"), _process(fake, redis_url, "proc-b")
        redis = connect_redis(redis_url)
        source = process_source(a)
        reader = FleetReader(redis, KEYS, owner=a.owner, local=source)  # count from records
        app = StatusApp(source, process=a.owner, fleet=reader)
        url = await tg.start(serve_app, app, "127.0.0.1", 0)
        async with running(a), running(b):

            def both_held(doc: dict[str, Any]) -> bool:
                shards = _by_id(doc)
                mine = [s for s in shards.values() if s["owner"] == "proc-a"]
                return (
                    len(shards) == 2
                    and {s["owner"] for s in shards.values()} == {"proc-a", "proc-b"}
                    and len(doc["processes"]) == 2
                    and all(p["shards"] for p in doc["processes"])
                    and mine[0]["state"] == "ready"
                )

            document = await _until_fleet(url, both_held)
            assert document["self"] == "proc-a"
            assert document["shard_count"] == 2
            shards = _by_id(document)
            theirs = next(s for s in shards.values() if s["owner"] == "proc-b")
            assert theirs["state"] == HELD_ELSEWHERE
            records = {p["owner"]: p for p in document["processes"]}
            assert set(records) == {"proc-a", "proc-b"}
            assert records["proc-a"]["shards"] == sorted(a.owned)
            assert records["proc-b"]["shards"] == sorted(b.owned)
            assert records["proc-a"]["pid"] == os.getpid()
            # What the page must never show: a session id or resume URL, the token.
            text = str(document)
            assert TOKEN not in text
            assert "resume" not in text
            for session in fake.sessions:
                assert session not in text

            # A session to save first: leases are taken before the shards are READY.
            await wait_for(
                lambda: b.cluster is not None
                and bool(b.cluster.shards)
                and all(s.state is ShardState.READY for s in b.cluster.shards.values())
            )
            b.stop()
            gone = next(iter(b.owned))

            def released(doc: dict[str, Any]) -> bool:
                return _by_id(doc)[gone]["state"] == FREE and len(doc["processes"]) == 1

            document = await _until_fleet(url, released)
            assert _by_id(document)[gone]["owner"] is None
            assert _by_id(document)[gone]["saved_seq"] is not None  # its session was saved
        tg.cancel_scope.cancel()
    await redis.aclose()


@pytest.mark.anyio
async def test_a_redis_that_does_not_answer_is_a_503_with_why() -> None:
    redis = connect_redis(f"redis://127.0.0.1:{_free_port()}/0", timeout=1.0)  # nobody there
    reader = FleetReader(redis, KEYS, shard_count=4, owner="me", timeout=1.0)
    app = StatusApp(process_source(_unstarted()), fleet=reader)
    async with anyio.create_task_group() as tg:
        url = await tg.start(serve_app, app, "127.0.0.1", 0)
        status, document = await _fleet(url)
        assert status == 503
        assert document["error"].startswith("Redis did not answer")
        async with httpx.AsyncClient(timeout=5.0) as client:
            assert (await client.get(url + "status.json")).json()["fleet"] is True
        tg.cancel_scope.cancel()
    await redis.aclose()


def _unstarted() -> GatewayProcess:
    return GatewayProcess(Gateway(TOKEN), "redis://127.0.0.1:1/0", intents=1, shards="0-1/2")


def test_run_status_serves_the_fleet(redis_url: str) -> None:
    fake = FakeGateway(token=TOKEN, shards=2, max_concurrency=2, identify_window=0.05)
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1"}
    env.pop("DISCORD_TOKEN", None)
    with fake.run_in_thread() as gateway:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gateway_cli", "run", "--redis", redis_url,
                "--api-base", gateway.api_base, "--token", TOKEN, "--jsonl",
                "--shards", "0-1/2", "--lease-ttl", "2", "--status", "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        try:
            line = proc.stderr.readline()
            assert line.startswith("status page: http://127.0.0.1:"), line
            url = line.split(": ", 1)[1].strip()
            deadline = time.monotonic() + TIMEOUT
            with httpx.Client(timeout=5.0) as client:
                while True:
                    fleet = client.get(url + "fleet.json").json()
                    states = [s["state"] for s in fleet.get("shards", [])]
                    if states == ["ready", "ready"] or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                assert states == ["ready", "ready"], fleet
                assert {s["owner"] for s in fleet["shards"]} == {fleet["self"]}
                ready = client.get(url + "readyz")
                assert ready.status_code == 200, ready.text
                assert 'gateway_shard_state{shard="1",state="ready"} 1.0' in (
                    client.get(url + "metrics").text
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_run_status_on_a_port_in_use_takes_no_lease(redis_url: str) -> None:
    import socket

    import redis

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": SRC}
        env.pop("DISCORD_TOKEN", None)
        result = subprocess.run(
            [
                sys.executable, "-m", "gateway_cli", "run", "--redis", redis_url,
                "--api-base", "http://127.0.0.1:1/api/v10", "--token", TOKEN,
                "--shards", "0/1", "--status", f"127.0.0.1:{port}",
            ],
            capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot serve the status page on 127.0.0.1:{port}: Address already in use\n"
    )
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("*") == []  # no lease, no process record
    finally:
        client.close()
