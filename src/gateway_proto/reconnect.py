"""Reconnect policy, without I/O: which connection to open next, and after how long.

Theory of operation: a driver owns a socket and a clock; this object owns every
decision in between connections, so the anyio and the blocking driver can't
disagree about the protocol. The loop every driver runs is::

    reconnector = Reconnector(config, session=saved_session, rng=rng)
    while True:
        conn = reconnector.new_connection()      # resumes if it holds a session
        try:
            open TCP/TLS to conn.url, conn.connect(now), pump bytes, and
            call reconnector.observe(event) for every event conn produces
        except (OSError, TimeoutError) as exc:   # before the WebSocket opened
            delay = reconnector.after_connect_failure(repr(exc))
        else:
            delay = reconnector.after_close(closed_event)
        if delay is None:                        # stop: see reconnector.fatal_error
            break
        sleep(delay)

What it decides:

- **Resume or identify.** The next connection resumes whenever the last one left
  a resumable session (``Closed.session``), and identifies otherwise (op 9 with
  ``false``, close 4003/4007/4009, a caller's 1000/1001).
- **Where.** Resumes go to the session's resume URL. If *reaching* that host fails
  (TCP, TLS, a refused handshake, EOF before the WebSocket opened), the next
  attempt resumes on the base ``config.url``, the one after on the resume URL
  again, and so on: during an outage the session is kept, because only the
  server can end it (op 9 ``false``, a close code that ends sessions) and a new
  session loses every event a resume would have replayed. It is given up (the
  next connection identifies) once it is older than ``config.max_resume_age``
  seconds, counted from the end of its last live connection (the clock is the
  ``now`` the driver passes), or after ``max_resume_attempts`` resumes in a row
  that opened but ended before RESUMED.
- **When.** Capped exponential backoff with full jitter (:class:`~.backoff.Backoff`),
  reset when READY or RESUMED arrives, and never less than ``Closed.retry_after``
  (e.g. the customary 1-5 s after a non-resumable op 9).
- **Whether.** ``None`` after a fatal close code (``fatal_error`` then holds the
  typed :class:`~gateway_proto.errors.FatalCloseError` to raise or report) and after
  a close the caller asked for (``Closed.can_reconnect`` is false). A driver that
  restarts on purpose (``shard.reconnect()``) calls :meth:`Reconnector.after_restart`
  instead of :meth:`Reconnector.after_close`: no backoff, and the session it resumes
  comes from the ``Closed`` event. ``gateway_proto.driver_support.after_connection``
  makes this choice for both drivers.
"""

from __future__ import annotations

import random

from .backoff import Backoff
from .config import ShardConfig
from .connection import GatewayConnection
from .errors import FatalCloseError
from .events import Closed, Dispatch, Event, Opened, PayloadSent
from .opcodes import Opcode
from .session import Session

__all__ = ["CONNECT_FAILED", "RESTART_REQUESTED", "Reconnector"]

#: The key of :attr:`Reconnector.reconnects` for attempts that never opened.
CONNECT_FAILED = "connect_failed"
#: The key of :attr:`Reconnector.reconnects` for restarts the caller asked for.
RESTART_REQUESTED = "requested"


class Reconnector:
    """Builds each connection of one shard and says how long to wait before the next.

    Args:
        config: the shard's configuration (its ``url`` is the base gateway URL).
        session: a saved session to resume first, if any.
        rng: the random source for connections (heartbeat jitter) and backoff.
        backoff: the delay policy (default: ``Backoff(rng)``: 1 s doubling to 60 s).
        max_resume_attempts: resumes in a row that may end before RESUMED before
            the session is given up and the next connection identifies.

    Attributes:
        session: the session the next connection resumes (``None``: identify).
        fatal_error: set when :meth:`after_close` returned ``None`` because of a
            fatal close code; the driver should raise or report it.
        identifies: IDENTIFY payloads sent so far (new sessions started).
        resumes: RESUME payloads sent so far.
        duplicates_dropped: replayed dispatches its connections dropped (see
            ``GatewayConnection.duplicates_dropped``), summed over all of them.
        reconnects: reconnects counted by ``CloseCause`` value,
            :data:`CONNECT_FAILED` for attempts that never opened, and
            :data:`RESTART_REQUESTED` for restarts the caller asked for.
        reconnect_codes: the same reconnects by ``(cause, close code)``, the code
            ``0`` when the connection ended without one (lost, or never opened).
        last_error: the text given to the last :meth:`after_connect_failure`.

    """

    def __init__(
        self,
        config: ShardConfig,
        *,
        session: Session | None = None,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        max_resume_attempts: int = 3,
    ) -> None:
        if max_resume_attempts < 1:
            raise ValueError("max_resume_attempts must be at least 1")
        self.config = config
        self.session = session
        self._rng = rng if rng is not None else random.Random()
        self.backoff = backoff if backoff is not None else Backoff(self._rng)
        self.max_resume_attempts = max_resume_attempts
        self.fatal_error: FatalCloseError | None = None
        self.identifies = 0
        self.resumes = 0
        self.reconnects: dict[str, int] = {}
        self.reconnect_codes: dict[tuple[str, int], int] = {}
        self.last_error = ""
        self._on_base_url = False  # the next resume goes to config.url, not the resume URL
        self._lost_at: float | None = None  # when the session's last live connection ended
        self._conn: GatewayConnection | None = None
        self._duplicates_before = 0  # dropped by the connections before _conn
        self._failed_resumes = 0  # resumes in a row that ended before RESUMED
        # The current attempt: did it open, did it resume, did it reach RESUMED/READY?
        self._opened = False
        self._resuming = False
        self._live = False

    def new_connection(self) -> GatewayConnection:
        """Return the next connection (not connected yet: the driver calls ``connect``).

        It resumes :attr:`session` when there is one (on the resume URL, or on the
        base URL after the resume host failed), and identifies otherwise. Its
        ``url`` is where to open the socket.
        """
        session = self.session
        self._opened = self._live = False
        self._resuming = session is not None
        url = self.config.url if session is not None and self._on_base_url else None
        if self._conn is not None:
            self._duplicates_before += self._conn.duplicates_dropped
        conn = self._conn = GatewayConnection(self.config, session=session, rng=self._rng, url=url)
        return conn

    @property
    def duplicates_dropped(self) -> int:
        """Replayed dispatches dropped by this shard's connections so far (all of them)."""
        current = 0 if self._conn is None else self._conn.duplicates_dropped
        return self._duplicates_before + current

    def observe(self, event: Event) -> None:
        """Take note of one event of the current connection (call it for every event).

        READY and RESUMED reset the backoff; IDENTIFY and RESUME payloads are
        counted; ``Closed`` updates :attr:`session`. Other dispatches change
        nothing, so a driver may skip them (``driver_support.EventDrain`` does).
        """
        if type(event) is Dispatch:
            name = event.name
            if name == "READY" or name == "RESUMED":  # noqa: PLR1714 (hot path)
                self._live = True
                self._failed_resumes = 0
                self._on_base_url = False
                self._lost_at = None
                self.backoff.reset()
        elif isinstance(event, PayloadSent):
            if event.opcode == Opcode.IDENTIFY:
                self.identifies += 1
            elif event.opcode == Opcode.RESUME:
                self.resumes += 1
        elif isinstance(event, Opened):
            self._opened = True
        elif isinstance(event, Closed):
            self.session = event.session

    def after_close(self, closed: Closed, *, now: float | None = None) -> float | None:
        """Return the seconds to wait before the next connection, or ``None`` to stop.

        ``None`` after a fatal close (:attr:`fatal_error` is set) or a close the
        caller asked for. A connection that ended before its WebSocket opened
        (a refused handshake, EOF during it) counts as a connect failure (see
        :meth:`after_connect_failure`). ``now`` (the driver's clock) times the
        session's age; without it, ``config.max_resume_age`` is not applied.
        """
        self.session = closed.session
        if isinstance(closed.error, FatalCloseError):
            self.fatal_error = closed.error
            return None
        if not closed.can_reconnect:
            return None
        if not self._opened:
            wait = self.after_connect_failure(closed.reason, now=now, code=closed.code)
            return max(wait, closed.retry_after)
        self._count(closed.cause.value, closed.code)
        if self._resuming and not self._live and self.session is not None:
            self._failed_resumes += 1
            if self._failed_resumes >= self.max_resume_attempts:
                self._drop_session()
        self._check_age(now)
        return max(self.backoff.next_delay(), closed.retry_after)

    def after_restart(self, closed: Closed) -> float:
        """Return ``0.0``: the caller closed this connection to connect again at once.

        Call it instead of :meth:`after_close` when the close was a restart
        (``shard.reconnect()``): the backoff policy is skipped (that close could
        not reconnect otherwise), the restart is counted under
        :data:`RESTART_REQUESTED`, and the next connection resumes what ``closed``
        left (or identifies, after a ``1000``/``1001`` restart).
        """
        self.session = closed.session
        self._count(RESTART_REQUESTED, closed.code)
        return 0.0

    def after_connect_failure(
        self, error_text: str = "", *, now: float | None = None, code: int | None = None
    ) -> float:
        """Return the seconds to wait after an attempt that never opened the WebSocket.

        Call it when TCP, TLS or the WebSocket handshake failed or timed out. A
        resume keeps its session and alternates hosts: after the resume URL the
        base URL, after the base URL the resume URL, with a growing backoff, until
        the session is older than ``config.max_resume_age`` at ``now`` (the
        driver's clock; without it there is no age limit). ``code``: the close
        code the attempt ended with, if any (counted in :attr:`reconnect_codes`).
        """
        self.last_error = error_text
        self._count(CONNECT_FAILED, code)
        if self.session is not None:
            # Either host may be the one that is down: take turns.
            self._on_base_url = not self._on_base_url
            self._check_age(now)
        return self.backoff.next_delay()

    def _check_age(self, now: float | None) -> None:
        if self.session is None or now is None:
            return
        if self._lost_at is None:
            self._lost_at = now
        elif now - self._lost_at > self.config.max_resume_age:
            self._drop_session()

    def _drop_session(self) -> None:
        self.session = None
        self._on_base_url = False
        self._failed_resumes = 0
        self._lost_at = None

    def _count(self, key: str, code: int | None = None) -> None:
        self.reconnects[key] = self.reconnects.get(key, 0) + 1
        pair = (key, 0 if code is None else code)
        self.reconnect_codes[pair] = self.reconnect_codes.get(pair, 0) + 1
