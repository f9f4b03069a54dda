"""gateway_proto: a sans-I/O Discord gateway (API v10) core.

One :class:`GatewayConnection` per WebSocket: bytes and ``now`` in, events and
bytes out, no sockets, clocks, threads or global randomness. See ``docs/core.md``.
Drivers: ``gateway_anyio`` (async) and ``gateway_sync`` (blocking).
"""

from __future__ import annotations

from ._state import ConnectionState
from ._version import __version__
from .backoff import Backoff
from .close_codes import (
    RESUMABLE_CLOSE,
    CloseAction,
    CloseCode,
    action_for_close,
    close_code_meaning,
    is_fatal,
    is_sendable,
    keeps_session,
)
from .commands import (
    Activity,
    ActivityType,
    Command,
    RequestChannelInfo,
    RequestGuildMembers,
    RequestSoundboardSounds,
    Snowflake,
    Status,
    UpdatePresence,
    UpdateVoiceState,
)
from .config import (
    DEFAULT_GATEWAY_URL,
    DEFAULT_HEARTBEAT_GRID,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_USER_AGENT,
    Compression,
    Encoding,
    ShardConfig,
)
from .connection import GatewayConnection
from .errors import (
    AuthenticationFailedError,
    CommandNotSentError,
    CompressionError,
    ConfigError,
    DecodeError,
    DisallowedIntentsError,
    FatalCloseError,
    GatewayError,
    HandshakeError,
    InvalidApiVersionError,
    InvalidCommandError,
    InvalidIntentsError,
    InvalidShardError,
    LocalProtocolError,
    MessageTooLargeError,
    ProtocolError,
    ShardingRequiredError,
    UnsafeResumeUrlError,
    fatal_error_for,
)
from .events import (
    CloseCause,
    Closed,
    CloseInitiator,
    Dispatch,
    Event,
    HeartbeatAck,
    Hello,
    IdentifyNeeded,
    InvalidSession,
    Opened,
    PayloadSent,
    ProtocolWarning,
    ReconnectRequested,
)
from .heartbeat import Heartbeater
from .identify import (
    IDENTIFY_MARGIN,
    IDENTIFY_WINDOW,
    IdentifySchedule,
    IdentifySlot,
    SessionStartLimit,
)
from .intents import Intents
from .opcodes import Opcode
from .ratelimit import COMMAND_LIMIT, COMMAND_WINDOW, CommandRateLimiter, heartbeat_reserve
from .reconnect import CONNECT_FAILED, RESTART_REQUESTED, Reconnector
from .session import Session

__all__ = [
    "COMMAND_LIMIT",
    "COMMAND_WINDOW",
    "CONNECT_FAILED",
    "DEFAULT_GATEWAY_URL",
    "DEFAULT_HEARTBEAT_GRID",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_USER_AGENT",
    "IDENTIFY_MARGIN",
    "IDENTIFY_WINDOW",
    "RESTART_REQUESTED",
    "RESUMABLE_CLOSE",
    "Activity",
    "ActivityType",
    "AuthenticationFailedError",
    "Backoff",
    "CloseAction",
    "CloseCause",
    "CloseCode",
    "CloseInitiator",
    "Closed",
    "Command",
    "CommandNotSentError",
    "CommandRateLimiter",
    "Compression",
    "CompressionError",
    "ConfigError",
    "ConnectionState",
    "DecodeError",
    "DisallowedIntentsError",
    "Dispatch",
    "Encoding",
    "Event",
    "FatalCloseError",
    "GatewayConnection",
    "GatewayError",
    "HandshakeError",
    "HeartbeatAck",
    "Heartbeater",
    "Hello",
    "IdentifyNeeded",
    "IdentifySchedule",
    "IdentifySlot",
    "Intents",
    "InvalidApiVersionError",
    "InvalidCommandError",
    "InvalidIntentsError",
    "InvalidSession",
    "InvalidShardError",
    "LocalProtocolError",
    "MessageTooLargeError",
    "Opcode",
    "Opened",
    "PayloadSent",
    "ProtocolError",
    "ProtocolWarning",
    "ReconnectRequested",
    "Reconnector",
    "RequestChannelInfo",
    "RequestGuildMembers",
    "RequestSoundboardSounds",
    "Session",
    "SessionStartLimit",
    "ShardConfig",
    "ShardingRequiredError",
    "Snowflake",
    "Status",
    "UnsafeResumeUrlError",
    "UpdatePresence",
    "UpdateVoiceState",
    "__version__",
    "action_for_close",
    "close_code_meaning",
    "fatal_error_for",
    "heartbeat_reserve",
    "is_fatal",
    "is_sendable",
    "keeps_session",
]
