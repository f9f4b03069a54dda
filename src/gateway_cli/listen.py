"""What ``listen`` does the same on both drivers: events to display calls, the exit status.

Both drivers report the same :class:`~gateway_proto.driver_support.GatewayEvent`
objects, so :class:`_Listener` turns them into display calls once, for both, and
notices when the run should end; :func:`_summary` turns how it ended into the
exit status (the statuses are listed in ``run.py``). Also here: the embedded fake
gateway's settings for offline runs, the shard plan from ``--shards`` and
``GET /gateway/bot``, and where the library's log records go while a command runs.
The drivers' own loops are ``listen_anyio.py`` and ``listen_sync.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gateway_proto.config import DEFAULT_USER_AGENT
from gateway_proto.driver_support import (
    CLOSE,
    CONNECT,
    DISCONNECT,
    ERROR,
    IDENTIFY_WAIT,
    LIFECYCLE_EVENTS,
    STATE,
    ConnectionRejectedError,
    GatewayEvent,
    GatewayInfo,
    GatewayRequestError,
    IdentifyWait,
    StateChange,
    Stopped,
)
from gateway_proto.errors import FatalCloseError
from gateway_proto.events import Closed

from .display import Display, EventRecord
from .explain import explain
from .values import OFFLINE_TOKEN

if TYPE_CHECKING:
    from .options import ListenOptions

#: Shards of the offline demo when ``--shards auto``: two identify buckets of two,
#: so the demo shows the identify-bucket wait (5 s) and still ends within 20 s.
OFFLINE_AUTO_SHARDS = 4
OFFLINE_MAX_CONCURRENCY = 2
#: Heartbeat interval of the embedded fake: short, so latency shows within the demo.
OFFLINE_HEARTBEAT_INTERVAL = 5.0
#: Seconds the shutdown (closing handshakes, task teardown) may take before giving up.
#: How often the status display is refreshed.
_TICK = 0.25

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
#: The reader of stdout went away (``| head``): 128 + SIGPIPE, what ``cat`` ends with.
EXIT_PIPE_CLOSED = 141
#: Closes with 4002 (decode error) in a row before any READY after which ``listen``
#: gives up: the server cannot decode what this client sends (an ETF-only server
#: and a JSON client, say), and no retry changes that.
GIVE_UP_AFTER_DECODE_ERRORS = 3

#: The process name the status page shows for ``listen``.
_PAGE_NAME = "spectacles-gateway listen"


@dataclasses.dataclass
class _Outcome:
    """How the run ended, decided by whichever stop condition came first."""

    reason: str = ""
    status: int = EXIT_OK
    errors: dict[int, BaseException] = dataclasses.field(default_factory=dict)
    #: Whether any shard got READY or RESUMED during the run.
    ever_ready: bool = False
    #: The last refusal before READY of each shard (close code and reason).
    rejections: dict[int, str] = dataclasses.field(default_factory=dict)

    def stop(self, reason: str, status: int = EXIT_OK) -> None:
        if not self.reason:  # the first reason wins: later ones are consequences
            self.reason, self.status = reason, status


class _Listener:
    """Turns driver events into display calls; notices when every shard stopped."""

    def __init__(self, display: Display, shard_ids: Sequence[int], clock: Callable[[], float]):
        self.display = display
        self.clock = clock
        self.pending = set(shard_ids)
        self.outcome = _Outcome()
        self.all_stopped = threading.Event()  # set from either driver's thread or task

    def finished(self) -> bool:
        """Whether the run should end now (checked after each event: a compare or two)."""
        if self.display.out_closed:
            self.outcome.stop("stdout closed", EXIT_PIPE_CLOSED)
            return True
        if self.all_stopped.is_set():
            self.outcome.stop("every shard stopped")
            return True
        return False

    def handle(self, event: GatewayEvent) -> None:
        now = self.clock()
        display = self.display
        if event.name not in LIFECYCLE_EVENTS:
            display.event(EventRecord(event.shard_id, event.name, event.data, event.sequence), now)
            return
        data = event.data
        if event.name == STATE and isinstance(data, StateChange):
            display.shard_state(event.shard_id, data.new.value, now)
        elif event.name == IDENTIFY_WAIT and isinstance(data, IdentifyWait):
            display.identify_wait(event.shard_id, now + data.delay, now)
            if data.waits_for_reset:
                display.warning(
                    f"shard {event.shard_id}: the session start budget is spent; waiting "
                    f"{data.delay:.0f} s for it to reset (identifying now would reset the token)"
                )
        elif event.name == CLOSE and isinstance(data, Closed):
            action = (
                "stopping"
                if not data.can_reconnect
                else ("resuming" if data.can_resume else "reconnecting")
            )
            code = "no close frame" if data.code is None else f"code {data.code}"
            display.notice(f"shard {event.shard_id}: closed ({code}, {data.reason}); {action}")
        elif event.name == CONNECT:
            self.outcome.ever_ready = True
        elif event.name == ERROR and isinstance(data, ConnectionRejectedError):
            # The library logged it as a warning (a notice here): only the board changes.
            self.outcome.rejections[event.shard_id] = data.summary
            display.shard_rejected(event.shard_id, data.summary, now)
            if (
                data.code == 4002
                and data.in_a_row >= GIVE_UP_AFTER_DECODE_ERRORS
                and not self.outcome.ever_ready
            ):
                self.outcome.stop("the server cannot decode this client's payloads", EXIT_FAILURE)
                self.all_stopped.set()
        elif event.name == ERROR and isinstance(data, BaseException):
            if not isinstance(data, FatalCloseError | GatewayRequestError):
                display.notice(f"shard {event.shard_id}: {explain(data)}")
        elif event.name == DISCONNECT and isinstance(data, Stopped):
            if data.error is not None:
                self.outcome.errors[event.shard_id] = data.error
            self.pending.discard(event.shard_id)
            if not self.pending:
                self.all_stopped.set()


def _summary(outcome: _Outcome, options: ListenOptions, display: Display) -> int:
    """Report fatal errors (one line each, deduplicated) and return the exit status."""
    status = outcome.status
    if status == EXIT_PIPE_CLOSED:
        return status  # nobody reads any more: end as quietly as cat
    seen: set[str] = set()
    for shard_id, error in sorted(outcome.errors.items()):
        message = explain(error, options)
        if message not in seen:
            seen.add(message)
            display.error(message if len(outcome.errors) == 1 else f"shard {shard_id}: {message}")
        status = EXIT_FAILURE
    if status in (EXIT_OK, EXIT_FAILURE) and not outcome.errors and not outcome.ever_ready:
        # Exiting 0 here would tell a script that all went well with nothing connected.
        why = "; ".join(f"shard {k} rejected: {v}" for k, v in sorted(outcome.rejections.items()))
        hint = ""
        if any(v.startswith("4002 ") for v in outcome.rejections.values()):
            other = "etf" if options.encoding == "json" else "json"
            hint = (
                f": the server cannot decode what this client sends (4002); if it serves "
                f"{other.upper()} only, use --encoding {other}"
            )
        display.error(f"no shard became ready ({why or 'no READY from the gateway'}){hint}")
        status = EXIT_FAILURE
    return status


def _offline_shards(options: ListenOptions) -> tuple[int, int]:
    """Return ``(shard count, max_concurrency)`` for the embedded fake gateway."""
    if options.shards.count is None:
        return OFFLINE_AUTO_SHARDS, OFFLINE_MAX_CONCURRENCY
    return options.shards.count, OFFLINE_MAX_CONCURRENCY


def _fake_kwargs(options: ListenOptions) -> dict[str, Any]:
    shards, max_concurrency = _offline_shards(options)
    return {
        "token": OFFLINE_TOKEN,
        "shards": shards,
        "max_concurrency": max_concurrency,
        "event_rate": options.rate,
        "heartbeat_interval": OFFLINE_HEARTBEAT_INTERVAL,
        "history_limit": 100,  # an offline run may last for hours: records stay bounded
    }


def _user_agent(options: ListenOptions) -> str:
    return options.user_agent or DEFAULT_USER_AGENT


def _plan(options: ListenOptions, info: GatewayInfo) -> tuple[list[int], int]:
    """Return ``(shard ids, shard count)`` from ``--shards`` and ``GET /gateway/bot``."""
    total = options.shards.count if options.shards.count is not None else info.shards
    return list(options.shards.shard_ids(total)), total


class _DisplayLogHandler(logging.Handler):
    """Shows the library's warnings as status notices (terminals only), drops the rest.

    Why: the CLI reports closes and fatal errors itself, in one line each; without
    a handler, Python's last-resort handler would print the library's log records
    raw on stderr, even on a pipe. ``--verbose`` logs everything instead.
    """

    def __init__(self, display: Display) -> None:
        super().__init__(logging.WARNING)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:  # errors: the CLI's own summary says it better
            self.display.notice(record.getMessage())


@contextlib.contextmanager
def _logging_to(display: Display, *, verbose: bool) -> Iterator[None]:
    """Route log records while the command runs, and leave logging as it was after."""
    root = logging.getLogger()
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(display.err)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler = _DisplayLogHandler(display)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else min(old_level or logging.WARNING, logging.WARNING))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _where(options: ListenOptions, info: GatewayInfo) -> str:
    """Name the gateway URL the shards connect to, and where it came from."""
    if options.offline:
        return f"{info.url} (the embedded fake gateway, offline)"
    if options.api_base is None:
        return f"{info.url} (Discord)"
    return f"{info.url} (from {options.api_base})"
