"""Driver scenarios against real servers' habits (the fake's options for them).

Run once per driver (anyio on asyncio and trio, the blocking driver), as
``test_scenarios.py`` does. The fake refuses an upgrade without a User-Agent by
default, as one server reimplementation does; a shard that such a server keeps
refusing before READY must say so, every time, with the server's reason.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from gateway_proto import DEFAULT_USER_AGENT
from gateway_proto.commands import UpdatePresence
from gateway_proto.driver_support import ConnectionRejectedError
from gateway_testing import FakeGateway

from .adapter import TOKEN, DriverAdapter

pytestmark = pytest.mark.anyio

#: ``random.Random(2172).random()`` is 0.99976: a shard with this id draws the worst jitter.
WORST_JITTER_SEED = 2172
CUSTOM = "ScenarioBot (https://bot.example.test, 3.1)"


def fake(**options: Any) -> FakeGateway:
    options.setdefault("heartbeat_interval", 0.25)
    return FakeGateway(token=TOKEN, **options)


def _rest_agents(gw: FakeGateway) -> list[str | None]:
    return [r.user_agent for r in gw.http_requests if r.path.endswith("/gateway/bot")]


async def test_a_server_that_requires_a_user_agent_lets_the_shard_in(
    driver: DriverAdapter,
) -> None:
    async with fake() as gw, driver.start_shard(gw) as run:
        assert gw.options.require_user_agent  # the fake's default, as that server's
        await run.wait_for("READY")
        agent = gw.connections[0].user_agent
        assert agent == DEFAULT_USER_AGENT
        assert re.fullmatch(r"DiscordBot \(https://\S+, \S+\)", agent)
        assert _rest_agents(gw) == [DEFAULT_USER_AGENT]
        assert not [s for s in run.seen if s.name == "error"]


async def test_the_users_user_agent_wins_on_the_upgrade_and_on_rest(
    driver: DriverAdapter,
) -> None:
    async with fake() as gw, driver.start_shard(gw, user_agent=CUSTOM) as run:
        await run.wait_for("READY")
        assert gw.connections[0].user_agent == CUSTOM
        assert _rest_agents(gw) == [CUSTOM]


async def test_a_shard_refused_again_and_again_before_ready_reports_each_time(
    driver: DriverAdapter,
) -> None:
    # This server speaks ETF only and closes 4002 with its reason on every attempt.
    async with fake(encodings=("etf",)) as gw, driver.start_shard(gw) as run:
        await run.wait_for("error", count=2)
        errors = [s.data for s in run.seen if s.name == "error"]
        assert all(isinstance(e, ConnectionRejectedError) for e in errors), errors
        first, second = errors[:2]
        assert (first.code, second.code) == (4002, 4002)
        assert "not served here" in first.reason
        assert (first.in_a_row, second.in_a_row) == (1, 2)
        assert "4002" in str(second)
        assert "2 in a row" in str(second)
        assert "not served here" in str(second)
        assert run.shard().state.value != "ready"
        assert not run.dispatches("READY")


async def test_a_strict_first_heartbeat_limit_is_never_tripped(driver: DriverAdapter) -> None:
    # The server closes 4000 "Heartbeat expired" if the first heartbeat comes later
    # than one interval after HELLO. The adapters seed the shard's rng with its id;
    # random.Random(2172).random() is 0.99976, about the worst jitter there is: the
    # first heartbeat must still leave room for the trip to the server.
    assert random.Random(WORST_JITTER_SEED).random() > 0.9997
    interval = 1.0
    gw = fake(heartbeat_interval=interval, first_heartbeat_limit=interval)
    worst = driver.start_shard(gw, shard_id=WORST_JITTER_SEED, shard_count=WORST_JITTER_SEED + 1)
    async with gw, worst as run:
        await run.wait_for("READY")
        conn = gw.connections[0]
        await conn.wait_until(lambda: len(conn.heartbeats) >= 2 or conn.closed, 4 * interval)
        assert (conn.server_close_code, conn.server_close_reason) == (None, None)
        assert conn.first_heartbeat_at is not None
        assert not [s for s in run.seen if s.name == "close"]


async def test_a_fixed_window_command_limit_is_never_tripped(driver: DriverAdapter) -> None:
    # 120 payloads per fixed 60 s window, heartbeats included, as that server counts.
    gw = fake(heartbeat_interval=5.0, fixed_command_window=True)
    async with gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        for n in range(150):  # more than the window holds: the limiter holds the rest
            await run.send(UpdatePresence(afk=n % 2 == 0))
        conn = gw.connections[0]
        await conn.wait_until(lambda: len(conn.payloads(3)) >= 100)
        assert len(conn.sent) <= 120
        assert conn.server_close_code is None
        assert not [s for s in run.seen if s.name == "close"]
