"""The whole fleet on one page: every process's shards, read from Redis when asked.

Theory of operation: processes that share shards through Redis
(:class:`gateway_redis.process.GatewayProcess`, ``spectacles-gateway run``) already
write what a fleet view needs: each shard's *lease* (``"{owner}|{fence}"``, with a
TTL), each process's *record* (host, pid, the shards it holds, when it last said so)
and each shard's *saved session*. :class:`FleetReader` reads those keys at request
time (one SCAN, three pipelined rounds) and turns them into the JSON document the
status page draws as a second grid: which process holds which shard, which shards
nobody holds, and the live state of the shards this process holds. Nothing is
written, and nothing is added to any shard's path.

Of a saved session only the sequence number is read: never the session id or the
resume URL. Owners are ``host:pid:random`` names; the token never is in Redis.

Needs the ``redis`` and ``status`` extras; ``redis.asyncio`` runs on asyncio only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from redis.exceptions import RedisError

import gateway_anyio
from gateway_redis import Keys

from ._views import StatusSource, _read_anyio

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from gateway_redis.process import GatewayProcess

__all__ = ["FleetReader", "process_source"]

#: The fleet cell of a shard that another process holds (its state is that process's).
HELD_ELSEWHERE = "held"
#: The fleet cell of a shard no process holds: nobody runs it.
FREE = "free"


def process_source(process: GatewayProcess) -> StatusSource:
    """Read the shards a :class:`~gateway_redis.process.GatewayProcess` runs right now.

    The process's cluster exists only while it runs and its shards come and go
    with their leases: both are looked up at every read.
    """

    def shards() -> list[gateway_anyio.Shard]:
        cluster = process.cluster
        return [] if cluster is None else list(cluster.shards.values())

    def limiter() -> object:
        cluster = process.cluster
        return None if cluster is None else cluster.identify_limiter

    return StatusSource(shards, _read_anyio, anyio.current_time, limiter)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


class FleetReader:
    """Reads every process's shards from Redis into the status page's fleet document.

    Call it (``await reader()``) for the document; :class:`~gateway_status.StatusApp`
    serves it at ``/fleet.json`` when given one.

    Args:
        redis: a ``redis.asyncio`` client (the caller closes it).
        keys: the bot's keys (``Keys.for_token(token, namespace)``).
        shard_count: the fleet's total shard count; a callable is asked at every
            read; ``None`` (or a callable returning ``None``) takes the largest
            count the process records name.
        owner: this process's owner name, whose shards get their live state from
            ``local``.
        local: this process's shards.
        timeout: seconds a read may take before it fails.

    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        shard_count: int | Callable[[], int | None] | None = None,
        owner: str | None = None,
        local: StatusSource | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self._shard_count = shard_count
        self.owner = owner
        self.local = local
        self.timeout = timeout

    async def __call__(self) -> dict[str, Any]:
        """Read the fleet once and return its document (see docs/operations.md).

        When Redis does not answer (within ``timeout``), the document says so in
        ``"error"`` and lists nothing: the page shows it, the shards go on.
        """
        try:
            with anyio.fail_after(self.timeout):
                processes = await self._processes()
                count = self._count(processes)
                shards = await self._shards(count) if count else []
        except (RedisError, OSError) as exc:  # TimeoutError too
            why = str(exc) or type(exc).__name__
            return {"self": self.owner, "error": f"Redis did not answer: {why}", "shards": []}
        return {
            "self": self.owner,
            "shard_count": count,
            "processes": processes,
            "shards": shards,
        }

    def _count(self, processes: list[dict[str, Any]]) -> int | None:
        given = self._shard_count() if callable(self._shard_count) else self._shard_count
        if given is not None:
            return given
        counts = [p["shard_count"] for p in processes if p["shard_count"]]
        return max(counts) if counts else None

    async def _processes(self) -> list[dict[str, Any]]:
        pattern = self.keys.process("*")
        names = sorted([key async for key in self.redis.scan_iter(match=pattern, count=500)])
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            records = await pipe.execute()
        now = time.time()
        out = []
        for fields in records:
            record = {_text(k): _text(v) for k, v in fields.items()}
            if not record.get("owner"):
                continue  # expired between the SCAN and the read
            updated = record.get("updated")
            shards = record.get("shards") or ""
            out.append(
                {
                    "owner": record["owner"],
                    "host": record.get("host"),
                    "pid": _int(record.get("pid")),
                    "request": record.get("request"),
                    "shard_count": _int(record.get("shard_count")),
                    "shards": [int(i) for i in shards.split(",") if i.isdigit()],
                    "seen_ago": None if updated is None else max(0.0, now - float(updated)),
                }
            )
        return out

    async def _shards(self, count: int) -> list[dict[str, Any]]:
        ids = range(count)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([self.keys.lease(count, i) for i in ids])
            for i in ids:
                pipe.hget(self.keys.session(count, i), "seq")
            answers = await pipe.execute()
        leases, seqs = answers[0], answers[1:]
        local = {}
        if self.local is not None:
            local = {view.shard_id: view for view in self.local.read()}
        out = []
        for shard_id, lease, seq in zip(ids, leases, seqs, strict=True):
            value = _text(lease)
            owner = None if value is None else value.rpartition("|")[0]
            view = local.get(shard_id) if owner is not None and owner == self.owner else None
            if view is not None:
                state = view.state.value
            else:
                state = FREE if owner is None else HELD_ELSEWHERE
            out.append(
                {
                    "id": shard_id,
                    "owner": owner,
                    "state": state,
                    "saved_seq": _int(seq),
                    "latency": None if view is None else view.latency,
                }
            )
        return out
