"""Shards across processes and machines, coordinated through Redis (the ``redis`` extra).

Nothing here is needed by ``gateway_proto`` or the drivers; install
``spectacles-gateway[redis]`` to use it. See docs/scaling.md and docs/streams.md.
The asyncio pieces need anyio's asyncio backend (``redis.asyncio`` runs on asyncio
only).

- :class:`RedisIdentifyLimiter` / :class:`SyncRedisIdentifyLimiter`: identify
  buckets and the session start budget shared by every process of a bot.
- :class:`GatewayProcess`: one gateway process of many: shard leases with
  fencing, sessions saved in Redis and resumed by the next holder.
- :class:`EventPublisher` / :func:`publish_cluster`: every dispatch to Redis
  Streams; :class:`Worker` / :class:`Deduplicator`: consumer groups on them;
  :class:`CommandApplier` / :func:`send_command`: commands back to a shard's owner.
- :class:`Keys`: every key name, under a hash of the token (never the token).
"""

from __future__ import annotations

from ._keys import Keys
from .commands import CommandApplier, send_command
from .identify import RedisIdentifyLimiter, SyncRedisIdentifyLimiter
from .process import GatewayProcess
from .streams import EventPublisher, publish_cluster
from .worker import Deduplicator, StreamEvent, Worker

__all__ = [
    "CommandApplier",
    "Deduplicator",
    "EventPublisher",
    "GatewayProcess",
    "Keys",
    "RedisIdentifyLimiter",
    "StreamEvent",
    "SyncRedisIdentifyLimiter",
    "Worker",
    "publish_cluster",
    "send_command",
]
