"""Parsing on demand: buffered input is processed before the connection acts on anything.

``receive_data`` only buffers; ``events()`` / ``next_event()`` parse one message at
a time, and every method that acts (``data_to_send``, ``next_deadline``,
``handle_timeout``, ``send``, ...) processes all pending input first, at its
arrival time. These tests pin that nothing the connection does or delivers
depends on whether, or when, the events were drained, and that the read-only
properties never parse: they reflect the input processed so far, as h11's state
reflects the events ``next_event`` returned. Bytes and times only: no sockets.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto import (
    CloseCause,
    Closed,
    ConnectionState,
    Dispatch,
    Event,
    GatewayConnection,
    HeartbeatAck,
    Hello,
    IdentifyNeeded,
    PayloadSent,
    Session,
    UpdatePresence,
)

from ._wire_helpers import client_frames
from .helpers import (
    RESUME_URL,
    closed_event,
    drive,
    events,
    open_connection,
    ready_connection,
    state_of,
)

# Every test here runs on the C hot path and on the pure-Python wire layer.
pytestmark = pytest.mark.usefixtures("wire_path")

SESSION = Session(session_id="sess-1", sequence=3, resume_url=RESUME_URL)


# -- properties read, methods that act process pending input ---------------------------------


def test_state_reflects_the_input_processed_so_far() -> None:
    conn, peer = open_connection(now=0.0)
    conn.receive_data(peer.hello(), 1.0)
    # Reading does not parse: nothing was drained, so HELLO is not known yet.
    assert state_of(conn) is ConnectionState.AWAITING_HELLO
    assert conn.heartbeat_interval is None
    assert [type(e) for e in events(conn)] == [Hello, IdentifyNeeded]
    assert state_of(conn) is ConnectionState.AWAITING_IDENTIFY
    assert conn.heartbeat_interval == 40.0


def test_next_deadline_reflects_undrained_hello() -> None:
    conn, peer = open_connection(now=0.0)
    hello_timeout = conn.next_deadline()
    conn.receive_data(peer.hello(), 1.0)
    deadline = conn.next_deadline()
    assert deadline != hello_timeout
    assert deadline == 1.0 + 20.0  # FixedRandom(0.5) x 40 s, from the arrival time
    assert [type(e) for e in events(conn)] == [Hello, IdentifyNeeded]


def test_a_server_heartbeat_request_is_answered_without_draining() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.receive_data(peer.dispatch("MESSAGE_CREATE", {"id": "1"}), 5.0)
    conn.receive_data(peer.heartbeat_request(), 5.0)
    assert peer.sent(conn.data_to_send()) == [{"op": 1, "d": 2}]  # events still undrained
    evs = events(conn)
    assert [type(e) for e in evs] == [Dispatch, PayloadSent]
    assert evs[0] == Dispatch("MESSAGE_CREATE", {"id": "1"}, 2)
    assert conn.data_to_send() == b""


def test_session_and_sequence_follow_the_dispatches_handed_out() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.receive_data(peer.dispatch("A", None) + peer.dispatch("B", None), 1.0)
    assert conn.sequence == 1  # READY's: the dispatches after it are not parsed yet
    assert conn.next_event() == Dispatch("A", None, 2)
    assert conn.sequence == 2
    session = conn.session
    assert session is not None
    assert session.sequence == 2
    assert conn.next_event() == Dispatch("B", None, 3)
    assert conn.sequence == 3


def test_a_method_that_acts_processes_the_rest_and_the_properties_follow() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.receive_data(peer.dispatch("A", None) + peer.dispatch("B", None), 1.0)
    assert conn.data_to_send() == b""  # processes all pending input (nothing to answer)
    assert conn.sequence == 3
    assert [e.sequence for e in events(conn) if isinstance(e, Dispatch)] == [2, 3]


def _view(conn: GatewayConnection) -> tuple[Any, ...]:
    """Everything a caller can read without acting."""
    return (
        conn.state,
        conn.session,
        conn.sequence,
        conn.latency,
        conn.heartbeat_interval,
        conn.pending_commands,
        repr(conn),
        conn.url,
    )


def _transcript(peer: Any) -> Iterator[bytes]:
    """Server input, in chunks: HELLO, a replay, RESUMED, ACKs, dispatches, op 1, a
    ping, a large split message, op 7, then the answer to the client's close.

    Lazy: the peer answers the close frame the client sent in between.
    """
    yield peer.hello() + peer.dispatch("R", None, s=4) + peer.resumed()
    yield peer.ack() + peer.dispatch("A", {"n": 1}) + peer.dispatch("B", {"n": 2})
    yield peer.heartbeat_request() + peer.ping(b"p") + peer.dispatch("C", {"n": 3})
    yield peer.dispatch("BIG", {"blob": "y" * 70_000}, split=3) + peer.ack()
    yield peer.dispatch("D", {"n": 4}) + peer.reconnect() + peer.dispatch("E", {"n": 5})
    yield peer.reply_close()


def test_reading_every_property_between_input_and_events_changes_nothing() -> None:
    reference, peer = open_connection(session=SESSION, now=0.0)
    observed, _ = open_connection(session=SESSION, now=0.0)
    for conn in (reference, observed):
        conn.send(UpdatePresence(status="idle"), 0.0)  # pending until RESUMED
    want: list[Event] = []
    got: list[Event] = []
    # HELLO arrives at 1.25 s: heartbeats at 21.25 s and 61.25 s, each ACKed 0.25 s later.
    times = [1.0, 21.25, 30.0, 61.25, 62.0, 63.0]
    for now, chunk in zip(times, _transcript(peer), strict=True):
        reference.handle_timeout(now)
        observed.handle_timeout(now)
        reference.receive_data(chunk, now + 0.25)
        want += reference.events()
        before = _view(observed)
        observed.receive_data(chunk, now + 0.25)
        assert _view(observed) == before  # reading parsed nothing
        while (event := observed.next_event()) is not None:
            got.append(event)
            # The properties reflect the events handed out so far, this one included.
            if isinstance(event, Dispatch) and event.sequence is not None:
                assert observed.sequence == event.sequence
            elif isinstance(event, HeartbeatAck):
                assert observed.latency == event.latency
            _view(observed)
        out = reference.data_to_send()
        assert client_frames(observed.data_to_send()) == client_frames(out)
        if out:
            peer.sent(out)  # the peer sees the client's frames (its close, at the end)
    assert _normalise(got) == _normalise(want)
    assert isinstance(got[-1], Closed)
    assert _view(observed) == _view(reference)
    assert observed.latency == 0.25


def test_an_ack_that_arrived_in_time_counts_when_drained_late() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.handle_timeout(20.0)
    assert drive(conn, peer) == [{"op": 1, "d": 1}]
    events(conn)
    conn.receive_data(peer.ack(), 20.25)  # arrives well before the next heartbeat...
    conn.receive_data(peer.dispatch("A", None), 59.0)  # ...then more input, still undrained
    conn.handle_timeout(60.0)  # ...which is due before anything was drained
    assert state_of(conn) is ConnectionState.ACTIVE  # not a zombie
    assert conn.latency == 0.25  # measured at the arrival time, not at 59 s or 60 s
    evs = events(conn)
    assert [type(e) for e in evs] == [HeartbeatAck, Dispatch, PayloadSent]
    assert not any(isinstance(e, Closed) for e in evs)
    assert drive(conn, peer) == [{"op": 1, "d": 2}]


def test_no_ack_at_all_is_still_a_zombie() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.handle_timeout(20.0)
    drive(conn, peer)
    events(conn)
    conn.receive_data(peer.dispatch("A", None), 59.0)  # undrained, but no ACK
    conn.handle_timeout(60.0)
    evs = events(conn)
    assert isinstance(evs[0], Dispatch)
    assert closed_event(evs).cause is CloseCause.ZOMBIE


# -- end of input ----------------------------------------------------------------------


def test_eof_after_buffered_messages_yields_them_then_closed() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.receive_data(peer.dispatch("A", 1) + peer.dispatch("B", 2), 1.0)
    conn.receive_data(b"", 2.0)
    evs = events(conn)
    assert evs[:2] == [Dispatch("A", 1, 2), Dispatch("B", 2, 3)]
    closed = closed_event(evs)
    assert len(evs) == 3
    assert closed.cause is CloseCause.CONNECTION_LOST
    assert closed.session == Session(session_id="sess-1", sequence=3, resume_url=RESUME_URL)


def test_eof_after_a_partly_drained_chunk() -> None:
    conn, peer = ready_connection(now=0.0)
    conn.receive_data(peer.dispatch("A", 1) + peer.dispatch("B", 2), 1.0)
    assert conn.next_event() == Dispatch("A", 1, 2)
    conn.receive_data(b"", 2.0)
    evs = events(conn)
    assert evs[0] == Dispatch("B", 2, 3)
    assert len(evs) == 2
    assert closed_event(evs).cause is CloseCause.CONNECTION_LOST


def test_a_fault_after_buffered_messages_still_arrives_as_closed() -> None:
    conn, peer = ready_connection(now=0.0)
    good = peer.dispatch("A", 1)
    bad = b"\x81\x03{x}"  # a text frame that is not JSON
    conn.receive_data(good + bad + peer.dispatch("C", 3), 1.0)
    evs = events(conn)
    assert evs[0] == Dispatch("A", 1, 2)
    closed = closed_event(evs)
    assert len(evs) == 2  # the message after the fault is dropped
    assert closed.cause is CloseCause.PROTOCOL_ERROR
    assert closed.error is not None


# -- one at a time equals all at once -----------------------------------------------------


def _script(peer: Any, steps: list[int]) -> bytes:
    """Server bytes after the upgrade: HELLO, replayed dispatches, RESUMED, then ``steps``."""
    out = [peer.hello(), peer.dispatch("MESSAGE_CREATE", {"n": 0}, s=4), peer.resumed()]
    for n, step in enumerate(steps, start=1):
        if step == 0:
            out.append(peer.dispatch("MESSAGE_CREATE", {"n": n, "pad": "x" * (n * 97 % 700)}))
        elif step == 1:
            out.append(peer.heartbeat_request())
        elif step == 2:
            out.append(peer.ack())
        elif step == 3:
            out.append(peer.ping(b"p%d" % n))
        else:
            out.append(peer.dispatch("BIG", {"blob": "y" * 70_000}, split=3))
    return b"".join(out)


def _normalise(evs: list[Event]) -> list[Any]:
    # A Closed carries its exception, which compares by identity: compare its repr.
    return [
        (dataclasses.replace(e, error=None), repr(e.error)) if isinstance(e, Closed) else e
        for e in evs
    ]


def _fresh() -> tuple[GatewayConnection, Any]:
    return open_connection(session=SESSION, now=0.0)


_ACTIONS = st.sampled_from(["next_event", "events_some", "data", "deadline", "state", "drain"])


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    steps=st.lists(st.integers(0, 4), max_size=12),
    cuts=st.lists(st.integers(1, 100_000), max_size=12),
    patterns=st.lists(st.lists(_ACTIONS, max_size=6), max_size=14),
    eof=st.booleans(),
)
def test_draining_one_at_a_time_equals_draining_all_at_once(
    steps: list[int], cuts: list[int], patterns: list[list[str]], eof: bool
) -> None:

    eager, peer = _fresh()
    lazy, _ = _fresh()
    script = _script(peer, steps)  # the same zlib stream suits both fresh inflaters
    bounds = sorted({0, len(script), *(c % (len(script) + 1) for c in cuts)})
    chunks = [script[a:b] for a, b in itertools.pairwise(bounds)]
    if eof:
        chunks.append(b"")

    want_events: list[Event] = []
    want_out = bytearray()
    got_events: list[Event] = []
    got_out = bytearray()
    for i, chunk in enumerate(chunks):
        now = 1.0 + i * 0.5
        # The reference: drain everything after every input, then write.
        eager.receive_data(chunk, now)
        want_events += eager.events()
        want_out += eager.data_to_send()
        # The other: drain in arbitrary bits, observing the connection in between.
        lazy.receive_data(chunk, now)
        for action in patterns[i] if i < len(patterns) else []:
            if action == "next_event":
                event = lazy.next_event()
                if event is not None:
                    got_events.append(event)
            elif action == "events_some":
                # Pull two, write in between, then leave the iterator half-used.
                iterator = lazy.events()
                for _, event in zip(range(2), iterator, strict=False):
                    got_events.append(event)
                    got_out += lazy.data_to_send()
            elif action == "data":
                got_out += lazy.data_to_send()
            elif action == "deadline":
                lazy.next_deadline()
            elif action == "state":
                # Properties do not parse, so they may lag ``eager`` here; reading
                # them must change nothing (the comparisons below), and twice
                # reads the same.
                assert _view(lazy) == _view(lazy)
            else:
                got_events += lazy.events()
    got_events += lazy.events()
    got_out += lazy.data_to_send()

    assert _normalise(got_events) == _normalise(want_events)
    assert client_frames(bytes(got_out)) == client_frames(bytes(want_out))
    assert lazy.state is eager.state
    assert lazy.session == eager.session
    assert lazy.latency == eager.latency
    assert lazy.next_deadline() == eager.next_deadline()
