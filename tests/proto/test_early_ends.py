"""A shard refused again and again before READY is never silent (``driver_support``).

The reactor turns each connection that ends before READY/RESUMED into a
:class:`ConnectionRejectedError` carrying the server's close code and reason and
how many such ends came in a row; both drivers only emit it as an ``error`` event.
What is routine is left quiet the first time (a resume answered by op 9, op 7),
and what the caller asked for or what stops the shard anyway is never reported here.
"""

from __future__ import annotations

import logging

from gateway_proto import (
    AuthenticationFailedError,
    CloseCause,
    Closed,
    Dispatch,
    GatewayConnection,
    GatewayError,
    Session,
)
from gateway_proto.driver_support import (
    ConnectionReactor,
    ConnectionRejectedError,
    EarlyEnds,
)

from .helpers import RESUME_URL, TOKEN, FixedRandom, make_closed, make_config

SESSION = Session(session_id="s", sequence=9, resume_url=RESUME_URL)


def _closed(
    cause: CloseCause = CloseCause.SERVER_CLOSED,
    *,
    code: int | None = 4002,
    reason: str = "User-Agent header is required",
    error: GatewayError | None = None,
) -> Closed:
    closed = make_closed(cause, session=None, code=code, error=error)
    return Closed(
        code=closed.code,
        reason=reason,
        initiator=closed.initiator,
        cause=cause,
        can_reconnect=closed.can_reconnect,
        can_resume=False,
        session=None,
        error=error,
    )


def _reactor(ends: EarlyEnds, session: Session | None = None) -> ConnectionReactor:
    conn = GatewayConnection(make_config(), session=session, rng=FixedRandom(0.5))
    return ConnectionReactor(conn, ready_timeout=60.0, early_ends=ends)


def _report(ends: EarlyEnds, closed: Closed, session: Session | None = None) -> object:
    reaction = _reactor(ends, session).react(closed)
    assert reaction is not None
    assert reaction.closed is closed
    return reaction.error


def test_each_refusal_before_ready_is_an_error_with_the_servers_reason() -> None:
    ends = EarlyEnds()
    for attempt in (1, 2, 3):
        error = _report(ends, _closed())
        assert isinstance(error, ConnectionRejectedError)
        assert (error.code, error.reason, error.in_a_row) == (
            4002,
            "User-Agent header is required",
            attempt,
        )
        assert error.cause is CloseCause.SERVER_CLOSED
        assert error.summary == "4002 User-Agent header is required"
    assert "3 in a row" in str(error)
    assert ends.in_a_row == 3


def test_the_refusal_is_logged_as_a_warning_with_the_reason() -> None:
    reaction = _reactor(EarlyEnds()).react(_closed())
    assert reaction is not None
    assert reaction.log is not None
    level, line = reaction.log
    assert level == logging.WARNING
    assert "4002" in line
    assert "User-Agent header is required" in line


def test_a_transport_end_before_ready_is_reported_without_a_code() -> None:
    error = _report(EarlyEnds(), _closed(CloseCause.CONNECTION_LOST, code=None, reason="EOF"))
    assert isinstance(error, ConnectionRejectedError)
    assert error.code is None
    assert error.summary == "no close frame: EOF"


def test_ready_resets_the_streak_and_a_live_connection_reports_nothing() -> None:
    ends = EarlyEnds()
    _report(ends, _closed())
    reactor = _reactor(ends)
    reactor.react(Dispatch("READY", {}, 1))
    assert ends.in_a_row == 0
    reaction = reactor.react(_closed(CloseCause.ZOMBIE))
    assert reaction is not None
    assert reaction.error is None
    assert reaction.log == (
        logging.INFO,
        "connection closed: User-Agent header is required (code 4002, zombie)",
    )


def test_what_the_caller_asked_for_or_a_fatal_close_is_not_reported_here() -> None:
    ends = EarlyEnds()
    assert _report(ends, _closed(CloseCause.REQUESTED, code=1000)) is None
    fatal = AuthenticationFailedError(4004, "Authentication failed.")
    assert _report(ends, _closed(code=4004, error=fatal)) is None
    assert ends.in_a_row == 0


def test_routine_ends_are_quiet_once_and_reported_when_they_repeat() -> None:
    ends = EarlyEnds()
    op9 = _closed(CloseCause.INVALID_SESSION, code=1000, reason="invalid session")
    assert _report(ends, op9, SESSION) is None  # the resume failed: identify next
    op7 = _closed(CloseCause.RECONNECT_REQUESTED, code=4000, reason="Discord asked to reconnect")
    error = _report(ends, op7)
    assert isinstance(error, ConnectionRejectedError)
    assert error.in_a_row == 2
    # op 9 after IDENTIFY is not routine: the identify itself was refused.
    assert isinstance(_report(EarlyEnds(), op9), ConnectionRejectedError)


def test_the_token_never_appears_in_the_report() -> None:
    closed = _closed(reason=f"bad token {TOKEN}! (short: secret)")
    error = _report(EarlyEnds("secret"), closed)
    assert isinstance(error, ConnectionRejectedError)
    for text in (str(error), repr(error), error.reason, error.summary):
        assert TOKEN not in text  # token-shaped: removed even if it is not this shard's
        assert "secret" not in text
