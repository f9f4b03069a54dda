"""The soak harness: one shard, a seeded random fault schedule, and a delivery ledger.

Theory of operation: :func:`soak` starts a :class:`~gateway_testing.FakeGateway` and
one shard of the driver under test (through the scenario adapter), then loops: a
burst of numbered ``MESSAGE_CREATE`` dispatches (``d["n"]`` counts up over the whole
run), one fault from the schedule, another burst. A fault that ends the connection
is followed by more bursts until the client has said READY or RESUMED again, so
dispatches keep arriving while the client is away (the fake buffers them for the
RESUME). Faults: a TCP drop (FIN or RST), a drop during the replay that follows, a
zombie (no more heartbeat ACKs), op 7, op 9 ``true`` and ``false``, zlib messages
split over several WebSocket messages, messages fragmented into several frames, and
big dispatches (128 KiB to 1 MiB). Everything random comes from one seeded
``random.Random``, the shard's own (jitter, backoff) included, so a seed replays the
same schedule.

The :class:`Ledger` reads what the driver delivered, as it arrives, and compares it
with the fake's own records (each :class:`~gateway_testing.FakeSession`'s numbered
dispatches, copied as they appear: the fake forgets an ended session's): per
session, every dispatch exactly once and in order (``s`` = 1, 2, 3, ... across
resumes), the same name and the same ``n``; a new session (READY) only after the
fake ended the previous one, and only once that one was delivered to its last
dispatch (or to the ``seq`` of a RESUME the fake refused). At the end, the live
session is delivered to its last dispatch too, the client saw exactly the sessions
the fake made, and :class:`Leaks` finds no anyio task, thread or file descriptor
left behind.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from gateway_proto.driver_support import ConnectionRejectedError
from gateway_proto.events import CloseCause, Closed
from gateway_testing import Dispatch, FakeConnection, FakeGateway, FakeSession

from .adapter import TOKEN, DriverAdapter, Running, Seen

__all__ = [
    "DISRUPTIVE",
    "FAULTS",
    "Leaks",
    "Ledger",
    "SoakConfig",
    "SoakFailure",
    "live_connection",
    "running_soak",
    "soak",
]

#: Faults that end the connection (the harness waits for READY/RESUMED after each).
# (The two slow ones, with the 1-5 s wait after op 9 false and two backoffs, are
# apart: test_soak deals them out in neighbouring pairs.)
DISRUPTIVE = ("op9-new-session", "drop", "op7", "drop-in-replay", "zombie", "op9-resumable")
#: Faults that change how the next payloads travel (the connection stays).
SHAPING = ("split", "fragment", "big")
#: Every fault the schedule knows.
FAULTS = DISRUPTIVE + SHAPING

# A short heartbeat makes a zombie show up within a second; the fake's grace is
# long, so a client that beats a little late under load is not closed with 4009
# (which ends the session) while no fault asked for it.
INTERVAL = 0.3
GRACE = 10.0
#: How far the fake may run ahead of what the client delivered (keeps memory and
#: the replay buffer bounded, whatever the run's length).
MAX_LEAD = 2000
#: Seconds to wait for the client to come back after a fault, or to catch up.
RECOVERY_TIMEOUT = 30.0
#: Consumed entries of the adapter's event list are dropped past this many.
_TRIM = 20_000
#: Close causes a fault of the schedule can produce (ZOMBIE also comes, rarely,
#: from an ACK late under load; that is a correct reaction, resumed like the rest).
_EXPECTED_CAUSES = frozenset(
    {
        CloseCause.CONNECTION_LOST,
        CloseCause.ZOMBIE,
        CloseCause.RECONNECT_REQUESTED,
        CloseCause.INVALID_SESSION,
        CloseCause.REQUESTED,
    }
)


class SoakFailure(AssertionError):
    """The driver delivered something other than what the fake sent, or did not recover."""


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """One soak run.

    Attributes:
        seed: the seed of the schedule, the payloads and the shard's randomness.
        seconds: how long to keep injecting random faults once the ``must``
            faults (injected first, however long they take) are done.
        encoding: ``"json"`` or ``"etf"``.
        compress: the shard's ``compress`` (``"zlib-stream"``, ``"zstd-stream"``,
            ``"payload"`` or ``None``).
        faults: the faults the random part of the schedule draws from.
        must: faults injected (in a seeded order) before any random one.

    """

    seed: int
    seconds: float
    encoding: str
    compress: str | None
    faults: frozenset[str] = frozenset(FAULTS)
    must: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = (self.faults | set(self.must)) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")


# -- leaks ---------------------------------------------------------------------------------

# Idle workers of the thread pools anyio, asyncio and trio keep for reuse: they are
# not the driver's and end on their own; every other new thread must be gone.
_POOL_THREAD = re.compile(r"^(AnyIO worker thread|asyncio_\d+|Trio thread \d+|ThreadPoolExecutor)")


def _fds() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue  # the listing's own descriptor, gone already
    return found


@dataclass
class Leaks:
    """The anyio tasks, threads and file descriptors alive now; :meth:`check` compares."""

    tasks: set[int] = field(default_factory=lambda: {t.id for t in anyio.get_running_tasks()})
    threads: set[threading.Thread] = field(default_factory=lambda: set(threading.enumerate()))
    fds: set[str] = field(default_factory=_fds)

    def found(self) -> list[str]:
        """Describe everything new since the snapshot (empty: nothing leaked)."""
        tasks = [t.name for t in anyio.get_running_tasks() if t.id not in self.tasks]
        threads = [
            t.name
            for t in threading.enumerate()
            if t not in self.threads and t.is_alive() and not _POOL_THREAD.match(t.name)
        ]
        fds = sorted(_fds() - self.fds)
        out = []
        if tasks:
            out.append(f"tasks {tasks}")
        if threads:
            out.append(f"threads {threads}")
        if fds:
            out.append(f"file descriptors {fds}")
        return out

    async def check(self, grace: float = 5.0) -> None:
        """Fail unless all that is new ended within ``grace`` s (threads join, sockets close)."""
        deadline = time.monotonic() + grace
        while found := self.found():
            if time.monotonic() > deadline:
                raise SoakFailure("leaked " + "; ".join(found))
            await anyio.sleep(0.02)


# -- the ledger ----------------------------------------------------------------------------


class Ledger:
    """Checks, as they arrive, the dispatches the driver delivered against the fake's sessions."""

    def __init__(self, gw: FakeGateway, run: Running) -> None:
        self.gw = gw
        self.run = run
        #: The fake session the client is in (from its last READY), and its last ``s``.
        self.session: FakeSession | None = None
        self.last_s = 0
        #: Session ids in the order the client began them (READY).
        self.sessions: list[str] = []
        #: READY and RESUMED delivered so far: the client's "I am live again" marks.
        self.live_marks = 0
        self.messages = 0
        self.last_n = -1
        self.closes: list[Closed] = []
        #: Says which run this is (seed, faults so far) in every failure.
        self.context: Callable[[], str] = str
        self._cursor = 0
        # Copies of what the fake numbered, per session id, not yet delivered: the
        # fake empties an ended session's replay buffer once its connection is
        # gone, and the client may deliver that session's last dispatches later.
        self._numbered: dict[str, deque[Dispatch]] = {}
        self._copied: dict[str, int] = {}

    def copy_records(self) -> None:
        """Copy what the fake numbered since the last call (call it before ending a session)."""
        for session_id, session in self.gw.sessions.items():
            copied = self._copied.get(session_id, 0)
            if session.seq <= copied:
                continue
            new = []
            for dispatch in reversed(session.buffer):
                if dispatch.s <= copied:
                    break
                new.append(dispatch)
            if not new or new[-1].s != copied + 1:
                raise self.fail(f"the fake's record of {session_id[:8]} after s={copied} is gone")
            self._numbered.setdefault(session_id, deque()).extend(reversed(new))
            self._copied[session_id] = session.seq

    def fail(self, message: str) -> SoakFailure:
        """Return the failure to raise, with where the client stands."""
        sid = self.session.session_id[:8] if self.session else None
        where = f"client in session {sid} at s={self.last_s}"
        return SoakFailure(f"{message} ({where}; {self.context()})")

    def consume(self) -> None:
        """Check every event delivered since the last call (raises :class:`SoakFailure`)."""
        self.copy_records()
        seen = self.run.seen
        while self._cursor < len(seen):
            item = seen[self._cursor]
            self._cursor += 1
            if item.sequence is not None:
                self._dispatch(item)
            elif item.name == "close":
                closed: Closed = item.data
                self.closes.append(closed)
                if closed.cause not in _EXPECTED_CAUSES:
                    raise self.fail(f"a close no fault asked for: {closed!r}")
            elif item.name == "error":
                # A connection a fault ended before READY/RESUMED (a drop during
                # the replay) is reported as an error event; nothing else may be.
                error = item.data
                if not (
                    isinstance(error, ConnectionRejectedError) and error.cause in _EXPECTED_CAUSES
                ):
                    raise self.fail(f"an error event: {error!r}")
        if self._cursor > _TRIM:
            # The adapter's list only grows; what was checked is not needed again.
            # (A slice deletion is one step under the GIL, so the sync driver's
            # handler thread appending meanwhile loses nothing.)
            del seen[: self._cursor]
            self._cursor = 0

    def _dispatch(self, item: Seen) -> None:
        s = item.sequence
        assert s is not None
        if item.name == "READY":
            self._begin(item.data["session_id"], s)
            return
        session = self.session
        if session is None:
            raise self.fail(f"{item.name} s={s} before any READY")
        if s != self.last_s + 1:
            kind = "a duplicate or out of order" if s <= self.last_s else "a gap (lost dispatches)"
            raise self.fail(f"{item.name} s={s} after s={self.last_s}: {kind}")
        numbered = self._numbered.get(session.session_id)
        while numbered and numbered[0].s < s:
            numbered.popleft()  # READY (s=1), which _begin checked
        if not numbered or numbered[0].s != s:
            raise self.fail(f"s={s} is not in the fake's record of the session")
        sent = numbered.popleft()
        if sent.t != item.name:
            raise self.fail(f"s={s} delivered as {item.name}, the fake sent {sent.t}")
        if item.name == "MESSAGE_CREATE":
            self._message(item.data, sent.d, s)
        elif item.name == "RESUMED":
            self.live_marks += 1
        self.last_s = s

    def _message(self, got: Any, sent: Any, s: int) -> None:
        n = got.get("n") if isinstance(got, dict) else None
        if n != sent["n"]:
            raise self.fail(f"s={s} carries n={n!r}, the fake sent n={sent['n']}")
        if "content" in sent and got.get("content") != sent["content"]:
            size = len(got.get("content") or "")
            raise self.fail(f"s={s}: content of {size} chars, the fake sent {len(sent['content'])}")
        if n <= self.last_n:
            raise self.fail(f"n={n} after n={self.last_n}")
        self.last_n = n
        self.messages += 1

    def _begin(self, session_id: str, s: int) -> None:
        session = self.gw.sessions.get(session_id)
        if session is None:
            raise self.fail(f"READY of a session the fake never made ({session_id[:8]})")
        if s != 1:
            raise self.fail(f"READY with s={s}, not 1")
        self.finish_session()
        self.session, self.last_s = session, 1
        self.sessions.append(session_id)
        self.live_marks += 1

    def finish_session(self) -> None:
        """The client left its session: the fake must have ended it, and all of it delivered."""
        old = self.session
        if old is None:
            return
        if not old.invalidated:
            raise self.fail(f"a new session while {old.session_id[:8]} was still resumable")
        end = self._end_of(old)
        if self.last_s != end:
            raise self.fail(
                f"session {old.session_id[:8]} ended at s={end} (numbered to s={old.seq}), "
                f"delivered to s={self.last_s}"
            )

    def _end_of(self, session: FakeSession) -> int:
        """The last ``s`` of an ended session the client could have had.

        Everything the fake numbered, unless the session ended in answer to a
        RESUME (op 9 ``false`` where a replay would have come: the client had
        left the connection carrying the rest, say on a zombie check, before the
        fault's op 9 was written there). Then nothing after the RESUME's ``seq``
        reached it, as on Discord.
        """
        for conn in reversed(self.gw.connections):
            resumes = [p.d for p in conn.sent if p.op == 6 and isinstance(p.d, dict)]
            if any(d.get("session_id") == session.session_id for d in resumes):
                refused = any(p.op == 9 for p in conn.delivered)
                replayed = any(p.op == 0 for p in conn.delivered)
                if refused and not replayed:
                    seq: int = resumes[-1]["seq"]
                    return seq
                break
        return session.seq

    def lead(self) -> int:
        """How many dispatches of the client's session the fake numbered and it did not deliver."""
        return 0 if self.session is None else self.session.seq - self.last_s


# -- the run -------------------------------------------------------------------------------


def live_connection(gw: FakeGateway) -> FakeConnection | None:
    """The fake's newest connection with a session on it (``None`` while the client is away)."""
    for conn in reversed(gw.connections):
        if conn.session is not None and not conn.closed:
            return conn
    return None


class _Soak:
    def __init__(self, gw: FakeGateway, run: Running, config: SoakConfig, rng: random.Random):
        self.gw = gw
        self.run = run
        self.config = config
        self.rng = rng
        self.ledger = Ledger(gw, run)
        self.n = 0
        self.new_sessions = 0
        # Per connection number: the ``s`` of the READY or RESUMED the fake sent there.
        self._marks: dict[int, int] = {}
        #: The schedule as it happened, for the failure message.
        self.log: list[str] = []
        # A few big contents, shared by every big dispatch (so the fake's records of
        # a long run hold each only once): just over 128 KiB, then up to 1 MiB.
        blob = rng.randbytes(512 * 1024).hex()
        sizes = [131_073, *sorted(rng.randrange(200 * 1024, 1024 * 1024) for _ in range(3))]
        self.big_contents = [blob[:size] for size in sizes]

    async def until(self, check: Callable[[], bool], what: str, *, stream: bool) -> None:
        """Wait (streaming bursts meanwhile if ``stream``) until ``check()``; fail after a while."""
        deadline = anyio.current_time() + RECOVERY_TIMEOUT
        while True:
            self.ledger.consume()
            if check():
                return
            if anyio.current_time() > deadline:
                raise self.ledger.fail(f"timed out waiting for {what}")
            if stream:
                await self.burst(self.rng.randint(1, 10))
            await anyio.sleep(0.005)

    def send(self, t: str, d: Any) -> FakeConnection | None:
        """Number ``(t, d)`` in every live session of shard 0, as ``FakeGateway.dispatch`` does.

        Unlike it, this does not wait for the write: a session without a connection
        (the client is reconnecting) keeps it for the replay.
        """
        now = anyio.current_time()
        target = None
        for session in list(self.gw.sessions.values()):
            if self.gw.live_session(session.session_id, now) is session:
                dispatch = session.number(t, d)
                conn = self.gw.connection_of(session)
                if conn is not None:
                    conn.send_dispatch(dispatch)
                    target = conn
        return target

    def _close_enough(self) -> bool:
        return self.ledger.lead() <= MAX_LEAD // 2

    async def burst(self, count: int) -> None:
        """Send ``count`` numbered MESSAGE_CREATEs (waiting while the client is far behind)."""
        for _ in range(count):
            if self.ledger.lead() > MAX_LEAD:
                await self.until(self._close_enough, "the client to catch up", stream=False)
            conn = self.send("MESSAGE_CREATE", {"n": self.n, "content": f"message {self.n}"})
            self.n += 1
            if conn is not None and not conn.has_room():
                with anyio.move_on_after(1.0):
                    await conn.wait_until(conn.has_room, timeout=1.0)
        await anyio.sleep(0)

    async def main(self) -> None:
        """Run the schedule, then let the client catch up and check the end state."""
        await self.until(lambda: self.ledger.live_marks > 0, "READY", stream=False)
        must = list(self.config.must)
        self.rng.shuffle(must)
        faults = sorted(self.config.faults)
        for kind in must:
            await self.step(kind)
        deadline = anyio.current_time() + self.config.seconds
        while faults and anyio.current_time() < deadline:
            await self.step(self.rng.choice(faults))
        await self.settle()

    async def step(self, kind: str) -> None:
        """A burst, a fault, a burst."""
        await self.burst(self.rng.randint(0, 40))
        await self.inject(kind)
        await self.burst(self.rng.randint(0, 40))

    async def inject(self, kind: str) -> None:
        """Inject one fault into the connection the client is live on."""
        # The client may be away although no fault asked for it: under load, the
        # ACK of a heartbeat sent during a long replay waits behind it (and behind
        # fragments, after a `fragment`), comes after the next heartbeat was due,
        # and the client closes the connection as a zombie and resumes, as it
        # should. A fault is for a connection the client is live on: wait for one.
        await self.until(self._back, f"the client to be live to inject {kind}", stream=True)
        conn = live_connection(self.gw)
        assert conn is not None
        self.log.append(f"{kind}@{conn.number}")
        rng = self.rng
        if kind == "drop":
            await conn.drop(reset=rng.random() < 0.5)
        elif kind == "drop-in-replay":
            # Drop, let dispatches pile up for the replay, then drop the resumed
            # connection too while it replays (before the client has RESUMED).
            await conn.drop(reset=rng.random() < 0.5)
            dropped = conn
            await self.until(lambda: self._resumed_after(dropped), "a RESUME", stream=True)
            replaying = live_connection(self.gw)
            assert replaying is not None
            self.log.append(f"drop@{replaying.number}")
            await replaying.drop(reset=rng.random() < 0.5)
            conn = replaying
        elif kind == "zombie":
            conn.stop_acking()
        elif kind == "op7":
            await conn.reconnect()
        elif kind == "op9-resumable":
            await conn.invalid_session(resumable=True)
        elif kind == "op9-new-session":
            self.new_sessions += 1
            self.ledger.copy_records()  # the fake forgets the session's numbering soon
            await conn.invalid_session(resumable=False)
        elif kind == "split":
            conn.split_messages = rng.choice((2, 3, 6, 50))  # zlib-stream only
        elif kind == "fragment":
            # Up to 64 frames: a big message then travels in 4-16 KiB fragments.
            conn.fragment_frames = rng.choice((2, 3, 8, 64))
        elif kind == "big":
            content = rng.choice(self.big_contents)
            self.send("MESSAGE_CREATE", {"n": self.n, "content": content})
            self.n += 1
        if kind in DISRUPTIVE:
            after = conn
            await self.until(lambda: self._back(after), f"READY/RESUMED after {kind}", stream=True)

    def _resumed_after(self, conn: FakeConnection) -> bool:
        live = live_connection(self.gw)
        return live is not None and live.number > conn.number and live.resumed

    def _back(self, after: FakeConnection | None = None) -> bool:
        """Whether the client is live on the newest connection (one after ``after``).

        Live: the READY or RESUMED the fake sent there, and all before it, delivered.
        """
        live = live_connection(self.gw)
        session = None if live is None else live.session
        if live is None or session is None or session is not self.ledger.session:
            return False
        if after is not None and live.number <= after.number:
            return False
        mark = self._marks.get(live.number)
        if mark is None:
            # The session's newest READY/RESUMED is this connection's: the fake
            # numbers it as it attaches the session. (Not the first one delivered
            # here: a replay carries the RESUMED of a connection dropped before
            # it wrote it, as `drop-in-replay` does.)
            found = (d.s for d in reversed(session.buffer) if d.t in ("READY", "RESUMED"))
            mark = next(found, None)
            if mark is None:
                return False
            self._marks[live.number] = mark
        return self.ledger.last_s >= mark

    async def settle(self) -> None:
        """Stop streaming; wait until the client delivered its session's last dispatch."""

        def caught_up() -> bool:
            live = live_connection(self.gw)
            session = None if live is None else live.session
            return (
                session is not None
                and session is self.ledger.session
                and (self.ledger.last_s == session.seq)
            )

        await self.until(caught_up, "the client to deliver the last dispatch", stream=False)
        ledger = self.ledger
        made = list(self.gw.sessions)
        if ledger.sessions != made:
            raise ledger.fail(f"the client began sessions {ledger.sessions}, the fake made {made}")
        if len(made) != 1 + self.new_sessions:
            raise ledger.fail(f"{len(made)} sessions for {self.new_sessions} op 9 false")


def _identify_limiter(driver: DriverAdapter) -> Any:
    # A short identify window: after op 9 false the shard identifies again at once
    # (after the protocol's 1-5 s), not after Discord's 5 s bucket.
    if driver.name == "sync":
        from gateway_sync import InProcessIdentifyLimiter

        return InProcessIdentifyLimiter(window=0.05)
    from gateway_anyio._limiter import InProcessIdentifyLimiter as AnyioLimiter

    return AnyioLimiter(window=0.05)


@dataclass(frozen=True, slots=True)
class SoakReport:
    """What a finished run did (for the test's own assertions and its output)."""

    messages: int
    sessions: int
    faults: Sequence[str]
    closes: int


@asynccontextmanager
async def running_soak(driver: DriverAdapter, config: SoakConfig) -> AsyncIterator[_Soak]:
    """Start the fake and one shard of ``driver`` for ``config``; yield the run's state.

    :func:`soak` runs the schedule in it; a test of the harness itself can call
    ``inject`` and ``settle`` on the state directly.
    """
    replay = f"seed {config.seed} (replay: SPECTACLES_SOAK_SEED={config.seed})"
    # Printed first, so that pytest shows it with any failure, even one not ours.
    print(f"soak {driver.name} {config.encoding}/{config.compress}: {replay}")
    # One stream of randomness per case: the same seed replays every case's schedule.
    rng = random.Random(f"{config.seed}:{driver.name}:{config.encoding}:{config.compress}")
    gw = FakeGateway(
        token=TOKEN,
        heartbeat_interval=INTERVAL,
        heartbeat_grace=GRACE,
        identify_window=0.05,
        command_limit=1_000_000,  # a 0.3 s heartbeat would hit 120/60 s in a long run
        resume_buffer=4 * MAX_LEAD + 1000,
        seed=config.seed % 2**31,
    )
    async with (
        gw,
        driver.start_shard(
            gw,
            encoding=config.encoding,
            compression=config.compress,
            rng=random.Random(rng.getrandbits(64)),
            identify_limiter=_identify_limiter(driver),
        ) as run,
    ):
        state = _Soak(gw, run, config, rng)
        state.ledger.context = lambda: f"{replay}; faults: {' '.join(state.log[-30:])}"
        yield state


async def soak(driver: DriverAdapter, config: SoakConfig) -> SoakReport:
    """Run one soak of ``driver``; raise :class:`SoakFailure` (naming the seed) on any finding."""
    leaks = Leaks()
    async with running_soak(driver, config) as state:
        await state.main()
    try:
        await leaks.check()
    except SoakFailure as exc:
        raise SoakFailure(f"{exc} ({state.ledger.context()})") from None
    return SoakReport(
        messages=state.ledger.messages,
        sessions=len(state.ledger.sessions),
        faults=tuple(state.log),
        closes=len(state.ledger.closes),
    )
