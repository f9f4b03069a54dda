"""``listen`` on the anyio driver: the fake (offline), the REST lookup, the cluster's run.

One task group holds the status page (if asked for), the signal watcher and the
status ticker; the cluster's events go through the shared :class:`_Listener`
(``listen.py``) until ``--duration``, Ctrl-C or SIGTERM, or the end of every shard.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal

import anyio
import anyio.abc

from gateway_anyio import DEFAULT_API_BASE, Cluster, Gateway
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
    _Outcome,
    _plan,
    _summary,
    _user_agent,
    _where,
)
from .options import ListenOptions
from .values import OFFLINE_TOKEN

#: Seconds the shutdown (closing handshakes, task teardown) may take before giving up.
SHUTDOWN_GRACE = 10.0


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
