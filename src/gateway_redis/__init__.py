"""Shards across processes and machines, coordinated through Redis (the ``redis`` extra).

Nothing here is needed by ``gateway_proto`` or the drivers; install
``spectacles-gateway[redis]`` to use it. See docs/scaling.md.

- :class:`RedisIdentifyLimiter` / :class:`SyncRedisIdentifyLimiter`: identify
  buckets and the session start budget shared by every process of a bot.
"""

from __future__ import annotations

from .identify import RedisIdentifyLimiter, SyncRedisIdentifyLimiter

__all__: list[str] = ["RedisIdentifyLimiter", "SyncRedisIdentifyLimiter"]
