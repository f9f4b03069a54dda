"""Workers: read the dispatches gateways publish, through Redis consumer groups.

Theory of operation: a :class:`Worker` is one consumer of one consumer group on
the event stream(s). Redis hands each entry to one consumer of the group and keeps
it *pending* until that consumer acknowledges it (``XACK``); the worker acks a
batch after its handler returned for every event in it. So delivery is
**at-least-once**:

* a worker that crashes leaves its batch pending; after ``min_idle`` seconds
  another worker of the group takes it over (``XAUTOCLAIM``, run every
  ``claim_interval``) and handles it again;
* a handler that raises leaves its event pending, to be retried the same way;
* a gateway whose reply from Redis was lost sends its batch again.

Every event names its shard, session and sequence; a :class:`Deduplicator` drops
those already handled. The next batch is read while one is handled, and replies
are parsed by :mod:`gateway_redis._resp` (the client library's parser costs
several times a handler's work per event). An idle worker waits in a blocking
``XREADGROUP`` of ``block`` seconds.

asyncio only (``redis.asyncio``; run it with ``asyncio.run`` or anyio's asyncio backend).
"""

from __future__ import annotations

import inspect
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio as aioredis
from anyio.streams.memory import MemoryObjectSendStream
from redis.exceptions import ResponseError

from gateway_proto.backoff import Backoff
from gateway_proto.commands import Command

from ._codec import LOADS, connect, default_consumer_name
from ._entry import PACKED, PackedEvent, event_fields, unpack_events, unpack_meta

try:
    from gateway_proto._speedups import SlotMaker
except ImportError:  # not compiled: StreamEvents are built in Python then
    SlotMaker = None  # type: ignore[assignment,misc]
from ._keys import Keys
from ._resp import EventEntry, RawConnection, pack, pack_ids
from .commands import send_command
from .streams import Layout

__all__ = [
    "DEFAULT_DEDUPE_SIZE",
    "Deduplicator",
    "StreamEvent",
    "Worker",
    "default_consumer_name",
    "unpack_meta",
]

_log = logging.getLogger("gateway_redis.worker")

#: Events a :class:`Deduplicator` remembers by default.
DEFAULT_DEDUPE_SIZE = 100_000

# A read's entries as they came, per stream (see _resp.EventEntry); decoded by
# Worker._handle. Streams with no entry are left out.
_Batch = list[tuple[str, list[EventEntry]]]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One dispatch as a worker receives it.

    Attributes:
        name: the dispatch name (``"MESSAGE_CREATE"``).
        shard_id: the shard that received it.
        session_id: the gateway session it came on (``None`` if unknown).
        sequence: its sequence number in that session (``None`` if it had none).
        data: the dispatch's ``d``, decoded.
        stream: the stream it was read from.
        id: its entry id in that stream.

    """

    name: str
    shard_id: int
    session_id: str | None
    sequence: int | None
    data: Any
    stream: str
    id: str


class Deduplicator:
    """Remembers the last ``max_size`` events handled, by (shard, session, sequence).

    Memory is bounded: about 200 bytes per remembered event (100,000 by default,
    so ~20 MB). A duplicate older than that window passes; duplicates come from a
    claimed batch or a retried publish, so they are recent. Events without a
    sequence are never taken for duplicates.
    """

    def __init__(self, max_size: int = DEFAULT_DEDUPE_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._seen: set[tuple[int, str | None, int]] = set()
        self._order: deque[tuple[int, str | None, int]] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, event: StreamEvent) -> bool:
        """Whether ``event`` was handled already (remembered by :meth:`add`)."""
        if event.sequence is None:
            return False
        return (event.shard_id, event.session_id, event.sequence) in self._seen

    def add(self, event: StreamEvent) -> None:
        """Remember ``event`` as handled (forgetting the oldest past ``max_size``)."""
        if event.sequence is None:
            return
        key = (event.shard_id, event.session_id, event.sequence)
        if key in self._seen:
            return
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.max_size:
            self._seen.discard(self._order.popleft())


# A StreamEvent (a frozen slotted dataclass) is built through its slot descriptors,
# as the drivers build a GatewayEvent: the generated __init__ calls
# object.__setattr__ per field (about 0.9 µs); the descriptors one by one from
# Python cost about 0.4 µs, the C SlotMaker of gateway_proto._speedups about 0.1.
# Same object.
_FIELDS = ("name", "shard_id", "session_id", "sequence", "data", "stream", "id")


def _python_event_maker() -> Callable[..., StreamEvent]:
    new = object.__new__
    setters = [vars(StreamEvent)[name].__set__ for name in _FIELDS]

    def make(*values: Any) -> StreamEvent:
        event: StreamEvent = new(StreamEvent)
        for set_value, value in zip(setters, values, strict=True):
            set_value(event, value)
        return event

    return make


_make_event: Callable[..., StreamEvent] = (
    _python_event_maker() if SlotMaker is None else SlotMaker(StreamEvent, _FIELDS)
)


#: Origins (what follows the sequence in a meta field) kept decoded; few per shard.
_ORIGIN_CACHE = 4096
_origins: dict[bytes, tuple[str, int, str | None]] = {}


def _origin(seq: bytes | None, origin: bytes | None) -> tuple[str, int, str | None]:
    """Decode (and cache) a meta field's origin: name, shard, session; ``ValueError`` if bad.

    The reader checked the sequence already (digits or nothing); an origin is the
    same for every event of a name on a session, so it is decoded once.
    """
    if origin is None:
        raise ValueError("no meta field" if seq is None else "malformed meta field")
    name, shard_id, session_id, _ = unpack_meta(b" " + origin)
    if len(_origins) >= _ORIGIN_CACHE:
        _origins.clear()
    _origins[origin] = known = (name, shard_id, session_id)
    return known


#: A worker's handler: a coroutine function or a plain function taking the event.
Handler = Callable[[StreamEvent], Awaitable[object] | object]


class Worker:
    """One consumer of a consumer group on the event streams (at-least-once).

    Args:
        redis: a ``redis://`` URL, or a ``redis.asyncio.Redis`` (bytes replies).
        keys: the bot's key names (``Keys.for_token(token)``).
        group: the consumer group; workers of one group share the events, each
            group gets every event.
        consumer: this worker's name in the group (default: ``host-pid``). A
            worker restarted under the same name first re-reads its own pending
            events.
        events: dispatch names to handle (default: all; required for the
            ``per-event`` layout, whose streams are per name). With the
            ``single`` layout the others are read and acknowledged unhandled.
        layout: the publisher's layout (``"single"`` or ``"per-event"``).
        start: where a new group starts: ``"$"`` (events published from now on;
            the default) or ``"0"`` (everything the stream still holds).
        count: events per read, about: entries packing several events (the
            publisher's ``events_per_entry``) are read by the number of events
            the last batch's entries held on average.
        block: seconds an idle worker waits in one blocking read.
        min_idle: seconds an event stays pending before another worker may take
            it over (make it longer than your slowest batch takes to handle).
        claim_interval: seconds between take-over checks (default: ``min_idle / 2``).
        dedupe: a :class:`Deduplicator`, or ``None`` to hand duplicates on.

    Attributes:
        handled: events the handler returned from.
        duplicates: events dropped as already handled.
        malformed: entries that could not be decoded (logged and acknowledged).
        failed: handler calls that raised (the event stays pending).
        claimed: events taken over from other consumers (or retried).

    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        keys: Keys,
        *,
        group: str = "workers",
        consumer: str | None = None,
        events: Iterable[str] | None = None,
        layout: Layout = "single",
        start: str = "$",
        count: int = 100,
        block: float = 2.0,
        min_idle: float = 30.0,
        claim_interval: float | None = None,
        dedupe: Deduplicator | None = None,
    ) -> None:
        names = None if events is None else frozenset(events)
        if layout == "per-event":
            if not names:
                raise ValueError("the per-event layout needs the event names to read")
            self.streams = [keys.events_named(name) for name in sorted(names)]
        elif layout == "single":
            self.streams = [keys.events]
        else:
            raise ValueError(f"layout must be 'single' or 'per-event', got {layout!r}")
        self.redis = connect(redis)
        self.keys = keys
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.names = names
        self.start = start
        self.count = count
        self._entry_size = 1.0  # events per entry in the last batch handled
        self.block = block
        self.min_idle = min_idle
        self.claim_interval = min_idle / 2 if claim_interval is None else claim_interval
        self.dedupe = dedupe
        self.handled = self.duplicates = self.malformed = self.failed = self.claimed = 0
        self._raw = RawConnection(self.redis)
        self._acks = RawConnection(self.redis)  # the handling side's own line
        self._streams_by_key = {stream.encode(): stream for stream in self.streams}
        self._stopping = False
        self._wait_scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.group}/{self.consumer} handled={self.handled}>"

    async def create_groups(self) -> None:
        """Create the consumer group on every stream (and the streams) if missing."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id=self.start, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def send(self, shard_id: int, command: Command) -> None:
        """Send ``command`` to the gateway process that owns shard ``shard_id``."""
        await send_command(self.redis, self.keys, shard_id, command)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (acknowledged)."""
        self._stopping = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    async def aclose(self) -> None:
        """Close the Redis client's connections."""
        await self._acks.close()
        await self.redis.aclose()

    async def run(self, handler: Handler) -> None:
        """Handle events until :meth:`stop` (or cancellation); Redis errors are retried.

        ``handler`` is called once per event, in stream order; a coroutine is awaited.
        The next batch is read while this one is handled (Redis and the handler
        then work at the same time); :meth:`stop` handles that batch too.
        """
        self._stopping = False
        send, receive = anyio.create_memory_object_stream[_Batch](
            0
        )  # one batch read ahead, no more
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._reader, send)
            async with receive:
                async for batch in receive:
                    await self._handle(batch, handler)
            tg.cancel_scope.cancel()

    async def _reader(self, batches: MemoryObjectSendStream[_Batch]) -> None:
        """Read batches (our old pending, take-overs, new events) until stopped."""
        backoff = Backoff(random.Random(), base=0.1, cap=5.0)
        first = True
        next_claim = 0.0
        async with batches:
            while not self._stopping:
                try:
                    if first:
                        await self.create_groups()
                        # Ours from before a restart under the same consumer name.
                        await batches.send(await self._read("0"))
                        first = False
                    now = anyio.current_time()
                    if now >= next_claim:
                        next_claim = now + self.claim_interval
                        claimed = await self._claim()
                        self.claimed += sum(len(entries) for _, entries in claimed)
                        await batches.send(claimed)
                    batch: _Batch = []
                    with anyio.CancelScope() as self._wait_scope:  # stop() ends the wait
                        if not self._stopping:
                            batch = await self._read(">", block=self.block)
                    self._wait_scope = None
                    await batches.send(batch)
                    backoff.reset()
                except ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        first = True  # a restarted Redis forgot the groups: make them again
                    await self._retry(exc, backoff)
                except (aioredis.RedisError, OSError) as exc:
                    await self._retry(exc, backoff)
            await self._raw.close()

    async def _retry(self, exc: BaseException, backoff: Backoff) -> None:
        _log.warning("worker %s: Redis error, retrying: %r", self.consumer, exc)
        await anyio.sleep(backoff.next_delay())

    async def _read(self, start: str, *, block: float | None = None) -> _Batch:
        """``XREADGROUP`` from ``start`` (``>``: new events), waiting up to ``block`` s."""
        wait = () if block is None else ("BLOCK", max(1, int(block * 1000)))
        command = pack(
            "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self._entries(), *wait,
            "STREAMS", *self.streams, *[start] * len(self.streams),
        )  # fmt: skip
        by_key = self._streams_by_key
        reply = await self._raw.read_events(command)
        return [(by_key[key], entries) for key, entries in reply if entries]

    def _entries(self) -> int:
        """Entries to read at a time: about ``count`` events."""
        return max(1, round(self.count / self._entry_size))

    async def _claim(self) -> _Batch:
        """``XAUTOCLAIM`` what other consumers left pending for ``min_idle`` seconds."""
        out: _Batch = []
        for stream in self.streams:
            command = pack(
                "XAUTOCLAIM", stream, self.group, self.consumer,
                int(self.min_idle * 1000), "0-0", "COUNT", self._entries(),
            )  # fmt: skip
            entries = await self._raw.request(command, "auto_claim")
            if entries:
                out.append((stream, [(eid, *event_fields(f)) for eid, f in entries]))
        return out

    def _malformed(self, entry_id: bytes, stream: str, exc: ValueError) -> None:
        self.malformed += 1
        _log.warning("dropping malformed entry %s of %s: %s", entry_id.decode(), stream, exc)

    async def _handle(self, batch: _Batch, handler: Handler) -> None:
        names = self.names
        dedupe = self.dedupe
        origins = _origins
        loads = LOADS
        make = _make_event
        entry_count = event_count = 0
        for stream, entries in batch:
            entry_count += len(entries)
            event_count += len(entries)  # one each, but packed ones (below)
            left: set[bytes] = set()  # ids of entries left pending
            for entry_id, seq, origin, value_bytes, kind in entries:
                # The entry to StreamEvents, inline (this runs per event). Another
                # name than those handled is acknowledged without decoding its JSON.
                try:
                    events: Sequence[PackedEvent]
                    if kind == PACKED:  # several events: "origin" is the metas field
                        events = unpack_events(origin or b"", value_bytes)
                        event_count += len(events) - 1
                    else:
                        known = origins.get(origin)  # type: ignore[arg-type]  # None: never there
                        if known is None:
                            known = _origin(seq, origin)
                        events = ((*known, int(seq) if seq else None, value_bytes),)
                except ValueError as exc:
                    self._malformed(entry_id, stream, exc)
                    continue
                for name, shard_id, session_id, sequence, data in events:
                    if names is not None and name not in names:
                        continue
                    try:
                        value = loads(data)
                        if kind:  # the payload as the shard received it: its "d", as it read it
                            if value.__class__ is not dict:
                                raise ValueError("the payload field is not a gateway payload")
                            value = value.get("d")
                    except ValueError as exc:  # orjson's and json's errors are ValueErrors
                        self._malformed(entry_id, stream, exc)
                        continue
                    event = make(
                        name, shard_id, session_id, sequence, value, stream, entry_id.decode()
                    )
                    if dedupe is not None and dedupe.seen(event):
                        self.duplicates += 1
                        continue
                    try:
                        result = handler(event)
                        if result is not None and inspect.isawaitable(result):
                            await result
                    except Exception:
                        self.failed += 1
                        _log.exception("handler failed on %s (left pending, retried later)", name)
                        left.add(entry_id)
                        continue
                    self.handled += 1
                    if dedupe is not None:
                        dedupe.add(event)
            # Everything else of the batch is acknowledged (malformed entries too).
            ids = [entry[0] for entry in entries if not left or entry[0] not in left]
            if not ids:
                continue
            # Handled is handled: the acks go out even if we are being cancelled (bounded).
            with anyio.move_on_after(5.0, shield=True):
                await self._acks.request(pack_ids(("XACK", stream, self.group), ids))
        if entry_count:
            self._entry_size = event_count / entry_count
