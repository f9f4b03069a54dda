"""The token never appears in a repr, an event, or an exception message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway_proto import (
    Activity,
    GatewayConnection,
    GatewayError,
    Reconnector,
    Session,
    ShardConfig,
    UpdatePresence,
)

from .helpers import (
    RESUME_URL,
    TOKEN,
    GatewayPeer,
    drive,
    events,
    make_config,
    open_connection,
    ready_connection,
)

SECRET_PARTS = [TOKEN, TOKEN.split(".")[-1]]


def _assert_clean(*things: object) -> None:
    for thing in things:
        for text in (repr(thing), str(thing)):
            for secret in SECRET_PARTS:
                assert secret not in text, f"token leaked in {type(thing).__name__}: {text}"


def test_config_and_connection_reprs() -> None:
    config = make_config()
    conn, _peer = ready_connection(config=config)
    _assert_clean(config, conn, conn.session, Reconnector(config))
    assert ShardConfig(token="Bot " + TOKEN, intents=1).token == TOKEN


def _collect(scenario: Callable[[], Any]) -> list[object]:
    """Run a scenario; return every event it produced and the exception it raised."""
    seen: list[object] = []
    try:
        seen.extend(scenario())
    except GatewayError as exc:
        seen.append(exc)
        seen.extend(exc.args)
    return seen


def _events_of(conn: GatewayConnection, peer: GatewayPeer, *data: bytes) -> list[object]:
    out: list[object] = []
    for chunk in data:
        conn.receive_data(chunk, 1.0)
        out.extend(events(conn))
    drive(conn, peer)
    return out


def _identify() -> list[object]:
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    return [*events(conn)]


def _resume() -> list[object]:
    conn, peer = open_connection(session=Session(session_id="s", sequence=1, resume_url=RESUME_URL))
    return _events_of(conn, peer, peer.hello())


def _fatal(code: int) -> Callable[[], list[object]]:
    def run() -> list[object]:
        conn, peer = ready_connection()
        return _events_of(conn, peer, peer.close(code, "rejected"))

    return run


def _second_identify() -> list[object]:
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    conn.identify(0.0)
    return []


def _oversize_identify() -> list[object]:
    presence = UpdatePresence(activities=[Activity(name="z" * 5000)])
    conn, peer = open_connection(config=make_config(presence=presence))
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    return []


def _garbage() -> list[object]:
    conn, peer = ready_connection()
    return _events_of(conn, peer, b"\x82\x09hello\x00\x00\xff\xff")


def _handshake_rejected() -> list[object]:
    conn = GatewayConnection(make_config())
    conn.connect(0.0)
    peer = GatewayPeer()
    drive(conn, peer)
    return _events_of(conn, peer, peer.reject(401))


def _bad_configs() -> list[object]:
    errors: list[object] = []
    for options in (
        {"intents": -1},
        {"shard": (3, 2)},
        {"url": "https://x"},
        {"large_threshold": 1},
        {"encoding": "xml"},
        {"compression": "payload", "encoding": "etf"},
    ):
        try:
            make_config(**options)
        except GatewayError as exc:
            errors.append(exc)
    assert len(errors) == 6
    return errors


SCENARIOS = {
    "identify": _identify,
    "resume": _resume,
    "fatal 4004": _fatal(4004),
    "fatal 4014": _fatal(4014),
    "second identify": _second_identify,
    "oversize identify": _oversize_identify,
    "garbage": _garbage,
    "handshake rejected": _handshake_rejected,
    "bad configs": _bad_configs,
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_no_token_in_events_or_errors(scenario: Callable[[], list[object]]) -> None:
    seen = _collect(scenario)
    assert seen
    _assert_clean(*seen)


def test_the_suite_wide_guard_catches_a_leak() -> None:
    from .conftest import _check

    with pytest.raises(AssertionError, match="leaked"):
        _check(ValueError(f"bad token {TOKEN}"))
