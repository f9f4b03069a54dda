"""gateway_anyio: the Discord gateway on anyio (asyncio and trio).

``Gateway`` asks Discord how to connect, ``Shard`` keeps one connection alive,
``Cluster`` runs many shards with a shared identify limiter. The protocol itself
lives in :mod:`gateway_proto`; this package only moves bytes and sleeps.
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
from ._limiter import IdentifyGrant, IdentifyLimiter, InProcessIdentifyLimiter
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
