"""What Discord keeps per application, kept by the fake: sessions, guilds and limits.

Theory of operation: :class:`AppState` is the app-wide half of the fake's server (the
:class:`~gateway_testing.FakeGateway` is one): the bot's guilds (``guilds_per_shard``
per recommended shard, routed by ``(id >> 22) % shards``), its connections and
sessions, the identify buckets, the session-start budget and the full-member-list
windows. The protocol (:mod:`gateway_testing._protocol`) asks it, through
:class:`~gateway_testing._peer.Owner`, whether an identify may go ahead and which
session a RESUME names. Times are the ``now`` the caller passes, except where a
connection's end is noted (``anyio.current_time()``).
"""

from __future__ import annotations

import logging
import random

import anyio

from gateway_testing import corpus
from gateway_testing._connection import FakeConnection
from gateway_testing._options import FakeOptions
from gateway_testing._peer import ConnectionBase
from gateway_testing._session import FakeSession

__all__ = ["AppState"]

logger = logging.getLogger("gateway_testing")


class AppState:
    """The fake's app-wide state: connections, sessions, guilds, identify and member limits."""

    def __init__(self, options: FakeOptions) -> None:
        self.options = options
        o = self.options
        self.connections: list[FakeConnection] = []
        self.sessions: dict[str, FakeSession] = {}
        #: Set (and logged as an error) when an Identify found no session starts left.
        self.session_starts_exhausted = False
        self.session_start_remaining = (
            o.session_start_total
            if o.session_start_remaining is None
            else o.session_start_remaining
        )
        self.guild_ids: list[str] = [
            gid
            for shard in range(o.shards)
            for gid in corpus.guild_ids_for_shard(shard, o.shards, o.guilds_per_shard, seed=o.seed)
        ]
        self._session_reset_at = 0.0
        self._identify_buckets: dict[int, float] = {}
        self._member_requests: dict[str, float] = {}
        self._sessions_made = 0
        self._changed: anyio.Event | None = None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    def guilds_for(self, shard_id: int, shard_count: int) -> list[str]:
        """Return the bot's guilds that route to ``[shard_id, shard_count]``."""
        return [g for g in self.guild_ids if (int(g) >> 22) % shard_count == shard_id]

    def identify_allowed(self, shard_id: int, now: float) -> bool:
        """Take the identify bucket ``shard_id % max_concurrency`` if it is free."""
        key = shard_id % self.options.max_concurrency
        last = self._identify_buckets.get(key)
        if last is not None and now - last < self.options.identify_window:
            logger.info("identify of shard %d over max_concurrency: op 9", shard_id)
            return False
        self._identify_buckets[key] = now
        return True

    def take_session_start(self, now: float) -> bool:
        """Count one session start; ``False`` (and a loud error) when none are left."""
        if now >= self._session_reset_at:
            self._session_reset_at = now + self.options.session_start_reset
            self.session_start_remaining = self.options.session_start_total
        if self.session_start_remaining <= 0:
            self.session_starts_exhausted = True
            logger.error(
                "session start limit exhausted: on Discord every session is terminated, "
                "the bot token is reset and the owner gets an email"
            )
            return False
        self.session_start_remaining -= 1
        return True

    def full_member_request(self, guild_id: str, now: float) -> float | None:
        """Take the guild's full-member-list window; else return ``retry_after`` seconds."""
        last = self._member_requests.get(guild_id)
        window = self.options.member_request_window
        if last is not None and now - last < window:
            return round(window - (now - last), 3)
        self._member_requests[guild_id] = now
        return None

    def new_session(
        self, shard: tuple[int, int], guild_ids: list[str], intents: int, conn: ConnectionBase
    ) -> FakeSession:
        """Create a session for ``conn`` (after a successful Identify)."""
        self._sessions_made += 1
        rng = random.Random(f"session:{self.options.seed}:{self._sessions_made}")
        session = FakeSession(
            session_id=f"{rng.getrandbits(128):032x}",
            shard=shard,
            guild_ids=guild_ids,
            intents=intents,
            buffer_size=self.options.resume_buffer,
        )
        self.sessions[session.session_id] = session
        self.attach(session, conn)
        return session

    def _alive(self, session: FakeSession, now: float) -> bool:
        if session.invalidated:
            return False
        if session.detached_at is not None and now - session.detached_at > self.options.session_ttl:
            session.invalidated = True
            return False
        return True

    def live_session(self, session_id: str, now: float) -> FakeSession | None:
        """Return the session ``session_id`` if it can still be resumed."""
        session = self.sessions.get(session_id)
        return session if session is not None and self._alive(session, now) else None

    def connection_of(self, session: FakeSession) -> FakeConnection | None:
        """Return the live connection the session is attached to, if any."""
        for conn in reversed(self.connections):
            if conn.session is session and not conn.closed:
                return conn
        return None

    def attach(self, session: FakeSession, conn: ConnectionBase) -> None:
        """Make ``conn`` the session's connection (an older one is detached)."""
        old = self.connection_of(session)
        if old is not None and old is not conn:
            old.session = None
        conn.session = session
        session.detached_at = None
        self._notify()

    def detach(self, session: FakeSession, conn: ConnectionBase) -> None:
        """Stop sending the session's dispatches to ``conn`` (they are buffered instead)."""
        if conn.session is session:
            conn.session = None
            session.detached_at = anyio.current_time()

    def connection_ended(self, conn: ConnectionBase) -> None:
        """Note that ``conn``'s socket is gone (called by the connection)."""
        session = conn.session
        if session is not None:
            if conn.close_code in (1000, 1001):
                session.invalidated = True  # a clean client close ends the session
            session.detached_at = anyio.current_time()
        self._forget_dead_sessions()
        self._notify()

    def _forget_dead_sessions(self) -> None:
        # A session that can never be resumed needs no replay buffer; with a
        # history_limit (a long-running fake) it is forgotten altogether.
        limited = self.options.history_limit is not None
        for session_id, session in list(self.sessions.items()):
            if session.invalidated:
                session.buffer.clear()
                if limited:
                    del self.sessions[session_id]
