"""Every Redis key and stream name this package uses, in one place.

All keys of one bot live under ``{namespace}:{bot}:``, where ``bot`` is a short hash
of the token: every process started with the same token finds the same keys, and
the token itself is never written to Redis. docs/scaling.md lists the keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["DEFAULT_NAMESPACE", "Keys", "bot_id"]

#: The first part of every key (change it to run two deployments on one Redis).
DEFAULT_NAMESPACE = "spectacles"


def bot_id(token: str) -> str:
    """Return a short, stable id of a token (16 hex digits of its SHA-256), never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one bot (see the module docstring).

    Args:
        prefix: ``{namespace}:{bot_id(token)}``; build it with :meth:`for_token`.

    """

    prefix: str

    @classmethod
    def for_token(cls, token: str, namespace: str = DEFAULT_NAMESPACE) -> Keys:
        """Return the keys of the bot that ``token`` belongs to."""
        return cls(f"{namespace}:{bot_id(token)}")

    # -- identify concurrency (gateway_redis.identify) ----------------------------------
    def identify_bucket(self, bucket: int) -> str:
        """Return the key held for one identify window by the bucket's last identify."""
        return f"{self.prefix}:identify:bucket:{bucket}"

    @property
    def session_budget(self) -> str:
        """The shared session start budget (remaining identifies; expires at the reset)."""
        return f"{self.prefix}:identify:budget"

    # -- shard leases and saved sessions (gateway_redis.leases, .sessions) --------------
    def lease(self, shard_count: int, shard_id: int) -> str:
        """Return the lease key of one shard: its owner and fencing token."""
        return f"{self.prefix}:lease:{shard_count}:{shard_id}"

    def fence(self, shard_count: int, shard_id: int) -> str:
        """Return the counter that hands out increasing fencing tokens for one shard."""
        return f"{self.prefix}:fence:{shard_count}:{shard_id}"

    def process(self, owner: str) -> str:
        """Return a gateway process's liveness record (what it runs, when it last said so)."""
        return f"{self.prefix}:process:{owner}"

    def session(self, shard_count: int, shard_id: int) -> str:
        """Return the key of one shard's saved session (id, sequence, resume URL)."""
        return f"{self.prefix}:session:{shard_count}:{shard_id}"

    # -- events to workers and commands back (gateway_redis.streams, .commands) ---------
    @property
    def events(self) -> str:
        """The one stream of every dispatch (layout ``single``)."""
        return f"{self.prefix}:events"

    def events_named(self, name: str) -> str:
        """Return the stream of one dispatch name (layout ``per-event``)."""
        return f"{self.prefix}:events:{name}"

    def commands(self, shard_id: int) -> str:
        """Return the stream of commands workers send to one shard's owner."""
        return f"{self.prefix}:commands:{shard_id}"
