"""What both drivers share that does no I/O (names, buffers, parsing, redaction).

Theory of operation: ``gateway_anyio`` and ``gateway_sync`` expose the same API name
for name; only ``async``/``await`` and the concurrency primitives differ. Every
decision they would otherwise both have to make lives here, as plain data and pure
functions, so the two drivers cannot drift apart. Nothing here reads the clock,
touches a socket or takes a lock: the drivers wrap these objects in their own
locks, events and conditions.

Every public name is importable from this package; each lives in one module, by job:

- :mod:`.shard_events`: the lifecycle event names (:data:`OPEN`, :data:`CLOSE`, ...,
  :data:`LIFECYCLE_EVENTS`), the envelope :class:`GatewayEvent`, the payloads
  (:class:`StateChange`, :class:`Connected`, :class:`Stopped`, :class:`IdentifyWait`),
  :class:`ShardState` and :class:`ShardCounters` (:class:`ConnectionTally` totals the
  core's per-connection counts); :class:`ShardReporting`, how a
  shard emits its events and changes state.
- :mod:`.handlers`: the handler registry (:class:`HandlerRegistry`).
- :mod:`.buffers`: bounded event buffers (:class:`DropOldestBuffer`) and the base of
  async iterators over them (:class:`BufferedAnext`).
- :mod:`.reactor`: what each core event means for a shard (:class:`ConnectionReactor`,
  :class:`Reaction`) and the steps only a driver can time (:class:`StepDeadline`,
  :data:`HANDSHAKE_TIMED_OUT`, :data:`READY_TIMED_OUT`, :data:`RESUMED_TIMED_OUT`),
  and the write-stall limit (:data:`WRITE_STALL_TIMEOUT`, :data:`WRITE_STALLED`).
- :mod:`.rejections`: connections that end before READY/RESUMED, counted and
  reported (:class:`EarlyEnds`, :class:`ConnectionRejectedError`).
- :mod:`.after_close`: what to do when a connection ends (:func:`after_connection`,
  :class:`NextAttempt`, :func:`describe_error`).
- :mod:`.urls`: where a gateway URL points (:func:`split_gateway_url`,
  :class:`GatewayAddress`, :class:`GatewayUrlError`).
- :mod:`.gateway_info`: ``GET /gateway/bot`` parsing and its fetch retry policy
  (:class:`GatewayInfo`, :class:`GatewayBase`, :class:`GatewayFetch`,
  :func:`parse_retry_after`, :class:`GatewayRequestError`, :class:`InvalidTokenError`,
  and the REST base: :data:`DEFAULT_API_BASE`, :data:`API_BASE_ENV`, :func:`resolve_api_base`).
- :mod:`.planning`: shard planning and start order (:func:`plan_shards`, :func:`plan_spawn`,
  :data:`SpawnSpec`, :class:`StartOrder`).
- :mod:`.identify_permits`: the identify wait queue and the in-process limiters'
  bookkeeping (:class:`IdentifyQueue`, :class:`IdentifyTicket`, :class:`IdentifyGrant`,
  :class:`InProcessLimiterBase`), and identify-sent tracking
  (:class:`TracksIdentifySends`, :func:`note_identify_sent`), budget feeding
  (:class:`TracksSessionStartLimit`, :func:`note_session_start_limit`) and
  :func:`announce_identify_wait`.
- :mod:`.unsent`: the unsent-command backlog across connections (:class:`UnsentCommands`),
  which also tells a waiting send whether its command was written (:data:`Done`).
- :mod:`.options`: options both drivers spell alike (:func:`compression_option`, which
  keeps the deprecated ``compress=`` working; :data:`NOT_GIVEN`).
- :mod:`.member_chunks`: member-chunk collection (:class:`MemberChunkCollector`,
  :class:`ChunkOutcome`; a ``RATE_LIMITED`` wait is clamped to ``MAX_RETRY_AFTER``).
- :mod:`.redaction`: token redaction (:func:`redact`, :class:`RedactingFilter`) and the
  shard's logger (:class:`ShardLogger`).
"""

from __future__ import annotations

from .after_close import NextAttempt, after_connection, describe_error
from .buffers import BufferedAnext, DropOldestBuffer
from .drain import HAND_OVER_BYTES, HAND_OVER_EVERY, EventDrain
from .gateway_info import (
    API_BASE_ENV,
    DEFAULT_API_BASE,
    GatewayBase,
    GatewayFetch,
    GatewayInfo,
    GatewayRequestError,
    InvalidTokenError,
    parse_retry_after,
    resolve_api_base,
)
from .handlers import HandlerRegistry
from .identify_permits import (
    IdentifyGrant,
    IdentifyQueue,
    IdentifyTicket,
    InProcessLimiterBase,
    TracksIdentifySends,
    TracksSessionStartLimit,
    announce_identify_wait,
    note_identify_sent,
    note_session_start_limit,
)
from .member_chunks import ChunkOutcome, MemberChunkCollector
from .options import NOT_GIVEN, NotGiven, compression_option
from .planning import SpawnSpec, StartOrder, plan_shards, plan_spawn
from .reactor import (
    HANDSHAKE_TIMED_OUT,
    READY_TIMED_OUT,
    RESUMED_TIMED_OUT,
    WRITE_STALL_TIMEOUT,
    WRITE_STALLED,
    ConnectionReactor,
    Reaction,
    StepDeadline,
)
from .redaction import RedactingFilter, ShardLogger, redact
from .rejections import ConnectionRejectedError, EarlyEnds
from .shard_events import (
    ANY_DISPATCH,
    ANY_EVENT,
    CLOSE,
    CONNECT,
    DISCONNECT,
    ERROR,
    IDENTIFY_WAIT,
    LIFECYCLE_EVENTS,
    MAX_DISPATCH_NAMES,
    OPEN,
    RECEIVE,
    SEND,
    STATE,
    Connected,
    ConnectionTally,
    GatewayEvent,
    IdentifyWait,
    ShardCounters,
    ShardReporting,
    ShardState,
    StateChange,
    Stopped,
    name_matches,
    new_gateway_event,
)
from .unsent import Done, UnsentCommands
from .urls import GatewayAddress, GatewayUrlError, split_gateway_url

__all__ = [
    "ANY_DISPATCH",
    "ANY_EVENT",
    "API_BASE_ENV",
    "CLOSE",
    "CONNECT",
    "DEFAULT_API_BASE",
    "DISCONNECT",
    "ERROR",
    "HANDSHAKE_TIMED_OUT",
    "HAND_OVER_BYTES",
    "HAND_OVER_EVERY",
    "IDENTIFY_WAIT",
    "LIFECYCLE_EVENTS",
    "MAX_DISPATCH_NAMES",
    "NOT_GIVEN",
    "OPEN",
    "READY_TIMED_OUT",
    "RECEIVE",
    "RESUMED_TIMED_OUT",
    "SEND",
    "STATE",
    "WRITE_STALLED",
    "WRITE_STALL_TIMEOUT",
    "BufferedAnext",
    "ChunkOutcome",
    "Connected",
    "ConnectionReactor",
    "ConnectionRejectedError",
    "ConnectionTally",
    "Done",
    "DropOldestBuffer",
    "EarlyEnds",
    "EventDrain",
    "GatewayAddress",
    "GatewayBase",
    "GatewayEvent",
    "GatewayFetch",
    "GatewayInfo",
    "GatewayRequestError",
    "GatewayUrlError",
    "HandlerRegistry",
    "IdentifyGrant",
    "IdentifyQueue",
    "IdentifyTicket",
    "IdentifyWait",
    "InProcessLimiterBase",
    "InvalidTokenError",
    "MemberChunkCollector",
    "NextAttempt",
    "NotGiven",
    "Reaction",
    "RedactingFilter",
    "ShardCounters",
    "ShardLogger",
    "ShardReporting",
    "ShardState",
    "SpawnSpec",
    "StartOrder",
    "StateChange",
    "StepDeadline",
    "Stopped",
    "TracksIdentifySends",
    "TracksSessionStartLimit",
    "UnsentCommands",
    "after_connection",
    "announce_identify_wait",
    "compression_option",
    "describe_error",
    "name_matches",
    "new_gateway_event",
    "note_identify_sent",
    "note_session_start_limit",
    "parse_retry_after",
    "plan_shards",
    "plan_spawn",
    "redact",
    "resolve_api_base",
    "split_gateway_url",
]
