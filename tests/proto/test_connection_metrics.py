"""The connection's counters for metrics: bytes in, decoded payloads, commands held back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway_proto import CloseCause, UpdatePresence
from gateway_proto.events import Opened
from gateway_proto.reconnect import CONNECT_FAILED, RESTART_REQUESTED, Reconnector

from .helpers import (
    drive,
    events,
    make_closed,
    make_config,
    open_connection,
    ready_connection,
)

PRESENCE = UpdatePresence(status="idle")


def _raw(t: str, d: Any, s: int) -> bytes:
    return json.dumps({"op": 0, "d": d, "s": s, "t": t}, separators=(",", ":")).encode()


@pytest.mark.parametrize("compression", ["zlib-stream", "zstd-stream", "payload", None])
@pytest.mark.usefixtures("wire_path")
def test_bytes_before_and_after_decompression_and_messages_decoded(
    compression: str | None,
) -> None:
    config = make_config(compression=compression)
    conn, peer = open_connection(config=config)
    before = conn.bytes_received
    assert before > 0  # the upgrade reply counts: it came off the socket too
    assert (conn.messages_decoded, conn.payload_bytes) == (0, 0)
    raws = [_raw("MESSAGE_CREATE", {"content": "x" * (40 * n)}, n) for n in range(1, 6)]
    # One read with three whole messages, then one split over two WebSocket messages.
    wire = b"".join(peer.encoded(raw) for raw in raws[:3])
    conn.receive_data(wire, 1.0)
    assert conn.bytes_received == before + len(wire)
    assert conn.messages_decoded == 0  # nothing parsed yet: parsing is on demand
    assert len(events(conn)) == 3
    assert conn.messages_decoded == 3
    assert conn.payload_bytes == sum(len(raw) for raw in raws[:3])
    tail = peer.encoded(raws[3], split=2) + peer.encoded(raws[4])
    conn.receive_data(tail[:7], 2.0)  # a partial frame: buffered, counted as received
    conn.receive_data(tail[7:], 2.0)
    assert len(events(conn)) == 2
    assert conn.bytes_received == before + len(wire) + len(tail)
    assert conn.messages_decoded == 5
    assert conn.payload_bytes == sum(len(raw) for raw in raws)


def test_commands_queued_and_the_time_they_waited_on_the_rate_limiter() -> None:
    conn, peer = open_connection()
    conn.send(PRESENCE, 0.0)  # waits for READY: not the limiter's wait
    assert conn.commands_queued == 1
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.5)
    conn.receive_data(peer.ready(), 5.0)
    events(conn)
    assert conn.commands_queued == 0
    assert conn.rate_limit_wait == 0.0
    # IDENTIFY and the first command took 2 permits; 120 - 3 reserved leaves 115.
    for _ in range(115):
        conn.send(PRESENCE, 6.0)
    assert conn.commands_queued == 0
    assert conn.rate_limit_wait == 0.0  # sent at once: no wait
    conn.send(PRESENCE, 10.0)
    conn.send(PRESENCE, 12.0)
    assert conn.commands_queued == 2
    drive(conn, peer)
    # The IDENTIFY (0.5) leaves the window at 60.5, the first command (5.0) at 65.0.
    conn.handle_timeout(60.5)
    assert conn.commands_queued == 1
    assert conn.rate_limit_wait == pytest.approx(50.5)
    conn.handle_timeout(65.0)
    assert conn.commands_queued == 0
    assert conn.rate_limit_wait == pytest.approx(50.5 + 53.0)


def test_reconnects_are_counted_by_cause_and_close_code_together() -> None:
    rec = Reconnector(make_config())
    rec.new_connection()
    rec.observe(make_closed(session=None))  # no Opened: a connect failure
    rec.after_close(make_closed(CloseCause.SERVER_CLOSED, session=None, code=4000))
    rec.new_connection()
    rec.observe(Opened())
    rec.after_close(make_closed(CloseCause.SERVER_CLOSED, session=None, code=4000))
    rec.after_close(make_closed(CloseCause.ZOMBIE, session=None, code=4000))
    rec.after_close(make_closed(CloseCause.CONNECTION_LOST, session=None, code=None))
    rec.after_restart(make_closed(CloseCause.REQUESTED, session=None, code=4000))
    rec.after_connect_failure("refused")
    assert rec.reconnect_codes == {
        (CONNECT_FAILED, 4000): 1,
        (CONNECT_FAILED, 0): 1,
        ("server_closed", 4000): 1,
        ("zombie", 4000): 1,
        ("connection_lost", 0): 1,
        (RESTART_REQUESTED, 4000): 1,
    }
    # The cause-only view is the same counts, summed over codes.
    assert rec.reconnects == {
        CONNECT_FAILED: 2,
        "server_closed": 1,
        "zombie": 1,
        "connection_lost": 1,
        RESTART_REQUESTED: 1,
    }


def test_reading_the_counters_parses_nothing() -> None:
    conn, peer = ready_connection()
    conn.receive_data(peer.dispatch("MESSAGE_CREATE", {}), 1.0)
    counts = (conn.messages_decoded, conn.payload_bytes, conn.commands_queued)
    assert counts == (conn.messages_decoded, conn.payload_bytes, conn.commands_queued)
    assert len(events(conn)) == 1  # still there to be parsed and handed out
    assert conn.messages_decoded == counts[0] + 1
