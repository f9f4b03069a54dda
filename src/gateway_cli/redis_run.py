"""``spectacles-gateway run``: one gateway process of many, its shards leased through Redis.

It runs a :class:`gateway_redis.process.GatewayProcess` (leases with fencing, saved
sessions, takeover of a dead process's shards) and shows what ``listen`` shows: the
events on stdout (``--jsonl`` for JSON lines) and the status line on stderr. Ctrl-C
or SIGTERM stops it cleanly: every shard closes with 4000 (resumable), the sessions
are saved and the leases released, so the next process RESUMEs them. A second
signal gives up waiting.

The events printed are also the process's checkpoint: a saved session never goes
past the last event printed, so a successor (after a crash too) resumes before any
event this process did not get out.

Exit statuses: 0 after SIGTERM (a deploy's stop), 130 after Ctrl-C, 1 when the
process failed (Redis URL unusable, ``GET /gateway/bot`` refused), 2 for bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

from gateway_proto.driver_support import API_BASE_ENV

from .values import (
    OFFLINE_TOKEN,
    _wrap,
    add_status_argument,
    parse_event_names,
    parse_intents,
    parse_user_agent,
    require_redis,
    status_settings,
)

if TYPE_CHECKING:
    from gateway_proto.session import Session
    from gateway_redis.process import GatewayProcess

    from .display import Display

__all__ = ["RunOptions", "add_run_parser", "run_gateway", "run_options"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
#: How often the status display is refreshed.
_TICK = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Validated settings of ``run``.

    Attributes:
        redis: the Redis URL.
        token: the bot token (never written to Redis: keys use a hash of it).
        api_base: the REST base for ``GET /gateway/bot`` (``None``: Discord's).
        shards: a fixed range ``A-B/TOTAL``, or ``None`` with ``count``.
        count: run any ``count`` shards of ``shard_count``.
        shard_count: the total, with ``count`` (``None``: Discord's recommendation).
        intents: the intents bitfield.
        encoding: payload encoding.
        compress: transport compression (``"none"`` for none).
        events: dispatch names to show (``None``: all).
        jsonl: print one JSON object per line on stdout.
        status: ``"auto"``, ``"on"`` or ``"off"``.
        status_interval: seconds between status lines.
        status_address: ``(host, port)`` of the status page: the whole fleet's
            shards, read from Redis (``None``: none).
        verbose: log the library's INFO records to stderr.
        user_agent: the ``User-Agent`` (``None``: the library's).
        lease_ttl: seconds a lease lives without renewal.
        save_interval: seconds between session saves.
        namespace: the first part of every Redis key.
        layout: the stream layout dispatches are published in (workers must match).
        events_per_entry: dispatches packed in one stream entry, at most.

    """

    redis: str
    token: str
    api_base: str | None
    shards: str | None
    count: int | None
    shard_count: int | None
    intents: int
    encoding: Literal["json", "etf"] = "json"
    compress: Literal["zlib-stream", "zstd-stream", "none"] = "zlib-stream"
    events: frozenset[str] | None = None
    jsonl: bool = False
    status: Literal["auto", "on", "off"] = "auto"
    status_interval: float = 5.0
    status_address: tuple[str, int] | None = None
    verbose: bool = False
    user_agent: str | None = None
    lease_ttl: float = 15.0
    save_interval: float = 1.0
    namespace: str = "spectacles"
    layout: Literal["single", "per-event"] = "single"
    events_per_entry: int = 1

    def __repr__(self) -> str:
        # The token never appears in a repr.
        which = self.shards or f"{self.count} of {self.shard_count or 'auto'}"
        return f"RunOptions(redis={self.redis!r}, shards={which!r})"


def add_run_parser(sub: Any) -> None:
    """Add the ``run`` subcommand to the ``spectacles-gateway`` parser."""
    from gateway_testing._cli import count, positive_float  # noqa: PLC0415

    run = sub.add_parser(
        "run",
        help="run a gateway process that takes shard leases in Redis (shards across processes)",
        description="Run shards as one gateway process among many: Redis leases decide which "
        "process runs which shard, a dead process's shards are taken over by one with room, "
        "and sessions saved in Redis let the next process RESUME instead of identifying. "
        "Ctrl-C or SIGTERM stops cleanly and leaves the sessions resumable.",
    )
    conn = run.add_argument_group("connection")
    conn.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db")
    conn.add_argument(
        "--token",
        help="bot token (default: $DISCORD_TOKEN; with --api-base and neither, the token "
        f"of `spectacles-gateway fake`, {OFFLINE_TOKEN!r})",
    )
    conn.add_argument(
        "--api-base",
        metavar="URL",
        help="REST base that serves GET /gateway/bot (default: Discord's); point it at a "
        "running `spectacles-gateway fake` (e.g. http://127.0.0.1:8765/api/v10)",
    )
    conn.add_argument(
        "--user-agent", type=_wrap(parse_user_agent), default=None, metavar="TEXT",
        help="User-Agent for REST and the WebSocket upgrade",
    )  # fmt: skip
    which = conn.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--shards",
        metavar="A-B/TOTAL",
        help="run exactly these shard ids (each as soon as its lease is free), e.g. 0-63/256",
    )
    which.add_argument(
        "--count",
        type=count,
        metavar="M",
        help="run any M shards of --shard-count, whichever are free (taking over a dead "
        "process's shards while it has room)",
    )
    conn.add_argument(
        "--shard-count",
        type=count,
        metavar="N",
        help="with --count: the total shard count, the same in every process "
        "(default: Discord's recommendation when the process starts)",
    )
    conn.add_argument("--intents", type=_wrap(parse_intents), default=None, help="see `listen`")
    conn.add_argument("--encoding", choices=["json", "etf"], default="json", help="default: json")
    conn.add_argument(
        "--compress", choices=["zlib-stream", "zstd-stream", "none"], default="zlib-stream",
        help="transport compression (default: zlib-stream)",
    )  # fmt: skip
    leases = run.add_argument_group("leases and sessions")
    leases.add_argument(
        "--lease-ttl", type=positive_float, default=15.0, metavar="SECONDS",
        help="seconds a lease lives without renewal; renewed every third of it, and a "
        "shard whose lease could not be renewed stops a fifth of it before expiry "
        "(default: 15)",
    )  # fmt: skip
    leases.add_argument(
        "--save-interval", type=positive_float, default=1.0, metavar="SECONDS",
        help="seconds between session saves: what a crashed process's successor replays "
        "(default: 1)",
    )  # fmt: skip
    leases.add_argument(
        "--namespace", default="spectacles", help="key namespace (default: spectacles)"
    )
    leases.add_argument(
        "--layout", choices=["single", "per-event"], default="single",
        help="publish every dispatch to one stream, or one stream per event name "
        "(workers must use the same; default: single)",
    )  # fmt: skip
    leases.add_argument(
        "--events-per-entry", type=count, default=1, metavar="N",
        help="pack up to N dispatches in one stream entry: Redis and workers do less per "
        "event, and the streams' length counts entries (this package's workers read "
        "both; default: 1)",
    )  # fmt: skip
    out = run.add_argument_group("output")
    out.add_argument(
        "--events", type=_wrap(parse_event_names), default=None, metavar="NAME,...",
        help="only show these dispatches",
    )  # fmt: skip
    out.add_argument("--jsonl", action="store_true", help="one JSON object per event on stdout")
    add_status_argument(out)
    out.add_argument(
        "--status-interval", type=positive_float, default=5.0, metavar="SECONDS",
        help="seconds between status lines (default: 5)",
    )  # fmt: skip
    out.add_argument("-v", "--verbose", action="store_true", help="log what the library does")


def run_options(
    parser: argparse.ArgumentParser, ns: argparse.Namespace, env: Mapping[str, str]
) -> RunOptions:
    """Validate the parsed ``run`` arguments (bad input: one line, exit status 2)."""
    from gateway_proto.intents import Intents  # noqa: PLC0415

    require_redis(parser, "run", ns.redis)
    if ns.token is not None and not ns.token.strip():
        parser.error("--token is empty")
    # As the library does: --api-base, else DISCORD_API_BASE, else Discord's.
    api_base = ns.api_base or env.get(API_BASE_ENV) or None
    token = ns.token or env.get("DISCORD_TOKEN") or (OFFLINE_TOKEN if api_base else None)
    if token is None:
        parser.error("run needs a token: --token or DISCORD_TOKEN (or --api-base of a fake)")
    if api_base is not None and not api_base.startswith(("http://", "https://")):
        parser.error(f"--api-base must be an http:// or https:// URL, got {api_base!r}")
    if ns.shards is not None:
        if ns.shard_count is not None:
            parser.error("--shard-count goes with --count; --shards names its own TOTAL")
        from gateway_redis.leases import ShardRequest  # noqa: PLC0415

        try:
            ShardRequest.parse(ns.shards)
        except ValueError as exc:
            parser.error(f"--shards: {exc}")
    if ns.compress == "zstd-stream" and importlib.util.find_spec("zstandard") is None:
        parser.error(
            "--compress zstd-stream needs 'zstandard': pip install 'spectacles-gateway[zstd]'"
        )
    if ns.encoding == "etf" and importlib.util.find_spec("erlpack") is None:
        parser.error("--encoding etf needs 'erlpack': pip install 'spectacles-gateway[etf]'")
    try:
        from gateway_redis.leases import LeaseTiming  # noqa: PLC0415

        LeaseTiming(ttl=ns.lease_ttl)
    except ValueError as exc:
        parser.error(f"--lease-ttl: {exc}")
    status, status_address = status_settings(parser, ns.status)
    return RunOptions(
        redis=ns.redis,
        token=token.strip().removeprefix("Bot "),
        api_base=api_base,
        shards=ns.shards,
        count=ns.count,
        shard_count=ns.shard_count,
        intents=int(ns.intents if ns.intents is not None else Intents.default()),
        encoding=ns.encoding,
        compress=ns.compress,
        events=ns.events,
        jsonl=ns.jsonl,
        status=status,
        status_interval=ns.status_interval,
        status_address=status_address,
        verbose=ns.verbose,
        user_agent=ns.user_agent,
        lease_ttl=ns.lease_ttl,
        save_interval=ns.save_interval,
        namespace=ns.namespace,
        layout=ns.layout,
        events_per_entry=ns.events_per_entry,
    )


def run_gateway(options: RunOptions) -> int:
    """Run the gateway process until Ctrl-C or SIGTERM; return the exit status."""
    from .display import Display  # noqa: PLC0415
    from .explain import _first_real_error, explain  # noqa: PLC0415 - only when it runs
    from .listen import _logging_to  # noqa: PLC0415 - only when it runs

    display = Display.for_options(options)
    try:
        with _logging_to(display, verbose=options.verbose):
            # redis.asyncio needs asyncio: this command has no --backend.
            return anyio.run(_run, options, display, backend="asyncio")
    except KeyboardInterrupt:  # where no signal handler could be installed
        display.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last resort: one line, never a traceback
        display.error(explain(_first_real_error(exc) or exc))
        return EXIT_FAILURE


class _Printed:
    """The last event printed per shard: the process's checkpoint (see the module doc)."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[str, int]] = {}

    def checkpoint(self, shard_id: int, session: Session) -> int | None:
        last = self.last.get(shard_id)
        if last is None or last[0] != session.session_id:
            return None
        return last[1]


async def _run(options: RunOptions, display: Display) -> int:
    from gateway_anyio import DEFAULT_API_BASE, Cluster, Gateway  # noqa: PLC0415
    from gateway_proto.config import DEFAULT_USER_AGENT  # noqa: PLC0415
    from gateway_redis import Keys  # noqa: PLC0415
    from gateway_redis.commands import CommandApplier  # noqa: PLC0415
    from gateway_redis.process import GatewayProcess  # noqa: PLC0415
    from gateway_redis.streams import EventPublisher  # noqa: PLC0415

    from .listen import _Listener  # noqa: PLC0415 - only when it runs

    gateway = Gateway(
        options.token,
        api_base=options.api_base or DEFAULT_API_BASE,
        user_agent=options.user_agent or DEFAULT_USER_AGENT,
    )
    printed = _Printed()
    listener = _Listener(display, [], anyio.current_time)

    async def show(cluster: Cluster) -> None:
        async with cluster.events(until_closed=True) as stream:  # shards come and go
            async for event in stream:
                listener.handle(event)
                if display.out_closed:  # the reader went away (| head): end as cat does
                    process.stop()
                    return
                shard = event.shard
                if event.sequence is not None and shard is not None:
                    session = shard.session
                    if session is not None:
                        printed.last[event.shard_id] = (session.session_id, event.sequence)

    keys = Keys.for_token(options.token, options.namespace)
    publisher = EventPublisher(
        options.redis, keys, layout=options.layout, events_per_entry=options.events_per_entry
    )
    applier = CommandApplier(options.redis, keys, owned=lambda: process.owned)

    def checkpoint(shard_id: int, session: Session) -> int | None:
        # Never save a sequence beyond what both reached Redis and was printed.
        marks = [printed.checkpoint(shard_id, session), publisher.checkpoint(shard_id, session)]
        return None if None in marks else min(m for m in marks if m is not None)

    process = GatewayProcess(
        gateway,
        options.redis,
        intents=options.intents,
        shards=options.shards,
        count=options.count,
        shard_count=options.shard_count,
        lease_ttl=options.lease_ttl,
        save_interval=options.save_interval,
        services=[show, publisher.service, applier.service],
        checkpoint=checkpoint,
        namespace=options.namespace,
        encoding=options.encoding,
        compression=options.compress,
        keep_raw=True,  # JSON dispatches are published as received, not encoded again
    )
    stopped_by: list[int] = []
    async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
        # Bound before any lease is taken: an address that cannot serve leaves
        # the fleet untouched.
        address = options.status_address
        if address is not None and not await _serve_fleet(
            tg, stack, process, redis_url=options.redis, address=address, display=display
        ):
            await publisher.aclose()
            await applier.aclose()
            return EXIT_FAILURE
        # The first line names the gateway URL the shards connect to, as listen's does
        # (the shards ask for it again: GET /gateway/bot is cheap, and says it first).
        url = (await gateway.fetch()).url
        source = "Discord" if options.api_base is None else f"from {options.api_base}"
        which = options.shards or f"any {options.count} of {options.shard_count or 'auto'}"
        display.start(
            [], anyio.current_time(), where=f"{url} ({source}): shards {which}, leases in Redis"
        )
        tg.start_soon(_watch_signals, process, tg.cancel_scope, stopped_by)
        tg.start_soon(_tick, display, process)
        try:
            await process.run()
        finally:
            with anyio.CancelScope(shield=True):
                await publisher.aclose()
                await applier.aclose()
        tg.cancel_scope.cancel()
    display.finish(anyio.current_time(), reason="stopped; sessions saved, leases released")
    if stopped_by and stopped_by[0] == signal.SIGINT:
        return EXIT_INTERRUPTED
    if display.out_closed:
        from .listen import EXIT_PIPE_CLOSED  # noqa: PLC0415 - only when it runs

        return EXIT_PIPE_CLOSED
    return EXIT_OK


async def _serve_fleet(
    tg: anyio.abc.TaskGroup,
    stack: contextlib.AsyncExitStack,
    process: GatewayProcess,
    *,
    redis_url: str,
    address: tuple[str, int],
    display: Display,
) -> bool:
    """Serve the fleet's status page in ``tg`` and print its URL; ``False`` (said) if it cannot.

    The page shows every process's shards, read from Redis (a client of its own,
    closed with ``stack``), and the live state of this process's own.
    """
    from gateway_redis.process import connect_redis  # noqa: PLC0415
    from gateway_status import StatusApp, StatusServerError, serve_app  # noqa: PLC0415
    from gateway_status.fleet import FleetReader, process_source  # noqa: PLC0415

    def shard_count() -> int | None:
        request = process.request
        return None if request is None else request.shard_count

    redis = connect_redis(redis_url)
    stack.push_async_callback(redis.aclose)
    source = process_source(process)
    fleet = FleetReader(
        redis, process.keys, shard_count=shard_count, owner=process.owner, local=source
    )
    app = StatusApp(source, process=process.owner, fleet=fleet)
    try:
        url = await tg.start(serve_app, app, *address)
    except StatusServerError as exc:
        display.error(str(exc))
        return False
    display.info(f"status page: {url}")
    return True


async def _tick(display: Display, process: GatewayProcess) -> None:
    """Keep the status board to the shards this process holds, and print the status."""
    while True:
        cluster = process.cluster
        owned = process.owned
        board = display.board.shards
        for shard_id in [i for i in board if i not in owned]:
            del board[shard_id]  # given up (fenced, or released): no longer ours to show
        for shard_id in owned:
            view = display.board.view(shard_id)
            shard = None if cluster is None else cluster.shards.get(shard_id)
            view.latency = None if shard is None else shard.latency
        display.tick(anyio.current_time())
        await anyio.sleep(_TICK)


async def _watch_signals(
    process: GatewayProcess, everything: anyio.CancelScope, stopped_by: list[int]
) -> None:
    """Stop the process cleanly on the first Ctrl-C or SIGTERM; cancel the run on a second.

    Even cancelled, the process closes its shards with 4000 and saves what it can
    (bounded by its timeouts): only SIGKILL leaves the sessions to the last save.
    """
    with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if stopped_by:
                    everything.cancel()
                    return
                stopped_by.append(signum)
                process.stop()
        return
    # No signal handlers here (not the main thread): Ctrl-C arrives as KeyboardInterrupt.
    await anyio.sleep_forever()
