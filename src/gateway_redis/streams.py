"""Publishing dispatches to Redis Streams, for workers (see docs/streams.md).

Theory of operation: a shard's reader must never wait for Redis (a reader that
waits stops reading heartbeat ACKs and its connection would be declared a zombie),
so :meth:`EventPublisher.publish` only appends to a bounded in-memory queue. One
flusher task takes up to ``batch_size`` events at a time and sends them in **one**
round trip: ``XADD key * meta .. data ..`` per event (the stream's last one of the
batch with ``MAXLEN ~ N``), pipelined (one write, then the replies read together).
Packed here, not by the client library, whose per-argument packing and one parsed
reply per ``XADD`` cost more than the shard's own work per event; not a Lua script
looping over ``XADD``, which costs Redis about twice the CPU per event (measured:
~5 against ~3 µs). Each event is encoded and packed when it is published, so the
queue holds bytes: decoded payloads kept until the flush would be walked by the
cyclic GC (measured: the largest single cost of publishing).

Each stream entry is one dispatch, with two fields: ``meta``, which packs its
sequence, shard, session id and name (:func:`pack_meta`; one field, not four,
because every field costs Redis and the worker's parser work per entry), and
either ``payload``, the whole gateway payload as the shard received it (JSON,
when the shard keeps it: ``keep_raw``), or else ``data``, the dispatch's ``d``
encoded as JSON here. Publishing the received bytes costs nothing per event;
encoding ``d`` again cost the publisher ~1-2 µs per event (orjson), the largest
part of its work. A worker decodes either and hands on ``d``.

With ``events_per_entry`` above 1, one entry packs up to that many dispatches
of a batch (of one stream): fields ``metas`` and ``payloads``, both JSON (see
``_entry``). Redis's price is per entry more than per byte (measured: ~7 µs of
Redis CPU per event one per entry, ~3 packed by 50), and so is the worker's.

Layouts: ``"single"`` puts every dispatch in one stream (``Keys.events``),
``"per-event"`` one stream per dispatch name (``Keys.events_named(name)``).

When Redis is slow, restarting or unreachable, the queue fills and then drops its
**oldest** events (counted in :attr:`EventPublisher.dropped`, warned about once per
outage); the batch in flight is kept and sent again once Redis answers (a batch
whose reply was lost may so be written twice: workers drop such duplicates by
shard, session and sequence). The flusher reconnects with jittered exponential
backoff and never raises a Redis error.

Runs on anyio's asyncio backend only (``redis.asyncio``), like every async piece
of :mod:`gateway_redis`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway_proto.backoff import Backoff
from gateway_proto.driver_support import (
    CONNECT,
    LIFECYCLE_EVENTS,
    Connected,
    GatewayEvent,
)
from gateway_proto.session import Session

from ._codec import DUMPS, connect
from ._entry import DATA_FIELD, PAYLOAD_FIELD, QueuedEvent, pack_events, pack_meta, pack_origin
from ._keys import Keys
from ._resp import RawConnection
from ._sink import BatchSink

if TYPE_CHECKING:
    from gateway_anyio import Cluster

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_LEN",
    "DEFAULT_MAX_QUEUE",
    "EventPublisher",
    "Layout",
    "pack_meta",
    "publish_cluster",
]

#: ``"single"``: one stream for every dispatch; ``"per-event"``: a stream per name.
Layout = Literal["single", "per-event"]
#: Entries kept per stream (``XADD MAXLEN ~``: Redis trims whole nodes, so a little more).
DEFAULT_MAX_LEN = 100_000
#: Events held in memory while Redis lags or is away, before the oldest are dropped.
DEFAULT_MAX_QUEUE = 100_000
#: Events sent per round trip, at most.
DEFAULT_BATCH_SIZE = 500

_log = logging.getLogger("gateway_redis.streams")

#: Dispatch names whose packed argument is cached (a hostile server could invent more).
_NAME_CACHE = 1024

#: Packed (name, shard, session) meta tails kept; a long-lived process sees few
#: sessions per shard, and a few dozen names.
_TAIL_CACHE = 16384


_CRLF = b"\r\n"


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


class EventPublisher:
    """Publishes dispatches to Redis Streams in pipelined batches; never blocks a shard.

    Feed it with :func:`publish_cluster` (or :meth:`service`, for a gateway
    process's ``services``), or call :meth:`publish` yourself and run :meth:`run`.

    Args:
        redis: a ``redis://`` URL, or a ``redis.asyncio.Redis`` (bytes replies).
        keys: the bot's key names (``Keys.for_token(token)``).
        layout: ``"single"`` (one stream, the name as a field; the default) or
            ``"per-event"`` (one stream per dispatch name).
        max_len: entries kept per stream (approximate trimming, ``MAXLEN ~``).
        max_queue: events buffered in memory; beyond it the oldest are dropped.
        batch_size: events per round trip, at most.
        events_per_entry: dispatches packed in one stream entry, at most (1: one
            entry per dispatch, readable by any client as ``meta`` and
            ``payload``/``data``; more: fewer, larger entries, read by this
            package's :class:`~gateway_redis.worker.Worker` or by any client
            that reads the ``metas`` and ``payloads`` JSON arrays). ``max_len``
            then counts entries, not events.
        timeout: seconds a round trip may take before the connection is dropped
            and the batch sent again.
        backoff_base: first reconnect delay bound, in seconds (full jitter).
        backoff_cap: largest reconnect delay, in seconds.
        rng: randomness for the backoff (seed it in tests).

    Attributes:
        published: events Redis confirmed.
        dropped: events dropped (the queue was full, or the data was not JSON).
        failures: round trips that failed (each one is retried).
        connected: whether the last round trip succeeded.

    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        keys: Keys,
        *,
        layout: Layout = "single",
        max_len: int = DEFAULT_MAX_LEN,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        events_per_entry: int = 1,
        timeout: float = 5.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        if layout not in ("single", "per-event"):
            raise ValueError(f"layout must be 'single' or 'per-event', got {layout!r}")
        if min(max_len, max_queue, batch_size, events_per_entry) < 1:
            raise ValueError(
                "max_len, max_queue, batch_size and events_per_entry must be at least 1"
            )
        self.redis = connect(redis)
        self.keys = keys
        self.layout = layout
        self.max_len = max_len
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.events_per_entry = events_per_entry
        # The entries' format, fixed for the publisher's life: what publish() queues
        # (a head per event, or whole payloads to pack) depends on it.
        self._packed = events_per_entry > 1
        self.timeout = timeout
        self._backoff = Backoff(rng or random.Random(), base=backoff_base, cap=backoff_cap)
        self._queue: deque[QueuedEvent] = deque()
        self._wake: anyio.Event | None = None  # made by run(), inside the event loop
        self._in_flight = False
        self._running = False
        self._ended = False
        self._raw = RawConnection(self.redis)
        self._tails: dict[tuple[str, int, str | None], bytes] = {}
        self._single_heads = self._xadd_heads(keys.events)
        self._heads: dict[str, tuple[bytes, bytes]] = {}  # per-event layout: by name
        self.published = 0
        self.dropped = 0
        self.failures = 0
        self.connected = False
        self._warned = False
        # Per shard: the session and the highest sequence Redis confirmed (checkpoint).
        self._confirmed: dict[int, tuple[str | None, int]] = {}

    def __repr__(self) -> str:
        return (
            f"<EventPublisher {self.layout} queued={len(self._queue)} "
            f"published={self.published} dropped={self.dropped}>"
        )

    @property
    def queued(self) -> int:
        """Events waiting to be sent (not counting the batch in flight)."""
        return len(self._queue)

    # -- the hot path -------------------------------------------------------------------

    def publish(
        self,
        name: str,
        shard_id: int,
        session_id: str | None,
        sequence: int | None,
        data: Any,
        *,
        raw: bytes | None = None,
    ) -> None:
        """Queue one dispatch; never waits (the oldest is dropped when the queue is full).

        ``raw`` is the whole payload as the shard received it (``Dispatch.raw``,
        with ``keep_raw``): if it is JSON it is published as it is. Otherwise
        (``None``, or ETF) ``data`` is encoded as JSON here, once (a value JSON
        cannot hold is logged and counted in :attr:`dropped`).
        """
        packed = self._packed
        if raw is not None and raw[:1] == b"{":  # JSON (an ETF term starts with 131)
            payload, field = raw, PAYLOAD_FIELD
        else:
            try:
                if packed:  # packed entries hold whole payloads only
                    payload = DUMPS({"t": name, "s": sequence, "op": 0, "d": data})
                else:
                    payload = DUMPS(data)
            except (TypeError, ValueError) as exc:
                _log.error("dropping %s of shard %d: not JSON: %s", name, shard_id, exc)
                self._drop(1)
                return
            field = DATA_FIELD
        if packed:
            head = b""  # the entry's fields are packed per batch (pack_events)
        else:
            # pack_meta, with what follows the sequence (" SHARD LEN SESSION NAME": the
            # same for every event of a name on a session) packed once: this runs per dispatch.
            tail = self._tails.get((name, shard_id, session_id))
            if tail is None:
                if len(self._tails) >= _TAIL_CACHE:
                    self._tails.clear()
                tail = self._tails[name, shard_id, session_id] = b" %b %b" % (
                    pack_origin(shard_id, session_id),
                    name.encode(),
                )
            seq = b"" if sequence is None else b"%d" % sequence
            head = b"$4\r\nmeta\r\n$%d\r\n%b%b\r\n%b$%d\r\n" % (
                len(seq) + len(tail), seq, tail, field, len(payload),
            )  # fmt: skip
        queue = self._queue
        if len(queue) >= self.max_queue:
            queue.popleft()
            self._drop(1)
        queue.append((name, head, payload, shard_id, session_id, sequence))
        wake = self._wake
        if wake is not None:
            self._wake = None  # one wake-up per batch the flusher takes, not one per event
            wake.set()

    def _drop(self, count: int) -> None:
        self.dropped += count
        if not self._warned:
            self._warned = True
            _log.warning(
                "event queue full (%d events; Redis slow or away): dropping the oldest",
                self.max_queue,
            )

    # -- the flusher --------------------------------------------------------------------

    async def run(self) -> None:
        """Send queued events until cancelled; Redis errors are logged and retried, never raised.

        Raises:
            RuntimeError: it is already running.

        """
        if self._running:
            raise RuntimeError("this EventPublisher is already running")
        self._running = True
        self._ended = False
        try:
            queue = self._queue
            while True:
                if not queue:
                    wake = self._wake = anyio.Event()
                    await wake.wait()
                self._in_flight = True
                batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                packed, entries = self._pack(batch)
                await self._send(packed, entries, len(batch))
                confirmed = self._confirmed
                for _, _, _, shard_id, session_id, sequence in batch:
                    if sequence is not None:
                        confirmed[shard_id] = (session_id, sequence)
                self._in_flight = False
        finally:
            self._running = self._in_flight = False
            self._ended = True  # a drain() still waiting has nothing more to wait for
            await self._close_connection()

    def checkpoint(self, shard_id: int, session: Session) -> int | None:
        """Return the highest sequence of ``session`` that Redis confirmed (``None``: none yet).

        A :data:`~gateway_redis.process.Checkpoint`: give it to
        ``GatewayProcess(checkpoint=...)`` so a saved session never runs ahead of
        what reached Redis, and a killed process's successor resumes before any
        event it had only buffered.
        """
        confirmed = self._confirmed.get(shard_id)
        if confirmed is None or confirmed[0] != session.session_id:
            return None
        return confirmed[1]

    async def drain(self) -> None:
        """Wait until every queued event was sent (or dropped), or :meth:`run` ended."""
        while (self._queue or self._in_flight) and not self._ended:
            await anyio.sleep(0.01)  # rare (shutdown): polling keeps the hot path bare

    def _pack(self, batch: list[QueuedEvent]) -> tuple[bytes, int]:
        """Pack ``batch`` as pipelined ``XADD``s (RESP, as Redis reads it), and count them.

        One ``XADD`` per event, or per up to ``events_per_entry`` events of one
        stream. Only each stream's last ``XADD`` of the batch trims it (``MAXLEN
        ~``): the bound holds after every batch, and the others cost Redis less
        (measured: ~0.3 µs per event of Redis CPU).
        """
        parts: list[bytes] = []
        per_entry = max(1, self.events_per_entry)
        if self._packed:
            if self.layout == "single":
                streams = [(self._single_heads, batch)]
            else:
                by_name: dict[str, list[QueuedEvent]] = {}
                for item in batch:
                    by_name.setdefault(item[0], []).append(item)
                streams = [(self._named_heads(name), items) for name, items in by_name.items()]
            for (plain, trim), items in streams:
                for start in range(0, len(items), per_entry):
                    parts.append(plain if start + per_entry < len(items) else trim)
                    parts.append(pack_events(items[start : start + per_entry]))
            return b"".join(parts), len(parts) // 2
        if self.layout == "single":
            plain, trim = self._single_heads
            for item in batch:
                parts += (plain, item[1], item[2], _CRLF)
            parts[-4] = trim
            return b"".join(parts), len(batch)
        heads = self._heads  # looked up inline: this runs per event
        last_of = {item[0]: i for i, item in enumerate(batch)}
        for i, (name, head, payload, *_) in enumerate(batch):
            named = heads.get(name) or self._named_heads(name)
            parts += (named[last_of[name] == i], head, payload, _CRLF)
        return b"".join(parts), len(batch)

    def _named_heads(self, name: str) -> tuple[bytes, bytes]:
        """:meth:`_xadd_heads` of the per-event layout's stream for ``name`` (cached)."""
        heads = self._heads
        named = heads.get(name)
        if named is None:
            named = self._xadd_heads(self.keys.events_named(name))
            if len(heads) < _NAME_CACHE:
                heads[name] = named
        return named

    def _xadd_heads(self, stream: str) -> tuple[bytes, bytes]:
        """``XADD stream *`` and ``XADD stream MAXLEN ~ max_len *``, fields to follow (RESP)."""
        key = _bulk(stream.encode())
        return (
            b"*7\r\n$4\r\nXADD\r\n%b$1\r\n*\r\n" % key,
            b"*10\r\n$4\r\nXADD\r\n%b$6\r\nMAXLEN\r\n$1\r\n~\r\n%b$1\r\n*\r\n"
            % (key, _bulk(b"%d" % self.max_len)),
        )

    async def _send(self, packed: bytes, entries: int, events: int) -> None:
        """Send one batch (``entries`` XADDs) until Redis took it, reconnecting with backoff."""
        while True:
            try:
                with anyio.fail_after(self.timeout):
                    await self._round_trip(packed, entries)
            except (RedisError, OSError, TimeoutError) as exc:
                await self._failed(exc)
            else:
                if not self.connected:
                    _log.info("publishing to Redis (%d events dropped so far)", self.dropped)
                self.connected = True
                self._warned = False
                self._backoff.reset()
                self.published += events
                return

    async def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        await self._close_connection()
        if self.connected or self.failures == 1:
            _log.warning("publishing to Redis failed, retrying with backoff: %r", exc)
        self.connected = False
        await anyio.sleep(self._backoff.next_delay())

    async def _round_trip(self, packed: bytes, count: int) -> Any:
        return await self._raw.request(packed, "replies", count)

    async def _close_connection(self) -> None:
        await self._raw.close()

    async def aclose(self) -> None:
        """Close the connections (the flusher closes its own when it stops)."""
        await self._close_connection()
        await self.redis.aclose()

    # -- fed by a cluster ---------------------------------------------------------------

    async def service(self, cluster: Cluster) -> None:
        """Publish ``cluster``'s dispatches until it closes (a gateway process's service)."""
        await publish_cluster(cluster, self)


async def publish_cluster(
    cluster: Cluster,
    publisher: EventPublisher,
    *,
    drain_timeout: float = 5.0,
) -> None:
    """Publish every dispatch of a running ``gateway_anyio`` cluster until it closes.

    Runs the publisher's flusher too. When the cluster closes, it waits up to
    ``drain_timeout`` seconds for the queue to reach Redis, then returns. Run it
    in the cluster's task group on anyio's asyncio backend::

        async with Cluster(token, intents=...) as cluster, anyio.create_task_group() as tg:
            tg.start_soon(publish_cluster, cluster, EventPublisher(url, Keys.for_token(token)))
            await cluster.spawn("auto")

    Each event carries its shard id, the session id and the sequence, so workers
    can drop the duplicates a resume or a retried batch may bring. Give the
    cluster ``keep_raw=True`` (a :class:`~gateway_proto.config.ShardConfig`
    option) and each JSON dispatch is published as the bytes it came in, not
    encoded again.
    """
    lifecycle = LIFECYCLE_EVENTS
    publish = publisher.publish
    sessions: dict[int, str | None] = {}

    def on_events(events: list[GatewayEvent]) -> None:
        for event in events:
            name = event.name
            shard_id = event.shard_id
            if name in lifecycle:
                if name == CONNECT and isinstance(event.data, Connected):
                    session = event.data.session
                    sessions[shard_id] = None if session is None else session.session_id
                continue
            session_id = sessions.get(shard_id)
            if session_id is None:
                session_id = sessions[shard_id] = _session_id(event.shard)
            publish(name, shard_id, session_id, event.sequence, event.data, raw=event.raw)

    sink = BatchSink(on_events)
    # The cluster's emitter passes every shard's events to its parents, synchronously.
    emitter = cluster._emitter
    async with anyio.create_task_group() as tg:
        tg.start_soon(publisher.run)
        emitter.add_parent(sink)
        try:
            # A stream of an event that never comes: it ends when the cluster closes
            # (not when its shards happen to have stopped: more may be spawned).
            async with cluster.events(_CLOSED_ONLY, until_closed=True) as closed:
                async for _ in closed:
                    pass
        finally:
            emitter.remove_parent(sink)
            with anyio.move_on_after(drain_timeout, shield=True):
                await publisher.drain()
            tg.cancel_scope.cancel()


#: Not an event name anyone emits (names are ``[A-Z_]`` dispatches or lowercase lifecycle).
_CLOSED_ONLY = "gateway_redis:cluster-closed"


def _session_id(shard: Any) -> str | None:
    """Return the session a shard is on (replays before RESUMED come before any CONNECT)."""
    session = getattr(shard, "session", None)
    return None if session is None else str(session.session_id)

