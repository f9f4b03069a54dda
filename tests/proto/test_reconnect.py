"""Reconnector: resume or identify, where, when, and when to stop."""

from __future__ import annotations

import pytest

from gateway_proto import (
    CONNECT_FAILED,
    AuthenticationFailedError,
    Backoff,
    CloseCause,
    Closed,
    Dispatch,
    Hello,
    LocalProtocolError,
    Opened,
    PayloadSent,
    Reconnector,
    Session,
)

from .helpers import (
    RESUME_URL,
    FixedRandom,
    closed_event,
    drive,
    events,
    make_closed,
    make_config,
)

SESSION = Session(session_id="s", sequence=9, resume_url=RESUME_URL)
BASE = "wss://gateway.example.test/?v=10&encoding=json&compress=zlib-stream"
RESUME = RESUME_URL + "?v=10&encoding=json&compress=zlib-stream"


def _closed(
    cause: CloseCause = CloseCause.SERVER_CLOSED,
    *,
    session: Session | None = SESSION,
    can_reconnect: bool = True,
    retry_after: float = 0.0,
    error: Exception | None = None,
) -> Closed:
    return make_closed(
        cause,
        session=session,
        can_reconnect=can_reconnect,
        retry_after=retry_after,
        error=error,  # type: ignore[arg-type]
    )


def _reconnector(session: Session | None = None) -> Reconnector:
    rng = FixedRandom(0.5)
    return Reconnector(make_config(), session=session, rng=rng, backoff=Backoff(rng))


def test_identify_then_resume_after_a_resumable_close() -> None:
    rec = _reconnector()
    conn = rec.new_connection()
    assert conn.url == BASE
    assert conn.session is None
    for event in (
        Opened(),
        Hello(41.25),
        PayloadSent(1, None),
        PayloadSent(2, {}),
        Dispatch("GUILD_CREATE", {}, 1),
        Dispatch("READY", {}, 2),
    ):
        rec.observe(event)
    assert rec.identifies == 1
    assert rec.after_close(_closed()) == 0.5  # uniform(0, 1) at attempt 0
    assert rec.reconnects == {"server_closed": 1}
    conn = rec.new_connection()
    assert conn.url == RESUME
    assert conn.session == SESSION
    rec.observe(Opened())
    rec.observe(PayloadSent(6, {}))
    assert rec.resumes == 1
    assert rec.after_close(_closed()) == 1.0  # no RESUMED: the backoff grows
    rec.observe(Opened())
    rec.observe(Dispatch("RESUMED", None, 10))
    assert rec.after_close(_closed()) == 0.5  # RESUMED reset it


def test_retry_after_is_a_floor() -> None:
    rec = _reconnector()
    rec.new_connection()
    rec.observe(Opened())
    assert (
        rec.after_close(_closed(CloseCause.INVALID_SESSION, session=None, retry_after=3.0)) == 3.0
    )
    assert rec.session is None
    assert rec.new_connection().url == BASE


def test_fatal_close_stops_with_the_error() -> None:
    rec = _reconnector(SESSION)
    rec.new_connection()
    rec.observe(Opened())
    error = AuthenticationFailedError(4004, "authentication failed")
    assert rec.after_close(_closed(session=None, can_reconnect=False, error=error)) is None
    assert rec.fatal_error is error


def test_caller_close_stops_without_an_error() -> None:
    rec = _reconnector(SESSION)
    rec.new_connection()
    rec.observe(Opened())
    assert rec.after_close(_closed(CloseCause.REQUESTED, can_reconnect=False)) is None
    assert rec.fatal_error is None
    assert rec.session == SESSION  # a driver restarting on purpose still resumes


def test_observed_close_updates_the_session_for_a_restart() -> None:
    rec = _reconnector()
    rec.new_connection()
    rec.observe(_closed(CloseCause.REQUESTED, can_reconnect=False))
    assert rec.new_connection().session == SESSION


def test_a_dead_resume_host_falls_back_to_the_base_url() -> None:
    rec = _reconnector(SESSION)
    assert rec.new_connection().url == RESUME
    assert rec.after_connect_failure("ConnectionRefusedError()", now=0.0) == 0.5
    assert rec.last_error == "ConnectionRefusedError()"
    conn = rec.new_connection()
    assert conn.url == BASE  # same session, resumed on the base URL
    assert conn.session == SESSION


# Failed connects during an outage: (now, the next connection's URL, does it resume?).
# The session is kept, resume URL and base URL take turns, and the backoff grows,
# until the session is older than max_resume_age (here 60 s) after it was lost.
OUTAGE = [
    (0.0, BASE, True),
    (1.0, RESUME, True),
    (3.0, BASE, True),
    (20.0, RESUME, True),
    (45.0, BASE, True),
    (60.0, RESUME, True),
    (60.5, BASE, False),  # over 60 s since the session was lost: identify
    (70.0, BASE, False),
]


def test_an_outage_keeps_resuming_until_the_session_is_too_old() -> None:
    rec = Reconnector(
        make_config(max_resume_age=60.0),
        session=SESSION,
        rng=FixedRandom(0.5),
    )
    assert rec.new_connection().url == RESUME
    delays = []
    for now, url, resumes in OUTAGE:
        delays.append(rec.after_connect_failure("refused", now=now))
        conn = rec.new_connection()
        assert (now, conn.url, conn.session is not None) == (now, url, resumes)
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # capped at 60 * 0.5
    assert rec.reconnects == {CONNECT_FAILED: len(OUTAGE)}


def test_the_age_counts_from_the_end_of_the_last_live_connection() -> None:
    rec = Reconnector(make_config(max_resume_age=60.0), session=SESSION, rng=FixedRandom(0.5))
    rec.new_connection()
    rec.observe(Opened())
    rec.observe(Dispatch("RESUMED", None, 10))
    rec.after_close(_closed(), now=100.0)  # the session was lost at 100
    for now in (110.0, 150.0, 160.0):
        rec.new_connection()
        rec.after_connect_failure(now=now)
        assert rec.session == SESSION
    rec.new_connection()
    rec.observe(Opened())  # a resume that opened, then the server went away again
    rec.after_close(_closed(), now=161.0)
    assert rec.session is None
    # Live again (a new session): the clock starts over when it is lost.
    rec.new_connection()
    rec.observe(Opened())
    rec.observe(Dispatch("READY", {}, 1))
    rec.after_close(_closed(), now=500.0)
    rec.new_connection()
    rec.after_connect_failure(now=559.0)
    assert rec.session == SESSION


def test_the_server_ending_the_session_ends_the_resumes() -> None:
    rec = _reconnector(SESSION)
    rec.new_connection()
    rec.after_connect_failure(now=0.0)
    rec.new_connection()
    rec.observe(Opened())
    rec.after_close(_closed(CloseCause.INVALID_SESSION, session=None, retry_after=2.0), now=1.0)
    conn = rec.new_connection()
    assert (conn.url, conn.session) == (BASE, None)


def test_without_a_clock_there_is_no_age_limit() -> None:
    rec = Reconnector(make_config(max_resume_age=1.0), session=SESSION, rng=FixedRandom(0.5))
    for _ in range(50):
        rec.new_connection()
        rec.after_connect_failure()
    assert rec.session == SESSION


@pytest.mark.parametrize("age", [0.0, -1.0, float("nan")])
def test_bad_max_resume_age(age: float) -> None:
    with pytest.raises(LocalProtocolError):
        make_config(max_resume_age=age)


def test_resumed_on_the_base_url_returns_to_the_resume_url_later() -> None:
    rec = _reconnector(SESSION)
    rec.new_connection()
    rec.after_connect_failure()
    assert rec.new_connection().url == BASE
    rec.observe(Opened())
    rec.observe(Dispatch("RESUMED", None, 10))
    rec.after_close(_closed())
    assert rec.new_connection().url == RESUME


def test_a_handshake_refused_before_opening_counts_as_a_connect_failure() -> None:
    rec = _reconnector(SESSION)
    conn = rec.new_connection()
    conn.connect(0.0)
    from .helpers import GatewayPeer

    peer = GatewayPeer()
    drive(conn, peer)
    conn.receive_data(peer.reject(502), 1.0)
    evs = events(conn)
    for event in evs:
        rec.observe(event)
    assert rec.after_close(closed_event(evs)) == 0.5
    assert rec.reconnects == {CONNECT_FAILED: 1}
    assert rec.new_connection().url == BASE


def test_resumes_that_never_reach_resumed_give_up_the_session() -> None:
    rec = Reconnector(make_config(), session=SESSION, rng=FixedRandom(0.0), max_resume_attempts=2)
    for expected in (SESSION, SESSION, None):
        conn = rec.new_connection()
        assert conn.session == expected
        rec.observe(Opened())
        rec.after_close(_closed())


def test_bad_max_resume_attempts() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Reconnector(make_config(), max_resume_attempts=0)
