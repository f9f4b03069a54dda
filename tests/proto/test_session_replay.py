"""Within one session every dispatch is delivered once; resume URLs never lower security.

Servers that exist replay from the client's ``seq`` *inclusive* on RESUME, number
READY and GUILD_CREATE with ``s`` = 0, send a dispatch before READY, and may hand
out a ``resume_gateway_url`` that is plain ``ws://`` or carries ``user:password@``
(PROTOCOL.md 13b).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from gateway_proto import (
    ConnectionState,
    Dispatch,
    Event,
    GatewayConnection,
    ProtocolWarning,
    Reconnector,
    Session,
    UnsafeResumeUrlError,
)
from gateway_proto.driver_support import (
    ERROR,
    ConnectionReactor,
    GatewayUrlError,
    Reaction,
    split_gateway_url,
)

from .helpers import (
    RESUME_URL,
    TOKEN,
    FixedRandom,
    GatewayPeer,
    drive,
    events,
    make_config,
    open_connection,
    ready_connection,
    state_of,
    without_sent,
)

SESSION = Session(session_id="sess-0", sequence=41, resume_url=RESUME_URL)


def _drain_by_next_event(conn: GatewayConnection) -> list[Event]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def _drain_after_a_property(conn: GatewayConnection) -> list[Event]:
    conn.next_deadline()  # processes all pending input first, through _step()
    return events(conn)


DRAINS: dict[str, Callable[[GatewayConnection], list[Event]]] = {
    "events": events,
    "next_event": _drain_by_next_event,
    "property-first": _drain_after_a_property,
}


def _dispatches(evs: list[Event]) -> list[tuple[str, int | None]]:
    return [(e.name, e.sequence) for e in evs if isinstance(e, Dispatch)]


# -- exactly once within a session ---------------------------------------------------------


@pytest.mark.parametrize("drain", list(DRAINS))
@pytest.mark.parametrize(("encoding", "compression"), [("json", "zlib-stream"), ("etf", None)])
def test_a_replay_from_seq_inclusive_delivers_each_event_once(
    drain: str, encoding: str, compression: str | None
) -> None:
    config = make_config(encoding=encoding, compression=compression)
    conn, peer = open_connection(config=config, session=SESSION)
    conn.receive_data(peer.hello(), 1.0)
    drive(conn, peer)
    # The server replays from seq 41 inclusive: the client already had 41.
    data = b"".join(
        peer.dispatch("MESSAGE_CREATE", {"n": s}, s=s) for s in (40, 41, 42, 43)
    ) + peer.dispatch("RESUMED", None, s=44)
    conn.receive_data(data, 2.0)
    evs = without_sent(DRAINS[drain](conn))
    assert _dispatches(evs) == [("MESSAGE_CREATE", 42), ("MESSAGE_CREATE", 43), ("RESUMED", 44)]
    assert conn.duplicates_dropped == 2
    assert conn.sequence == 44
    assert conn.session == Session(session_id="sess-0", sequence=44, resume_url=RESUME_URL)


@pytest.mark.parametrize("drain", list(DRAINS))
def test_an_old_sequence_is_dropped_and_does_not_move_the_sequence(drain: str) -> None:
    conn, peer = ready_connection()  # READY was s=1
    data = b"".join(peer.dispatch("X", {"n": s}, s=s) for s in (7, 5, 7, 8))
    conn.receive_data(data, 1.0)
    assert _dispatches(DRAINS[drain](conn)) == [("X", 7), ("X", 8)]
    assert conn.duplicates_dropped == 2
    assert conn.sequence == 8


@pytest.mark.parametrize("drain", list(DRAINS))
def test_sequence_zero_is_no_sequence(drain: str) -> None:
    # READY, READY_SUPPLEMENTAL and GUILD_CREATE all with s = 0 (a real server does this).
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    drive(conn, peer)
    data = (
        peer.payload(0, {"session_id": "z", "resume_gateway_url": RESUME_URL}, 0, "READY")
        + peer.payload(0, {}, 0, "READY_SUPPLEMENTAL")
        + peer.payload(0, {"id": "1"}, 0, "GUILD_CREATE")
        + peer.payload(0, {"id": "2"}, 0, "GUILD_CREATE")
        + peer.payload(0, {"n": 1}, 1, "MESSAGE_CREATE")
        + peer.payload(0, {"id": "3"}, 0, "GUILD_CREATE")
    )
    conn.receive_data(data, 1.0)
    evs = without_sent(DRAINS[drain](conn))
    assert _dispatches(evs) == [
        ("READY", 0),
        ("READY_SUPPLEMENTAL", 0),
        ("GUILD_CREATE", 0),
        ("GUILD_CREATE", 0),
        ("MESSAGE_CREATE", 1),
        ("GUILD_CREATE", 0),
    ]
    assert conn.duplicates_dropped == 0
    assert conn.sequence == 1


def test_before_any_positive_sequence_the_session_has_none() -> None:
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    ready = {"session_id": "z", "resume_gateway_url": RESUME_URL}
    conn.receive_data(peer.payload(0, ready, 0, "READY"), 1.0)
    events(conn)
    assert conn.session == Session(session_id="z", sequence=None, resume_url=RESUME_URL)


@pytest.mark.parametrize("drain", list(DRAINS))
def test_a_new_session_starts_the_numbering_over(drain: str) -> None:
    # Resuming at 41, the server starts a new session instead (READY s=1).
    conn, peer = open_connection(session=SESSION)
    conn.receive_data(peer.hello(), 1.0)
    drive(conn, peer)
    data = (
        peer.dispatch("READY", {"session_id": "new", "resume_gateway_url": RESUME_URL}, s=1)
        + peer.dispatch("GUILD_CREATE", {}, s=2)
        + peer.dispatch("GUILD_CREATE", {}, s=2)  # a duplicate of the new session
    )
    conn.receive_data(data, 2.0)
    assert _dispatches(DRAINS[drain](conn)) == [("READY", 1), ("GUILD_CREATE", 2)]
    assert conn.duplicates_dropped == 1
    assert conn.session == Session(session_id="new", sequence=2, resume_url=RESUME_URL)


def test_a_ready_with_sequence_zero_also_starts_over() -> None:
    conn, peer = open_connection(session=SESSION)
    conn.receive_data(peer.hello(), 1.0)
    drive(conn, peer)
    ready = {"session_id": "new", "resume_gateway_url": RESUME_URL}
    conn.receive_data(peer.payload(0, ready, 0, "READY") + peer.dispatch("X", {}, s=1), 2.0)
    assert _dispatches(events(conn)) == [("READY", 0), ("X", 1)]
    assert conn.session == Session(session_id="new", sequence=1, resume_url=RESUME_URL)


def test_a_dispatch_before_ready_is_delivered() -> None:
    conn, peer = open_connection()
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    drive(conn, peer)
    conn.receive_data(peer.dispatch("SESSIONS_REPLACE", [{"session_id": "x"}]), 1.0)
    assert _dispatches(events(conn)) == [("SESSIONS_REPLACE", 1)]
    assert state_of(conn) is ConnectionState.IDENTIFYING
    conn.receive_data(peer.ready(), 1.0)
    assert _dispatches(events(conn)) == [("READY", 2)]
    assert conn.state is ConnectionState.ACTIVE


# -- resume URLs ---------------------------------------------------------------------------


def _ready_with(
    resume_url: str, *, url: str = "wss://gateway.example.test/"
) -> tuple[GatewayConnection, list[Event]]:
    conn, peer = open_connection(config=make_config(url=url))
    conn.receive_data(peer.hello(), 0.0)
    conn.identify(0.0)
    conn.receive_data(peer.ready(resume_url=resume_url), 1.0)
    return conn, without_sent(events(conn))


def test_a_resume_url_that_drops_tls_is_refused() -> None:
    conn, evs = _ready_with("ws://resume.example.test/")
    session = conn.session
    assert session is not None
    assert session.resume_url == "wss://gateway.example.test/"  # the base URL instead
    warning = evs[-1]
    assert isinstance(warning, ProtocolWarning)
    assert isinstance(warning.error, UnsafeResumeUrlError)
    assert "ws://resume.example.test/" in str(warning.error)
    assert "wss://gateway.example.test/" in str(warning.error)
    assert TOKEN not in str(warning.error)
    follow = GatewayConnection(make_config(), session=session)
    assert follow.url.startswith("wss://gateway.example.test/?")


def test_a_plain_resume_url_is_fine_on_a_plain_connection() -> None:
    conn, evs = _ready_with("ws://resume.example.test/x", url="ws://gateway.example.test/")
    assert conn.session is not None
    assert conn.session.resume_url == "ws://resume.example.test/x"
    assert not any(isinstance(e, ProtocolWarning) for e in evs)


def test_credentials_in_a_resume_url_never_reach_the_host_header_or_the_url() -> None:
    conn, evs = _ready_with("wss://user:s3cret@resume.example.test:8443/r")
    assert not any(isinstance(e, ProtocolWarning) for e in evs)
    session = conn.session
    assert session is not None
    assert session.resume_url == "wss://resume.example.test:8443/r"
    follow = GatewayConnection(make_config(), session=session, rng=FixedRandom())
    assert "s3cret" not in follow.url
    assert "user" not in follow.url
    follow.connect(0.0)
    peer = GatewayPeer()
    peer.sent(follow.data_to_send())
    assert peer.request is not None
    assert peer.request.host == "resume.example.test:8443"


def test_credentials_in_the_configured_url_never_reach_the_host_header() -> None:
    config = make_config(url="wss://user:s3cret@gateway.example.test/")
    for session in (None, Session(session_id="a", sequence=1, resume_url=config.url)):
        conn = GatewayConnection(config, session=session)
        assert conn.url == "wss://gateway.example.test/?v=10&encoding=json&compress=zlib-stream"
        conn.connect(0.0)
        peer = GatewayPeer()
        peer.sent(conn.data_to_send())
        assert peer.request is not None
        assert peer.request.host == "gateway.example.test"


def test_a_saved_session_with_a_plain_resume_url_goes_to_the_secure_base_url() -> None:
    saved = Session(session_id="a", sequence=3, resume_url="ws://resume.example.test/")
    conn = GatewayConnection(make_config(), session=saved)
    assert conn.url.startswith("wss://gateway.example.test/?")
    (warning,) = events(conn)
    assert isinstance(warning, ProtocolWarning)
    assert isinstance(warning.error, UnsafeResumeUrlError)


def test_an_unreachable_url_is_reported_without_its_credentials() -> None:
    with pytest.raises(GatewayUrlError) as caught:
        split_gateway_url("wss://user:s3cret@host.example:99999/")
    assert "s3cret" not in str(caught.value)
    assert split_gateway_url("wss://user:s3cret@host.example:8443/").host == "host.example"


# -- what the drivers see --------------------------------------------------------------------


def test_a_protocol_warning_is_logged_and_surfaced_as_an_error_event() -> None:
    conn, evs = _ready_with("ws://resume.example.test/")
    warning = evs[-1]
    assert isinstance(warning, ProtocolWarning)
    reaction = ConnectionReactor(conn, ready_timeout=1.0).react(warning)
    assert reaction == Reaction(
        emit=(ERROR, warning.error), log=(logging.WARNING, str(warning.error))
    )


def test_the_reconnector_sums_the_duplicates_of_every_connection() -> None:
    rec = Reconnector(make_config(), session=SESSION, rng=FixedRandom())
    for expected in (1, 2):
        conn = rec.new_connection()
        conn.connect(0.0)
        peer = GatewayPeer()
        drive(conn, peer)
        conn.receive_data(peer.accept() + peer.hello(), 0.0)
        conn.receive_data(peer.dispatch("X", {}, s=41) + peer.dispatch("RESUMED", None, s=42), 0.0)
        for event in events(conn):
            rec.observe(event)
        assert rec.duplicates_dropped == expected
