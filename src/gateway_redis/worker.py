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
those already handled. Reading is done by a short script around ``XREADGROUP`` /
``XAUTOCLAIM`` that returns a batch as one string: parsing one reply element per
field in Python costs several times the handler's own work per event. An idle
worker waits in a plain blocking ``XREADGROUP``.

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
from redis.exceptions import ResponseError

from gateway_proto.backoff import Backoff
from gateway_proto.commands import Command

from ._codec import LOADS, connect, default_consumer_name
from ._keys import Keys
from .commands import send_command
from .streams import Layout

__all__ = [
    "DEFAULT_DEDUPE_SIZE",
    "Deduplicator",
    "StreamEvent",
    "Worker",
    "default_consumer_name",
]

_log = logging.getLogger("gateway_redis.worker")

#: Events a :class:`Deduplicator` remembers by default.
DEFAULT_DEDUPE_SIZE = 100_000

# KEYS: the streams. ARGV: mode ("read" or "claim"), group, consumer, count, then the
# id to read from (">" new, "0" this consumer's pending) or the claim's min idle (ms).
# Returns every entry as "stream-index id len len len len len\n" and the five values.
_READ_SCRIPT = """\
local out = {}
local function emit(k, e)
  local f = {}
  local flat = e[2]
  if flat then
    for j = 1, #flat, 2 do f[flat[j]] = flat[j + 1] end
  end
  local v = {f['name'] or '', f['shard'] or '', f['session'] or '', f['seq'] or '', f['data'] or ''}
  out[#out + 1] = table.concat({k, e[1], #v[1], #v[2], #v[3], #v[4], #v[5]}, ' ') .. '\\n'
  out[#out + 1] = table.concat(v)
end
if ARGV[1] == 'claim' then
  for i = 1, #KEYS do
    local r = redis.call('XAUTOCLAIM', KEYS[i], ARGV[2], ARGV[3], ARGV[5], '0-0', 'COUNT', ARGV[4])
    for _, e in ipairs(r[2]) do emit(i, e) end
  end
else
  local index = {}
  local args = {'XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS'}
  for i = 1, #KEYS do
    index[KEYS[i]] = i
    args[#args + 1] = KEYS[i]
  end
  for i = 1, #KEYS do args[#args + 1] = ARGV[5] end
  local r = redis.call(unpack(args))
  if r then
    for _, s in ipairs(r) do
      for _, e in ipairs(s[2]) do emit(index[s[1]], e) end
    end
  end
end
return table.concat(out)
"""

# (stream index, entry id, name, shard, session, seq, data), undecoded.
_Raw = tuple[int, bytes, bytes, bytes, bytes, bytes, bytes]


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


def parse_batch(blob: bytes) -> list[_Raw]:
    """Split the read script's reply into entries (values still bytes).

    Raises:
        ValueError: the reply is not in the script's format.

    """
    out: list[_Raw] = []
    pos = 0
    end = len(blob)
    while pos < end:
        eol = blob.index(b"\n", pos)
        k, eid, n1, n2, n3, n4, n5 = blob[pos:eol].split(b" ")
        a = eol + 1
        b = a + int(n1)
        c = b + int(n2)
        d = c + int(n3)
        e = d + int(n4)
        pos = e + int(n5)
        if pos > end:
            raise ValueError("truncated batch")
        out.append((int(k), eid, blob[a:b], blob[b:c], blob[c:d], blob[d:e], blob[e:pos]))
    return out


def _decode(raw: _Raw, streams: Sequence[str]) -> StreamEvent:
    """Turn one entry into a :class:`StreamEvent`; ``ValueError`` if it is malformed."""
    k, eid, name, shard, session, seq, data = raw
    if not name or not shard.isdigit() or not (seq == b"" or seq.isdigit()):
        raise ValueError("missing or malformed name, shard or seq")
    return StreamEvent(
        name=name.decode(),
        shard_id=int(shard),
        session_id=session.decode() or None,
        sequence=int(seq) if seq else None,
        data=LOADS(data),
        stream=streams[k - 1],
        id=eid.decode(),
    )


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
        count: events per read, at most.
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
        self.block = block
        self.min_idle = min_idle
        self.claim_interval = min_idle / 2 if claim_interval is None else claim_interval
        self.dedupe = dedupe
        self.handled = self.duplicates = self.malformed = self.failed = self.claimed = 0
        self._script = self.redis.register_script(_READ_SCRIPT)
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
        await self.redis.aclose()

    async def run(self, handler: Handler) -> None:
        """Handle events until :meth:`stop` (or cancellation); Redis errors are retried.

        ``handler`` is called once per event, in stream order; a coroutine is awaited.
        """
        backoff = Backoff(random.Random(), base=0.1, cap=5.0)
        self._stopping = False
        first = True
        next_claim = 0.0
        while not self._stopping:
            try:
                if first:
                    await self.create_groups()
                    # Ours from before a restart under the same consumer name.
                    await self._handle(await self._read("read", "0"), handler)
                    first = False
                now = anyio.current_time()
                if now >= next_claim:
                    next_claim = now + self.claim_interval
                    claimed = await self._read("claim", str(int(self.min_idle * 1000)))
                    self.claimed += len(claimed)
                    await self._handle(claimed, handler)
                batch = await self._read("read", ">")
                if not batch:
                    batch = await self._wait()
                await self._handle(batch, handler)
                backoff.reset()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    first = True  # a restarted Redis forgot the groups: make them again
                await self._retry(exc, backoff)
            except (aioredis.RedisError, OSError) as exc:
                await self._retry(exc, backoff)

    async def _retry(self, exc: BaseException, backoff: Backoff) -> None:
        _log.warning("worker %s: Redis error, retrying: %r", self.consumer, exc)
        await anyio.sleep(backoff.next_delay())

    async def _read(self, mode: str, arg: str) -> list[_Raw]:
        blob = await self._script(
            keys=self.streams, args=[mode, self.group, self.consumer, self.count, arg]
        )
        return parse_batch(blob) if blob else []

    async def _wait(self) -> list[_Raw]:
        """Block until an event comes (one, read the slow way), or ``block`` passes."""
        reply: Any = None
        with anyio.CancelScope() as self._wait_scope:
            reply = await self.redis.xreadgroup(
                self.group,
                self.consumer,
                dict.fromkeys(self.streams, ">"),
                count=1,
                block=max(1, int(self.block * 1000)),
            )
        self._wait_scope = None
        out: list[_Raw] = []
        for stream, entries in reply or ():
            k = self.streams.index(stream.decode() if isinstance(stream, bytes) else stream) + 1
            for eid, fields in entries:
                f = fields or {}
                out.append(
                    (
                        k,
                        eid,
                        f.get(b"name", b""),
                        f.get(b"shard", b""),
                        f.get(b"session", b""),
                        f.get(b"seq", b""),
                        f.get(b"data", b""),
                    )
                )
        return out

    async def _handle(self, batch: list[_Raw], handler: Handler) -> None:
        if not batch:
            return
        acks: dict[str, list[bytes]] = {}
        names = self.names
        dedupe = self.dedupe
        streams = self.streams
        for raw in batch:
            try:
                event = _decode(raw, streams)
            except ValueError as exc:  # orjson's and json's errors are ValueErrors
                self.malformed += 1
                _log.warning(
                    "dropping malformed entry %s of %s: %s",
                    raw[1].decode(),
                    streams[raw[0] - 1],
                    exc,
                )
                acks.setdefault(streams[raw[0] - 1], []).append(raw[1])
                continue
            if names is not None and event.name not in names:
                pass
            elif dedupe is not None and dedupe.seen(event):
                self.duplicates += 1
            else:
                try:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self.failed += 1
                    _log.exception("handler failed on %s (left pending, retried later)", event.name)
                    continue
                self.handled += 1
                if dedupe is not None:
                    dedupe.add(event)
            acks.setdefault(event.stream, []).append(raw[1])
        # Handled is handled: the acks go out even if we are being cancelled (bounded).
        with anyio.move_on_after(5.0, shield=True):
            for stream, ids in acks.items():
                await self.redis.xack(stream, self.group, *ids)
