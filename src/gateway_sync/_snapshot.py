"""What other threads may know of a shard: an immutable record its I/O thread publishes.

Theory of operation: the core's ``GatewayConnection`` is not thread-safe, and even
reading one of its properties from another thread while the I/O thread is inside
``conn.events()`` would race it. So no other thread ever touches the connection.
The I/O thread builds a :class:`ShardSnapshot` and publishes it with one attribute
assignment (atomic in CPython, so a reader sees the old record or the new one,
never half of each): after each batch of events it drained, on every state change,
and when a connection starts or ends. Readers take ``shard._snapshot`` once and
read its fields: they get values that belong together, at the cost of being as
old as the last batch (a few milliseconds under load). Commands go the other way,
through the mailbox (``_mailbox``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_proto.driver_support import ShardState
from gateway_proto.events import Closed
from gateway_proto.session import Session

__all__ = ["ShardSnapshot"]


@dataclass(frozen=True, slots=True)
class ShardSnapshot:
    """One shard as its I/O thread last published it.

    Attributes:
        state: where the shard is in its life.
        session: the session to resume with (the live connection's, else the one
            the last connection left or the caller gave).
        latency: the live connection's last heartbeat round trip, in seconds.
        connected: a connection is open and has not ended: commands and closes
            posted to the mailbox reach it.
        since: when ``state`` began (``time.monotonic()``; 0.0 before any change).
        last_close: how the last connection that ended closed (``None`` before one).

    """

    state: ShardState = ShardState.IDLE
    session: Session | None = None
    latency: float | None = None
    connected: bool = False
    since: float = 0.0
    last_close: Closed | None = None
