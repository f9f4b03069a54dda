"""``spectacles-gateway worker``: print what a Redis Streams worker receives, as JSON lines.

Also a template for your own worker: everything it does is build a
:class:`gateway_redis.worker.Worker`, give it a handler, and stop it on Ctrl-C or
SIGTERM (the batch in hand is acknowledged first; an event not acknowledged is
handed to another worker of the group later).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .values import OFFLINE_TOKEN, _wrap, parse_event_names, require_redis

__all__ = ["WorkerOptions", "add_worker_parser", "run_worker", "worker_options"]

EXIT_OK = 0
EXIT_INTERRUPTED = 130


class _ReaderGone(Exception):
    """Stdout's reader went away (``| head``): the event is left pending, quietly."""


def _not_reader_gone(record: logging.LogRecord) -> bool:
    # The Worker logs a failed handler with its traceback; this failure is the
    # normal end of a piped run (as for cat), not an error to show.
    return not (record.exc_info and isinstance(record.exc_info[1], _ReaderGone))


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """Validated settings of ``worker``.

    Attributes:
        redis: the Redis URL.
        token: the bot token, only hashed into the key names (never sent to Redis).
        namespace: the first part of every key.
        events: dispatch names to print (``None``: all; the single layout only).
        layout: the publisher's stream layout.
        group: the consumer group.
        consumer: this worker's name in the group (``None``: host-pid).

    """

    redis: str
    token: str
    namespace: str
    events: frozenset[str] | None
    layout: str
    group: str
    consumer: str | None

    def __repr__(self) -> str:
        # The token never appears in a repr.
        return f"WorkerOptions(redis={self.redis!r}, group={self.group!r}, events={self.events})"


def add_worker_parser(sub: Any) -> None:
    """Add the ``worker`` subcommand to the ``spectacles-gateway`` parser."""
    worker = sub.add_parser(
        "worker",
        help="read the events gateway processes publish to Redis, print them as JSON lines",
        description="Join a consumer group on the event streams gateway processes publish "
        "to Redis, and print each event as a JSON line: "
        '{"shard": 0, "session": "...", "seq": 5, "event": "MESSAGE_CREATE", "data": {...}}. '
        "Each event is acknowledged once printed; Ctrl-C or SIGTERM stops cleanly.",
    )
    worker.add_argument("--redis", required=True, metavar="URL", help="redis://host:port/db")
    worker.add_argument(
        "--events",
        type=_wrap(parse_event_names),
        default=None,
        metavar="NAME,...",
        help="only these dispatches (required with --layout per-event; default: all)",
    )
    worker.add_argument(
        "--group", default="workers", help="consumer group: workers of one group share "
        "the events, each group gets all of them (default: workers)",
    )  # fmt: skip
    worker.add_argument(
        "--consumer", default=None, help="this worker's name in the group (default: host-pid)"
    )
    worker.add_argument(
        "--layout",
        choices=["single", "per-event"],
        default="single",
        help="the gateways' stream layout (default: single)",
    )
    worker.add_argument(
        "--token",
        default=None,
        help="the bot token, to find its keys (default: $DISCORD_TOKEN, else the offline "
        f"demo's {OFFLINE_TOKEN!r}); it is hashed, never sent",
    )
    worker.add_argument(
        "--namespace", default="spectacles", help="key namespace (default: spectacles)"
    )


def worker_options(
    parser: argparse.ArgumentParser, ns: argparse.Namespace, env: Mapping[str, str]
) -> WorkerOptions:
    """Validate the parsed ``worker`` arguments."""
    require_redis(parser, "worker", ns.redis)
    if ns.layout == "per-event" and not ns.events:
        parser.error("--layout per-event needs --events (its streams are per event name)")
    token = (ns.token or env.get("DISCORD_TOKEN") or OFFLINE_TOKEN).strip().removeprefix("Bot ")
    return WorkerOptions(
        redis=ns.redis,
        token=token,
        namespace=ns.namespace,
        events=frozenset(ns.events) if ns.events else None,
        layout=ns.layout,
        group=ns.group,
        consumer=ns.consumer,
    )


def run_worker(options: WorkerOptions) -> int:
    """Run the worker until Ctrl-C or SIGTERM; return the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return anyio.run(_work, options, backend="asyncio")
    except KeyboardInterrupt:  # where no signal handler could be installed
        return EXIT_INTERRUPTED


async def _work(options: WorkerOptions) -> int:
    # The redis extra is optional: imported only when the command runs.
    from gateway_redis._codec import DUMPS  # noqa: PLC0415
    from gateway_redis._keys import Keys  # noqa: PLC0415
    from gateway_redis.worker import StreamEvent, Worker  # noqa: PLC0415

    worker = Worker(
        options.redis,
        Keys.for_token(options.token, options.namespace),
        group=options.group,
        consumer=options.consumer,
        events=options.events,
        layout="per-event" if options.layout == "per-event" else "single",
    )
    out = sys.stdout
    reader_gone = False

    def show(event: StreamEvent) -> None:
        nonlocal reader_gone
        if reader_gone:
            raise _ReaderGone  # not printed: not acknowledged (another worker gets it)
        line = {
            "shard": event.shard_id,
            "session": event.session_id,
            "seq": event.sequence,
            "event": event.name,
            "data": event.data,
        }
        try:
            out.write(DUMPS(line).decode() + "\n")
            out.flush()  # one line at a time, for pipes (| jq)
        except BrokenPipeError:  # the reader went away (| head): end as cat does
            reader_gone = True
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the exit flush
            worker.stop()  # after the batch in hand (what was printed is acknowledged)
            raise _ReaderGone from None

    status = EXIT_OK
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            nonlocal status
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    status = EXIT_INTERRUPTED
                    worker.stop()  # returns after acknowledging the batch in hand
                    return

        tg.start_soon(stop_on_signal)
        worker_log = logging.getLogger("gateway_redis.worker")
        worker_log.addFilter(_not_reader_gone)
        try:
            await worker.run(show)
        finally:
            worker_log.removeFilter(_not_reader_gone)
            tg.cancel_scope.cancel()
            await worker.aclose()
    if reader_gone:
        from .listen import EXIT_PIPE_CLOSED  # noqa: PLC0415 - only now: listen is heavier

        return EXIT_PIPE_CLOSED
    return status
