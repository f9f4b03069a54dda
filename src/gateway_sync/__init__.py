"""gateway_sync: the blocking driver (sockets and threads) for the Discord gateway.

The same API as :mod:`gateway_anyio`, name for name; only ``async``/``await``
differ. One I/O thread per shard drives a ``gateway_proto.GatewayConnection``;
handlers run on threads of their own, so a slow one never delays heartbeats.
See ``docs/sync.md``.
"""

from __future__ import annotations

from gateway_proto.driver_support import (
    ANY_DISPATCH,
    ANY_EVENT,
    CLOSE,
    CONNECT,
    DISCONNECT,
    ERROR,
    IDENTIFY_WAIT,
    OPEN,
    RECEIVE,
    SEND,
    STATE,
    Connected,
    GatewayEvent,
    GatewayInfo,
    GatewayRequestError,
    IdentifyWait,
    InvalidTokenError,
    ShardCounters,
    ShardState,
    StateChange,
    Stopped,
)

from ._cluster import Cluster
from ._events import DEFAULT_MAX_BUFFER, EventStream, Handler
from ._gateway import DEFAULT_API_BASE, Gateway
from ._limiter import (
    IdentifyCancelledError,
    IdentifyGrant,
    IdentifyLimiter,
    InProcessIdentifyLimiter,
)
from ._shard import Shard

__all__ = [
    "ANY_DISPATCH",
    "ANY_EVENT",
    "CLOSE",
    "CONNECT",
    "DEFAULT_API_BASE",
    "DEFAULT_MAX_BUFFER",
    "DISCONNECT",
    "ERROR",
    "IDENTIFY_WAIT",
    "OPEN",
    "RECEIVE",
    "SEND",
    "STATE",
    "Cluster",
    "Connected",
    "EventStream",
    "Gateway",
    "GatewayEvent",
    "GatewayInfo",
    "GatewayRequestError",
    "Handler",
    "IdentifyCancelledError",
    "IdentifyGrant",
    "IdentifyLimiter",
    "IdentifyWait",
    "InProcessIdentifyLimiter",
    "InvalidTokenError",
    "Shard",
    "ShardCounters",
    "ShardState",
    "StateChange",
    "Stopped",
]
