"""Commands back: workers send gateway commands to the process that owns the shard.

Each shard has a command stream (``Keys.commands(shard_id)``); an entry holds one
command as its payload: ``op`` (the opcode) and ``d`` (the ``d`` as JSON). Workers
add entries with :func:`send_command` (or ``Worker.send``). The gateway process
that owns the shard reads the streams of the shards it runs, through the consumer
group ``gateways``, with :class:`CommandApplier`: each command is validated (the
same checks as building it in Python), handed to ``shard.send`` (so it goes out
within the shard's rate limit) and acknowledged. A malformed entry is logged and
acknowledged; it never stops the gateway. A command for a shard that is not
connected stays pending and is retried after ``min_idle`` seconds, by whichever
process owns the shard by then. Replies (``GUILD_MEMBERS_CHUNK``, ...) are
dispatches, and reach workers like any other event.

asyncio only (``redis.asyncio``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway_proto.backoff import Backoff
from gateway_proto.commands import (
    Activity,
    Command,
    RequestChannelInfo,
    RequestGuildMembers,
    RequestSoundboardSounds,
    UpdatePresence,
    UpdateVoiceState,
)
from gateway_proto.errors import InvalidCommandError, LocalProtocolError

from ._codec import DUMPS, LOADS, connect, default_consumer_name
from ._keys import Keys
from ._resp import RawConnection, pack

if TYPE_CHECKING:
    from gateway_anyio import Cluster

__all__ = [
    "COMMAND_GROUP",
    "DEFAULT_COMMAND_MAX_LEN",
    "CommandApplier",
    "apply_commands",
    "decode_command",
    "encode_command",
    "send_command",
]

_log = logging.getLogger("gateway_redis.commands")

#: The consumer group of gateway processes on every command stream.
COMMAND_GROUP = "gateways"
#: Entries kept per command stream (approximate trimming).
DEFAULT_COMMAND_MAX_LEN = 1_000

# KEYS: command streams. ARGV: group, consumer, min idle (ms), count. Returns
# [[stream, entries], ...] for the streams where something was taken over.
_CLAIM_SCRIPT = """\
local out = {}
for i = 1, #KEYS do
  local r = redis.call('XAUTOCLAIM', KEYS[i], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
  if #r[2] > 0 then out[#out + 1] = {KEYS[i], r[2]} end
end
return out
"""

_BY_OPCODE: dict[int, type[Command]] = {
    int(cls.opcode): cls
    for cls in (
        UpdatePresence,
        UpdateVoiceState,
        RequestGuildMembers,
        RequestSoundboardSounds,
        RequestChannelInfo,
    )
}


def encode_command(command: Command) -> dict[str, bytes]:
    """Return the stream entry of ``command``: ``{"op": ..., "d": JSON}``."""
    return {"op": b"%d" % int(command.opcode), "d": DUMPS(command.to_payload())}


def decode_command(fields: Mapping[bytes, bytes]) -> Command:
    """Build the command a stream entry holds, with every check of the command classes.

    Raises:
        InvalidCommandError: not a command a worker may send, or invalid fields.

    """
    op_text = fields.get(b"op", b"")
    cls = _BY_OPCODE.get(int(op_text)) if op_text.isdigit() and len(op_text) < 4 else None
    if cls is None:
        raise InvalidCommandError(f"not a command workers may send: op {op_text[:20]!r}")
    op = int(op_text)
    try:
        d = LOADS(fields.get(b"d", b""))
    except ValueError as exc:
        raise InvalidCommandError(f"op {op}: d is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise InvalidCommandError(f"op {op}: d must be an object")
    allowed = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - allowed
    if unknown:
        raise InvalidCommandError(f"op {op}: unknown fields {sorted(unknown)}")
    if cls is UpdatePresence:
        activities = d.get("activities") or []
        if not isinstance(activities, list) or not all(isinstance(a, dict) for a in activities):
            raise InvalidCommandError("activities must be a list of objects")
        d["activities"] = [_activity(a) for a in activities]
    try:
        return cls(**d)
    except TypeError as exc:  # a required field is missing
        raise InvalidCommandError(f"op {op}: {exc}") from None


def _activity(fields: dict[str, Any]) -> Activity:
    allowed = {f.name for f in dataclasses.fields(Activity)}
    if not set(fields) <= allowed:
        raise InvalidCommandError(f"unknown activity fields {sorted(set(fields) - allowed)}")
    try:
        return Activity(**fields)
    except TypeError as exc:
        raise InvalidCommandError(f"activity: {exc}") from None


async def send_command(
    redis: aioredis.Redis,
    keys: Keys,
    shard_id: int,
    command: Command,
    *,
    max_len: int = DEFAULT_COMMAND_MAX_LEN,
) -> str:
    """Queue ``command`` for shard ``shard_id``'s owner; return the entry id."""
    entry_id = await redis.xadd(
        keys.commands(shard_id),
        encode_command(command),  # type: ignore[arg-type]
        maxlen=max_len,
        approximate=True,
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


class CommandApplier:
    """Applies the commands workers send to the shards this process owns.

    Args:
        redis: a ``redis://`` URL, or a ``redis.asyncio.Redis`` (bytes replies).
        keys: the bot's key names.
        owned: the shard ids this process owns now: a collection, or a callable
            asked before every read (leases change); default: every shard of
            the cluster.
        consumer: this process's name in the ``gateways`` group (default: host-pid).
        block: seconds one blocking read waits (ownership is re-read after it).
        min_idle: seconds before a command left pending (shard not connected,
            or its process died) is taken over and tried again.
        count: commands per read, at most.

    Attributes:
        applied: commands handed to a shard.
        rejected: entries dropped as malformed or invalid (each logged).

    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        keys: Keys,
        *,
        owned: Collection[int] | Callable[[], Collection[int]] | None = None,
        consumer: str | None = None,
        block: float = 2.0,
        min_idle: float = 10.0,
        count: int = 100,
    ) -> None:
        self.redis = connect(redis)
        self.keys = keys
        self.owned = owned
        self.consumer = consumer or default_consumer_name()
        self.block = block
        self.min_idle = min_idle
        self.count = count
        self.applied = 0
        self.rejected = 0
        self._groups: set[str] = set()
        self._raw = RawConnection(self.redis)
        self._claim_script = self.redis.register_script(_CLAIM_SCRIPT)

    async def aclose(self) -> None:
        """Close the Redis client's connections."""
        await self._raw.close()
        await self.redis.aclose()

    def _owned_ids(self, cluster: Cluster) -> list[int]:
        owned = self.owned
        if owned is None:
            return sorted(cluster.shards)
        return sorted(owned() if callable(owned) else owned)

    async def service(self, cluster: Cluster) -> None:
        """Apply commands to ``cluster``'s shards until cancelled (a gateway service)."""
        try:
            await self._serve(cluster)
        finally:
            await self._raw.close()

    async def _serve(self, cluster: Cluster) -> None:
        backoff = Backoff(random.Random(), base=0.1, cap=5.0)
        next_claim = 0.0
        read_for: list[int] = []
        read = b""
        while True:
            ids = self._owned_ids(cluster)
            if not ids:
                await anyio.sleep(self.block)
                continue
            streams = {self.keys.commands(i): i for i in ids}
            try:
                await self._create_groups(streams)
                now = anyio.current_time()
                if now >= next_claim:
                    next_claim = now + self.min_idle
                    # One script over every owned stream: one round trip, not one per shard.
                    claimed: Any = await self._claim_script(
                        keys=list(streams),
                        args=[COMMAND_GROUP, self.consumer, int(self.min_idle * 1000), self.count],
                    )
                    for key, entries in claimed:
                        stream = key.decode()
                        fields = [(e, dict(zip(f[::2], f[1::2], strict=False))) for e, f in entries]
                        await self._apply(cluster, stream, streams[stream], fields, ids)
                if read_for != ids:
                    read_for = ids
                    read = pack(
                        "XREADGROUP", "GROUP", COMMAND_GROUP, self.consumer, "COUNT", self.count,
                        "BLOCK", max(1, int(self.block * 1000)),
                        "STREAMS", *streams, *[">"] * len(streams),
                    )  # fmt: skip
                reply = await self._raw.request(read, "read_groups")
                for key, entries in reply:
                    stream = key.decode()
                    await self._apply(cluster, stream, streams[stream], entries, ids)
                backoff.reset()
            except (aioredis.RedisError, OSError) as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    self._groups.clear()  # a restarted Redis forgot them
                _log.warning("reading commands failed, retrying: %r", exc)
                await anyio.sleep(backoff.next_delay())

    async def _create_groups(self, streams: Mapping[str, int]) -> None:
        for stream in streams:
            if stream in self._groups:
                continue
            try:
                # From "0": commands queued before any gateway read them still count.
                await self.redis.xgroup_create(stream, COMMAND_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._groups.add(stream)

    async def _apply(
        self,
        cluster: Cluster,
        stream: str,
        shard_id: int,
        entries: list[Any],
        owned: list[int],
    ) -> None:
        done: list[bytes] = []
        for entry_id, fields in entries:
            if not fields:  # trimmed away while pending
                done.append(entry_id)
                continue
            try:
                command = decode_command(fields)
            except Exception as exc:  # whatever a writer put there, the gateway goes on
                self.rejected += 1
                _log.warning(
                    "dropping command %s for shard %d: %s", entry_id.decode(), shard_id, exc
                )
                done.append(entry_id)
                continue
            shard = cluster.shards.get(shard_id)
            if shard is None or shard_id not in owned:
                continue  # not ours (any more): the owner takes it over
            try:
                await shard.send(command)
            except InvalidCommandError as exc:  # too large once encoded
                self.rejected += 1
                _log.warning(
                    "dropping command %s for shard %d: %s", entry_id.decode(), shard_id, exc
                )
            except LocalProtocolError:
                continue  # not connected now: tried again after min_idle
            else:
                self.applied += 1
            done.append(entry_id)
        if done:
            await self.redis.xack(stream, COMMAND_GROUP, *done)


async def apply_commands(
    cluster: Cluster,
    redis: str | aioredis.Redis,
    keys: Keys,
    owned: Collection[int] | Callable[[], Collection[int]] | None = None,
) -> None:
    """Apply workers' commands to ``cluster``'s shards until cancelled.

    The function form of :class:`CommandApplier` (whose options it leaves at their defaults).
    """
    await CommandApplier(redis, keys, owned=owned).service(cluster)
