"""``listen`` on the sync driver: the calling thread blocks on the cluster's event stream.

The fake gateway (offline) runs on an event loop in a thread of its own, so this
thread can block the way a sync bot does; ``--duration`` bounds the REST lookup's
retries too (:func:`_bounded`), and SIGTERM closes as cleanly as Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio

from gateway_proto.driver_support import GatewayRequestError

from .display import Display
from .explain import OutOfTimeError, explain
from .listen import (
    _PAGE_NAME,
    _TICK,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    _fake_kwargs,
    _Listener,
    _plan,
    _summary,
    _user_agent,
    _where,
)
from .options import ListenOptions
from .values import OFFLINE_TOKEN

if TYPE_CHECKING:
    import gateway_sync


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
