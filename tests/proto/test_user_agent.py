"""The User-Agent: Discord's ``DiscordBot (URL, version)`` on the upgrade and on REST.

A server that requires the header (one reimplementation closes 4002 "User-Agent
header is required" without it) must see it on every WebSocket upgrade and on
``GET /gateway/bot``; a user's own value wins over the library's.
"""

from __future__ import annotations

import logging
import random
import re

import pytest

import gateway_proto
from gateway_proto import DEFAULT_USER_AGENT, GatewayConnection, LocalProtocolError
from gateway_proto.backoff import Backoff
from gateway_proto.driver_support import GatewayBase, GatewayFetch

from .helpers import TOKEN, FixedRandom, GatewayPeer, make_config

CUSTOM = "MyBot (https://bot.example.test, 2.5)"


def _upgrade_headers(**config: str) -> dict[bytes, bytes]:
    conn = GatewayConnection(make_config(**config), rng=FixedRandom(0.5))
    conn.connect(0.0)
    peer = GatewayPeer()
    peer.sent(conn.data_to_send())
    assert peer.request is not None
    return {name.lower(): value for name, value in peer.request.extra_headers}


def test_the_default_is_discords_documented_form_with_our_url_and_version() -> None:
    match = re.fullmatch(r"DiscordBot \((https://\S+), (\S+)\)", DEFAULT_USER_AGENT)
    assert match is not None, DEFAULT_USER_AGENT
    assert match.group(2) == gateway_proto.__version__
    assert make_config().user_agent == DEFAULT_USER_AGENT


def test_the_upgrade_carries_the_user_agent() -> None:
    assert _upgrade_headers()[b"user-agent"] == DEFAULT_USER_AGENT.encode()


def test_an_override_wins_on_the_upgrade() -> None:
    assert _upgrade_headers(user_agent=CUSTOM)[b"user-agent"] == CUSTOM.encode()


@pytest.mark.parametrize("bad", ["", "   ", "Bot\r\nX-Injected: 1", "caf\u00e9 (x, 1)", "\x00"])
def test_a_user_agent_that_cannot_be_a_header_is_refused_at_once(bad: str) -> None:
    with pytest.raises(LocalProtocolError, match="user_agent"):
        make_config(user_agent=bad)


def _fetch(gateway: GatewayBase, user_agent: str | None = None) -> GatewayFetch:
    return gateway._fetch_policy(logging.getLogger("test"), user_agent=user_agent)


def test_rest_carries_the_same_user_agent() -> None:
    gateway = GatewayBase(
        TOKEN, api_base="http://x/api/v10", timeout=1, max_retries=0, backoff_base=0.1
    )
    assert gateway.user_agent == DEFAULT_USER_AGENT
    headers = _fetch(gateway).headers
    assert headers["User-Agent"] == DEFAULT_USER_AGENT
    assert headers["Authorization"] == f"Bot {TOKEN}"


def test_an_override_wins_on_rest_from_the_gateway_or_from_the_fetch() -> None:
    gateway = GatewayBase(
        TOKEN,
        api_base="http://x/api/v10",
        timeout=1,
        max_retries=0,
        backoff_base=0.1,
        user_agent=CUSTOM,
    )
    assert _fetch(gateway).headers["User-Agent"] == CUSTOM
    assert _fetch(gateway, "Other (https://o.test, 1)").headers["User-Agent"] == (
        "Other (https://o.test, 1)"
    )
    direct = GatewayFetch(
        TOKEN, max_retries=0, backoff=Backoff(random.Random(0)), log=logging.getLogger("test")
    )
    assert direct.headers["User-Agent"] == DEFAULT_USER_AGENT


def test_a_bad_rest_user_agent_is_refused_at_once() -> None:
    with pytest.raises(LocalProtocolError, match="user_agent"):
        GatewayBase(
            TOKEN,
            api_base="http://x",
            timeout=1,
            max_retries=0,
            backoff_base=0.1,
            user_agent="a\nb",
        )
