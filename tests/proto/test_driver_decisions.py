"""The decisions both drivers share (``driver_support``), without sockets or clocks.

What a core event means for a shard (:class:`ConnectionReactor`), the step timer
(:class:`StepDeadline`), what happens when a connection ends (:func:`after_connection`),
where a gateway URL points (:func:`split_gateway_url`) and the identify window
measured from the send (``IdentifySchedule.identified``, ``note_identify_sent``).
"""

from __future__ import annotations

import logging

import pytest

from gateway_proto import (
    AuthenticationFailedError,
    Backoff,
    CloseCause,
    Closed,
    Dispatch,
    GatewayConnection,
    GatewayError,
    Hello,
    IdentifyNeeded,
    IdentifySchedule,
    Opened,
    PayloadSent,
    Reconnector,
    Session,
)
from gateway_proto.driver_support import (
    CLOSE,
    CONNECT,
    OPEN,
    READY_TIMED_OUT,
    RECEIVE,
    RESUMED_TIMED_OUT,
    SEND,
    Connected,
    ConnectionReactor,
    GatewayAddress,
    GatewayUrlError,
    InProcessLimiterBase,
    Reaction,
    ShardState,
    StepDeadline,
    TracksIdentifySends,
    after_connection,
    describe_error,
    note_identify_sent,
    split_gateway_url,
)

from .helpers import (
    RESUME_URL,
    FixedRandom,
    events,
    make_closed,
    make_config,
    open_connection,
)

SESSION = Session(session_id="s", sequence=9, resume_url=RESUME_URL)
READY_TIMEOUT = 60.0


def _closed(
    cause: CloseCause = CloseCause.SERVER_CLOSED,
    *,
    code: int | None = 4000,
    can_reconnect: bool = True,
    session: Session | None = SESSION,
    error: GatewayError | None = None,
) -> Closed:
    return make_closed(cause, session=session, code=code, can_reconnect=can_reconnect, error=error)


def _reactor(session: Session | None = None) -> tuple[ConnectionReactor, GatewayConnection]:
    conn = GatewayConnection(make_config(), session=session, rng=FixedRandom(0.5))
    return ConnectionReactor(conn, ready_timeout=READY_TIMEOUT), conn


# -- ConnectionReactor -------------------------------------------------------------------


def test_an_identifying_connection_from_open_to_ready() -> None:
    conn, peer = open_connection()
    reactor = ConnectionReactor(conn, ready_timeout=READY_TIMEOUT)
    assert not reactor.resuming
    # The WebSocket opened: say so; HELLO is the core's to time, nothing to resume.
    assert reactor.react(Opened()) == Reaction(emit=(OPEN, conn.url), stop_timer=True)
    conn.receive_data(peer.hello(), 0.0)
    evs = events(conn)
    assert evs == [Hello(40.0), IdentifyNeeded()]
    assert reactor.react(evs[0]) == Reaction(emit=(RECEIVE, evs[0]))
    assert reactor.react(evs[1]) == Reaction(
        ShardState.IDENTIFYING, "waiting for an identify permit", identify=True
    )
    conn.identify(0.0)
    [sent] = events(conn)
    assert isinstance(sent, PayloadSent)
    # IDENTIFY is out: READY must follow within ready_timeout.
    reaction = reactor.react(sent)
    assert reaction is not None
    assert reaction.emit == (SEND, {"op": 2, "d": sent.data})
    assert reaction.timer == (READY_TIMEOUT, READY_TIMED_OUT)
    conn.receive_data(peer.ready(), 0.0)
    ready = next(e for e in events(conn) if isinstance(e, Dispatch))
    assert reactor.react(ready) == Reaction(
        ShardState.READY,
        "READY",
        emit=(CONNECT, Connected(False, conn.session)),
        stop_timer=True,
    )
    assert conn.session is not None


def test_a_resuming_connection_times_resumed_from_the_open() -> None:
    reactor, conn = _reactor(SESSION)
    assert reactor.resuming
    assert reactor.react(Opened()) == Reaction(
        ShardState.RESUMING,
        "resuming the session",
        emit=(OPEN, conn.url),
        timer=(READY_TIMEOUT, RESUMED_TIMED_OUT),
    )
    resumed = reactor.react(Dispatch("RESUMED", None, 10))
    assert resumed is not None
    assert (resumed.state, resumed.emit) == (ShardState.READY, (CONNECT, Connected(True, SESSION)))
    assert resumed.stop_timer


@pytest.mark.parametrize("name", ["MESSAGE_CREATE", "GUILD_CREATE", "READY_ISH", "resumed"])
def test_ordinary_dispatches_need_nothing_but_delivery(name: str) -> None:
    reactor, _ = _reactor()
    assert reactor.react(Dispatch(name, {}, 3)) is None


def test_other_payloads_are_reported_without_a_timer() -> None:
    reactor, _ = _reactor()
    assert reactor.react(PayloadSent(1, 5)) == Reaction(emit=(SEND, {"op": 1, "d": 5}))


@pytest.mark.parametrize(
    ("error", "level"),
    [(None, logging.INFO), (AuthenticationFailedError(4004, "bad token"), logging.ERROR)],
)
def test_closed_is_logged_by_whether_it_carried_an_error(
    error: GatewayError | None, level: int
) -> None:
    reactor, _ = _reactor()
    reactor.react(Dispatch("READY", {}, 1))  # live: an early end is test_early_ends.py's
    closed = _closed(CloseCause.ZOMBIE, error=error)
    assert reactor.react(closed) == Reaction(
        emit=(CLOSE, closed),
        stop_timer=True,
        log=(level, "connection closed: x (code 4000, zombie)"),
        closed=closed,
    )


# -- StepDeadline ----------------------------------------------------------------------


def test_step_deadline_follows_reactions_and_expires_once() -> None:
    step = StepDeadline()
    assert step.earliest(7.0) == 7.0
    assert step.earliest(None) is None
    step.set(5.0, "the WebSocket handshake timed out")
    assert step.earliest(7.0) == 5.0
    assert step.earliest(None) == 5.0
    step.follow(Reaction(timer=(60.0, READY_TIMED_OUT)), now=2.0)
    assert step.current == (62.0, READY_TIMED_OUT)
    assert step.earliest(10.0) == 10.0
    assert step.expired(61.9) is None
    assert step.expired(62.0) == f"{READY_TIMED_OUT}; dropping the connection"
    assert step.current is None
    assert step.expired(100.0) is None
    step.set(1.0, "x")
    step.follow(Reaction(emit=(RECEIVE, None)), now=0.0)  # no timer change
    assert step.current == (1.0, "x")
    step.follow(Reaction(stop_timer=True), now=0.0)
    assert step.current is None


# -- after_connection ------------------------------------------------------------------


def _reconnector(session: Session | None = SESSION) -> Reconnector:
    rng = FixedRandom(0.5)
    rec = Reconnector(make_config(), session=session, rng=rng, backoff=Backoff(rng))
    rec.new_connection()
    rec.observe(Opened())
    return rec


def test_a_requested_restart_skips_the_policy() -> None:
    rec = _reconnector()
    step = after_connection(rec, _closed(CloseCause.REQUESTED, can_reconnect=False), restart=True)
    assert (step.delay, step.reason, step.error) == (0.0, "reconnect requested", None)
    assert (step.state, step.state_reason) == (
        ShardState.RECONNECTING,
        "reconnect requested; next attempt in 0.00 s",
    )
    assert rec.reconnects == {"requested": 1}
    assert rec.session == SESSION  # resumes what the Closed event left


def test_a_restart_whose_close_handshake_timed_out_still_restarts() -> None:
    # The restart's close was accepted, then the server never answered it: the
    # connection ends with TIMEOUT, and the shard must not stop for that.
    rec = _reconnector()
    closed = _closed(CloseCause.TIMEOUT, can_reconnect=False)
    assert after_connection(rec, closed, restart=True).delay == 0.0
    assert after_connection(rec, closed, restart=False).delay is None  # a plain close stops


def test_a_restart_never_hides_a_fatal_close() -> None:
    rec = _reconnector()
    fatal = AuthenticationFailedError(4004, "Authentication failed")
    step = after_connection(
        rec, _closed(code=4004, can_reconnect=False, session=None, error=fatal), restart=True
    )
    assert (step.delay, step.error, step.reason) == (None, fatal, str(fatal))
    assert step.state is ShardState.STOPPED
    assert rec.reconnects == {}


def test_stopping_wins_and_counts_nothing() -> None:
    rec = _reconnector()
    for closed in (_closed(), _closed(CloseCause.REQUESTED, can_reconnect=False), None):
        step = after_connection(rec, closed, restart=True, stopping=True)
        assert (step.delay, step.reason, step.error) == (None, "disconnected", None)
        assert (step.state, step.state_reason) == (ShardState.STOPPED, "disconnected")
    assert rec.reconnects == {}
    assert rec.session == SESSION


def test_a_close_goes_to_the_policy() -> None:
    rec = _reconnector()
    step = after_connection(rec, _closed(CloseCause.ZOMBIE))
    assert step.delay == 0.5  # Backoff with a fixed 0.5 draw, attempt 0
    assert step.reason == "zombie (code 4000): x"
    assert step.state_reason == "zombie (code 4000): x; next attempt in 0.50 s"
    assert rec.reconnects == {"zombie": 1}


def test_a_caller_close_without_a_restart_stops_cleanly() -> None:
    rec = _reconnector()
    step = after_connection(rec, _closed(CloseCause.REQUESTED, code=1000, can_reconnect=False))
    assert (step.delay, step.reason, step.error) == (None, "disconnected", None)


def test_a_failed_connect_names_the_error_class_and_message() -> None:
    rec = _reconnector()
    step = after_connection(rec, None, connect_error=ConnectionRefusedError(111, "refused"))
    assert step.reason == "connect failed (ConnectionRefusedError: [Errno 111] refused)"
    assert step.delay == 0.5
    assert rec.last_error == "ConnectionRefusedError: [Errno 111] refused"
    assert rec.reconnects == {"connect_failed": 1}
    # A message-less error (a timeout) is named by its class alone.
    assert after_connection(rec, None, connect_error=TimeoutError()).reason == (
        "connect failed (TimeoutError)"
    )


def test_describe_error() -> None:
    assert describe_error(ValueError("bad")) == "ValueError: bad"
    assert describe_error(TimeoutError()) == "TimeoutError"


# -- split_gateway_url -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("wss://gateway.discord.gg/?v=10", GatewayAddress("gateway.discord.gg", 443, True)),
        ("ws://127.0.0.1:8080/", GatewayAddress("127.0.0.1", 8080, False)),
        ("ws://localhost", GatewayAddress("localhost", 80, False)),
        ("wss://[::1]:9443/gw", GatewayAddress("::1", 9443, True)),
    ],
)
def test_split_gateway_url(url: str, address: GatewayAddress) -> None:
    assert split_gateway_url(url) == address


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ws:///path", "no host"),
        ("wss://", "no host"),
        ("wss://host:http/", "bad port"),
        ("https://gateway.discord.gg/", "not a ws"),
    ],
)
def test_split_gateway_url_refuses_urls_without_an_address(url: str, problem: str) -> None:
    with pytest.raises(GatewayUrlError, match=problem) as caught:
        split_gateway_url(url)
    # An OSError (drivers treat it as an unreachable address) and a ValueError.
    assert isinstance(caught.value, OSError)
    assert isinstance(caught.value, ValueError)


# -- the identify window, measured from the send ----------------------------------------


def test_the_window_counts_from_the_send_plus_a_margin() -> None:
    schedule = IdentifySchedule(1, window=5.0, margin=0.1)
    assert schedule.reserve(0, now=100.0).at == 100.0
    assert schedule.peek(0, now=100.0).at == 105.0  # from the slot, until told
    # The permit took 0.3 s to become an IDENTIFY on the wire.
    schedule.identified(0, now=100.3)
    assert schedule.peek(0, now=101.0).at == pytest.approx(105.4)
    # A late report of an earlier send never shortens the hold.
    schedule.identified(0, now=100.0)
    assert schedule.peek(0, now=101.0).at == pytest.approx(105.4)
    assert schedule.copy().peek(0, now=101.0).at == pytest.approx(105.4)


def test_other_buckets_are_not_held_by_a_send() -> None:
    schedule = IdentifySchedule(2, window=5.0, margin=0.1)
    schedule.reserve(0, now=0.0)
    schedule.identified(0, now=0.5)
    assert schedule.peek(1, now=0.5).at == 0.5
    assert schedule.peek(2, now=0.5).at == pytest.approx(5.6)


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        IdentifySchedule(1, margin=-1.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_in_process_limiters_take_the_send_on_their_own_clock() -> None:
    clock = _Clock()
    limiter = InProcessLimiterBase(
        1, window=5.0, clock=clock, history=10, log=logging.getLogger("test")
    )
    assert isinstance(limiter, TracksIdentifySends)
    limiter._schedule.reserve(0, now=clock())
    clock.now = 10.25
    note_identify_sent(limiter, 0)
    assert limiter._schedule.peek(0, now=clock()).at == pytest.approx(15.35)


def test_limiters_without_the_hook_are_left_alone() -> None:
    class Plain:
        async def acquire(self, shard_id: int) -> None:
            """A third-party limiter that only hands out permits."""

    plain = Plain()
    assert not isinstance(plain, TracksIdentifySends)
    note_identify_sent(plain, 0)  # nothing to call, nothing raised
    assert vars(plain) == {}
