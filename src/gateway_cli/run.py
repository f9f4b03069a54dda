"""Wiring of ``spectacles-gateway``: options in, fake gateway and shards run, exit status out.

Theory of operation: :func:`main` parses (``args``), builds a :class:`Display`, and
runs one of three things: ``fake`` (delegated to :mod:`gateway_testing`), ``listen``
on the anyio driver, or ``listen`` on the sync driver. ``listen`` in offline mode
first starts the embedded fake gateway on loopback and points the driver's API base
at it. Both drivers report the same :class:`~gateway_proto.driver_support.GatewayEvent`
objects, so :class:`_Listener` turns them into display calls once, for both.

Exit statuses: 0 after a clean stop (``--duration`` elapsed, or the gateway let
every shard go), 1 when a shard stopped on a fatal error (bad token, disallowed
intents, ...), the gateway could not be reached (within ``--duration``, if given),
or no shard ever became ready (the server refused every connection: the last
reason is named), 2 for bad input, 130 after Ctrl-C (closed cleanly all the same),
141 when the reader of stdout went away (``| head``): quietly, as ``cat`` ends
(128 + SIGPIPE). No path prints a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from gateway_anyio import DEFAULT_API_BASE, Cluster, Gateway
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
    InvalidTokenError,
    StateChange,
    Stopped,
)
from gateway_proto.errors import (
    AuthenticationFailedError,
    DisallowedIntentsError,
    FatalCloseError,
    InvalidIntentsError,
    InvalidShardError,
    ShardingRequiredError,
)
from gateway_proto.events import Closed
from gateway_testing._cli import run as serve_fake

from .args import (
    OFFLINE_TOKEN,
    ListenOptions,
    ServeOptions,
    intent_names,
    parse_args,
    privileged_names,
    unknown_event_warnings,
)
from .display import Display, EventRecord
from .redis_run import RunOptions, run_gateway
from .worker import WorkerOptions, run_worker

if TYPE_CHECKING:
    import gateway_sync

__all__ = ["explain", "main"]

#: Shards of the offline demo when ``--shards auto``: two identify buckets of two,
#: so the demo shows the identify-bucket wait (5 s) and still ends within 20 s.
OFFLINE_AUTO_SHARDS = 4
OFFLINE_MAX_CONCURRENCY = 2
#: Heartbeat interval of the embedded fake: short, so latency shows within the demo.
OFFLINE_HEARTBEAT_INTERVAL = 5.0
#: Seconds the shutdown (closing handshakes, task teardown) may take before giving up.
SHUTDOWN_GRACE = 10.0
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (bad input exits 2 via argparse)."""
    try:
        options = parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or one-line usage errors
        code = exc.code
        return code if isinstance(code, int) else EXIT_FAILURE
    if isinstance(options, ServeOptions):
        return run_fake(options)
    if isinstance(options, RunOptions):
        return run_gateway(options)
    if isinstance(options, WorkerOptions):
        return run_worker(options)
    display = Display.for_options(options)
    return run_listen(options, display)


# -- errors, explained --------------------------------------------------------------


def explain(error: BaseException, options: ListenOptions | None = None) -> str:
    """Return one line saying what a fatal error means and what to do about it."""
    if isinstance(error, DisallowedIntentsError):
        asked = privileged_names(options.intents) if options is not None else []
        which = ", ".join(asked) if asked else "a privileged intent"
        return (
            f"Discord refused the privileged intents {which} (close code 4014): enable them "
            "for the bot in the Developer Portal (Bot > Privileged Gateway Intents), "
            "or leave them out of --intents"
        )
    if isinstance(error, AuthenticationFailedError):
        return (
            "Discord refused the token (close code 4004, authentication failed): "
            "check --token or DISCORD_TOKEN"
        )
    if isinstance(error, InvalidTokenError):
        return (
            "the token was refused (HTTP 401 on GET /gateway/bot): check --token or DISCORD_TOKEN"
        )
    if isinstance(error, InvalidIntentsError):
        names = ",".join(intent_names(options.intents)) if options is not None else "?"
        return f"Discord refused the intents bitfield ({names}) as invalid (close code 4013)"
    if isinstance(error, ShardingRequiredError):
        return (
            "the bot is in too many guilds for this shard count (close code 4011): "
            "use --shards auto or more shards"
        )
    if isinstance(error, InvalidShardError):
        return (
            "Discord refused the shard id or count (close code 4010): use --shards auto, "
            "or a count that is a multiple of the bot's shard factor"
        )
    if isinstance(error, FatalCloseError):
        return f"Discord closed the connection for good: {error}"
    if isinstance(error, GatewayRequestError):
        return f"could not ask for the gateway URL: {error}"
    if isinstance(error, OSError):
        return f"could not connect: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """Flatten exception groups (anyio task groups raise them) into their leaves."""
    inner = getattr(error, "exceptions", None)
    if isinstance(inner, tuple):
        for sub in inner:
            yield from _leaves(sub)
    else:
        yield error


def _is_cancellation(error: BaseException) -> bool:
    # Not anyio.get_cancelled_exc_class(): this runs after the event loop has ended,
    # where that call raises (and turned one error into two tracebacks).
    if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(error, trio.Cancelled)


def _first_real_error(error: BaseException) -> BaseException | None:
    for leaf in _leaves(error):
        if not _is_cancellation(leaf):
            return leaf
    return None


class OutOfTimeError(GatewayRequestError):
    """``--duration`` ran out while ``GET /gateway/bot`` was still being retried."""

    def __init__(self, duration: float) -> None:
        super().__init__(
            f"GET /gateway/bot did not succeed within --duration {duration:g} s "
            "(-v shows each failed attempt)"
        )


# -- fake -------------------------------------------------------------------------------------


def run_fake(options: ServeOptions) -> int:
    """Serve the fake gateway until ``--duration`` or Ctrl-C; return the exit status.

    The very command ``python -m gateway_testing`` runs (one parser, one server, one
    banner line: ``fake gateway listening: ws://...  (REST: http://..., token: ...)``,
    which scripts parse).
    """
    return serve_fake(options)


# -- listen: shared by both drivers ------------------------------------------------------


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


def run_listen(options: ListenOptions, display: Display) -> int:
    """Run ``listen`` with the chosen driver; return the exit status."""
    for warning in unknown_event_warnings(options.events):
        display.warning(warning)
    try:
        with _logging_to(display, verbose=options.verbose):
            if options.driver == "sync":
                return _listen_sync(options, display)
            return anyio.run(_listen_anyio, options, display, backend=options.backend)
    except KeyboardInterrupt:
        # Only reached where signal handlers could not be installed (or on a second
        # Ctrl-C during shutdown): still no traceback.
        display.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last resort: one line, never a traceback
        error = _first_real_error(exc) or exc
        if isinstance(error, BrokenPipeError):  # stdout or stderr went away: as cat does
            return EXIT_PIPE_CLOSED
        display.error(explain(error, options))
        return EXIT_FAILURE


# -- listen on anyio -----------------------------------------------------------------------


async def _listen_anyio(options: ListenOptions, display: Display) -> int:
    # --duration bounds the whole run, the REST lookup and its retries included.
    deadline = math.inf if options.duration is None else anyio.current_time() + options.duration
    async with contextlib.AsyncExitStack() as stack:
        if options.offline:
            # Imported here: only offline runs need the fake, and it pulls in a server.
            from gateway_testing import FakeGateway  # noqa: PLC0415

            fake = await stack.enter_async_context(FakeGateway(**_fake_kwargs(options)))
            token, api_base = OFFLINE_TOKEN, fake.api_base
        else:
            assert options.token is not None
            token, api_base = options.token, options.api_base or DEFAULT_API_BASE

        gateway = Gateway(token, api_base=api_base, user_agent=_user_agent(options))
        try:
            with anyio.CancelScope(deadline=deadline) as lookup:
                info = await gateway.fetch()
            if lookup.cancelled_caught:
                assert options.duration is not None
                raise OutOfTimeError(options.duration)
        except (GatewayRequestError, OSError) as exc:
            display.error(explain(exc, options))
            return EXIT_FAILURE
        ids, total = _plan(options, info)
        where = _where(options, info)
        return await _run_cluster(
            options, display, gateway, ids, total=total, where=where, deadline=deadline
        )
    raise AssertionError("unreachable")  # pragma: no cover - the stack swallows nothing


async def _run_cluster(
    options: ListenOptions,
    display: Display,
    gateway: Gateway,
    ids: list[int],
    *,
    total: int,
    where: str,
    deadline: float,
) -> int:
    listener = _Listener(display, ids, anyio.current_time)
    outcome = listener.outcome
    cluster = Cluster(
        gateway, intents=options.intents, encoding=options.encoding, compression=options.compression
    )
    run_scope = anyio.CancelScope(deadline=deadline)
    async with anyio.create_task_group() as tg:
        # Bound before any shard starts: an address that cannot serve leaves them untouched.
        address = options.status_address
        if address is not None and not await _serve_status(tg, cluster, address, display):
            return EXIT_FAILURE
        tg.start_soon(_watch_signals, run_scope, tg.cancel_scope, outcome)
        async with cluster:
            display.start(ids, anyio.current_time(), where=where)
            stream = cluster.events()  # before spawn, so no event is missed
            with run_scope:
                tg.start_soon(_tick, display, cluster, run_scope)
                # The total --shards named (4-7/16), whatever Discord recommends today.
                await cluster.spawn(ids, shard_count=total)
                async for event in stream:
                    listener.handle(event)
                    if listener.finished():
                        break
            if run_scope.cancelled_caught and options.duration is not None:
                outcome.stop(f"stopped after {options.duration:g} s")
            with anyio.move_on_after(SHUTDOWN_GRACE, shield=True):
                await cluster.aclose()  # close code 1000: the bot goes offline at once
        # Only now, with the cluster's own task group exited: the watcher and ticker.
        tg.cancel_scope.cancel()
    for shard_id, error in cluster.errors.items():
        outcome.errors.setdefault(shard_id, error)
    display.finish(anyio.current_time(), reason=outcome.reason or "stopped")
    return _summary(outcome, options, display)


#: The process name the status page shows for ``listen``.
_PAGE_NAME = "spectacles-gateway listen"


async def _serve_status(
    tg: anyio.abc.TaskGroup, cluster: Cluster, address: tuple[str, int], display: Display
) -> bool:
    """Serve the status page in ``tg`` and print its URL; ``False`` (said) if it cannot."""
    # Imported here: the [status] extra is optional (args checked it is installed).
    from gateway_status import StatusServerError, serve_status  # noqa: PLC0415

    host, port = address
    try:
        serve = functools.partial(serve_status, process=_PAGE_NAME)
        url = await tg.start(serve, cluster, host, port)
    except StatusServerError as exc:
        display.error(str(exc))
        return False
    display.info(f"status page: {url}")
    return True


async def _tick(display: Display, cluster: Cluster, scope: anyio.CancelScope) -> None:
    """Refresh latencies and print the periodic status while the run lasts."""
    while True:
        for shard_id, shard in list(cluster.shards.items()):
            display.latency(shard_id, shard.latency)
        display.tick(anyio.current_time())
        await anyio.sleep(_TICK)


async def _watch_signals(
    run_scope: anyio.CancelScope, everything: anyio.CancelScope, outcome: _Outcome
) -> None:
    """Turn Ctrl-C (and SIGTERM) into a clean shutdown: close every shard with 1000.

    A second Ctrl-C gives up on the closing handshakes (still without a traceback).
    """
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if run_scope.cancel_called and outcome.status == EXIT_INTERRUPTED:
                    everything.cancel()
                    return
                outcome.stop(
                    "interrupted" if signum == signal.SIGINT else "terminated", EXIT_INTERRUPTED
                )
                run_scope.cancel()
    except (NotImplementedError, ValueError, RuntimeError):
        # No signal handlers here (Windows' asyncio, or not the main thread): Ctrl-C
        # then arrives as KeyboardInterrupt, which run_listen reports cleanly.
        await anyio.sleep_forever()


# -- listen on the sync driver ---------------------------------------------------------------


def _listen_sync(options: ListenOptions, display: Display) -> int:
    # Imported here: the anyio CLI must not pay for the threaded driver unless asked.
    import gateway_sync  # noqa: PLC0415

    # --duration bounds the whole run, the REST lookup and its retries included.
    start = time.monotonic()
    deadline = None if options.duration is None else start + options.duration
    with contextlib.ExitStack() as stack:
        if options.offline:
            # The fake is an anyio server: run it on an event loop in a thread of its own,
            # so this thread can block the way a sync bot does.
            from gateway_testing import FakeGateway  # noqa: PLC0415

            portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
            fake = stack.enter_context(
                portal.wrap_async_context_manager(FakeGateway(**_fake_kwargs(options)))
            )
            token, api_base = OFFLINE_TOKEN, fake.api_base
        else:
            assert options.token is not None
            token, api_base = options.token, options.api_base or gateway_sync.DEFAULT_API_BASE
        gateway = gateway_sync.Gateway(
            token, api_base=api_base, user_agent=_user_agent(options), **_bounded(options, deadline)
        )
        try:
            info = gateway.fetch()
        except (GatewayRequestError, OSError) as exc:
            display.error(explain(exc, options))
            return EXIT_FAILURE
        ids, total = _plan(options, info)
        where = _where(options, info)

        listener = _Listener(display, ids, time.monotonic)
        outcome = listener.outcome
        cluster = gateway_sync.Cluster(
            gateway,
            intents=options.intents,
            encoding=options.encoding,
            compression=options.compression,
        )
        if options.status_address is not None:
            # Started before any shard, and stopped after every shard closed.
            status = _status_thread(cluster, options.status_address, display)
            if status is None:
                return EXIT_FAILURE
            stack.enter_context(status)
        try:
            with _sigterm_raises(), cluster:
                stream = cluster.events()  # before spawn, so no event is missed
                display.start(ids, time.monotonic(), where=where)
                cluster.spawn(ids, shard_count=total)
                while True:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        outcome.stop(f"stopped after {options.duration:g} s")
                        break
                    wait = _TICK if deadline is None else min(_TICK, deadline - now)
                    event = stream.get(timeout=wait)
                    if event is not None:
                        listener.handle(event)
                        if listener.finished():
                            break
                    for shard_id, shard in list(cluster.shards.items()):
                        display.latency(shard_id, shard.latency)
                    display.tick(time.monotonic())
                # Leaving the `with` closes every shard with 1000 and joins its threads.
        except KeyboardInterrupt:
            outcome.stop("interrupted", EXIT_INTERRUPTED)
            cluster.close()
        except _Terminated:
            outcome.stop("terminated", EXIT_INTERRUPTED)
            cluster.close()
        except OutOfTimeError:  # spawn's own GET /gateway/bot, retried past --duration
            assert options.duration is not None
            outcome.stop(f"stopped after {options.duration:g} s")
        for shard_id, error in cluster.errors.items():
            outcome.errors.setdefault(shard_id, error)
        display.finish(time.monotonic(), reason=outcome.reason or "stopped")
        return _summary(outcome, options, display)
    raise AssertionError("unreachable")  # pragma: no cover - the stack swallows nothing


def _status_thread(
    cluster: gateway_sync.Cluster, address: tuple[str, int], display: Display
) -> contextlib.AbstractContextManager[object] | None:
    """Start the status page's thread and print its URL; ``None`` (said) if it cannot."""
    from gateway_status import StatusServerError, start_status_thread  # noqa: PLC0415

    try:
        status = start_status_thread(cluster, *address, process=_PAGE_NAME)
    except StatusServerError as exc:
        display.error(str(exc))
        return None
    display.info(f"status page: {status.url}")
    return status


def _where(options: ListenOptions, info: GatewayInfo) -> str:
    """Name the gateway URL the shards connect to, and where it came from."""
    if options.offline:
        return f"{info.url} (the embedded fake gateway, offline)"
    if options.api_base is None:
        return f"{info.url} (Discord)"
    return f"{info.url} (from {options.api_base})"


def _bounded(options: ListenOptions, deadline: float | None) -> dict[str, Any]:
    """Return the sync Gateway's request timeout and retry sleep, bounded by ``--duration``.

    A retry that would sleep past the deadline raises :class:`OutOfTimeError`
    instead (in whichever thread asked: the run is over by then anyway).
    """
    if deadline is None:
        return {}
    duration = options.duration
    assert duration is not None

    def sleep(seconds: float) -> None:
        if time.monotonic() + seconds >= deadline:
            raise OutOfTimeError(duration)
        time.sleep(seconds)

    return {"timeout": min(10.0, duration), "sleep": sleep}


class _Terminated(Exception):
    """SIGTERM arrived while the sync driver ran (raised in the main thread)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` (main thread only), so it closes cleanly."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
