"""The library's exceptions: one root, and a small typed hierarchy below it.

Theory of operation: *local* errors mean the caller misused the API (they are
raised at once and leave the connection unchanged); *remote* errors mean the peer
broke the protocol (the connection turns them into a close and reports them inside
a :class:`~gateway_proto.events.Closed` event, so a driver meets them in one place);
*fatal close* errors mean Discord refused the bot for a reason that reconnecting
will not fix (bad token, intents, shard, API version).

No exception message ever contains the bot token.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailedError",
    "CommandNotSentError",
    "CompressionError",
    "ConfigError",
    "DecodeError",
    "DisallowedIntentsError",
    "FatalCloseError",
    "GatewayError",
    "HandshakeError",
    "InvalidApiVersionError",
    "InvalidCommandError",
    "InvalidIntentsError",
    "InvalidShardError",
    "LocalProtocolError",
    "MessageTooLargeError",
    "ProtocolError",
    "ShardingRequiredError",
    "fatal_error_for",
]


class GatewayError(Exception):
    """Root of every exception this library raises on purpose."""


class LocalProtocolError(GatewayError):
    """The caller did something the protocol or the connection's state forbids.

    Raised synchronously by the method that was misused; the connection's state is
    unchanged, so the caller may correct itself and go on.
    """


class InvalidCommandError(LocalProtocolError, ValueError):
    """A command failed validation (a field rule, or the 4096-byte payload limit).

    Raised before anything is queued, so nothing reaches Discord.
    """


class ConfigError(LocalProtocolError, ValueError):
    """A configuration value is invalid (a ``ShardConfig`` field, a driver option).

    A ``ValueError`` too, so ``except ValueError`` catches bad configuration as it
    catches any other bad value.
    """


class CommandNotSentError(LocalProtocolError):
    """A command accepted by ``send`` was never written: the shard stopped first.

    Raised by the waiting sends (``send_and_wait``, ``update_presence``); the plain
    ``send`` reports such commands in ``Stopped.unsent`` instead.

    Attributes:
        command: the command that was not sent.

    """

    def __init__(self, message: str, command: object) -> None:
        super().__init__(message)
        self.command = command

    @classmethod
    def stopped_first(cls, shard_id: int, command: object) -> CommandNotSentError:
        """Return the error for ``command``, which shard ``shard_id`` stopped before writing."""
        return cls(f"shard {shard_id} stopped before {type(command).__name__} was sent", command)


class ProtocolError(GatewayError):
    """The peer (Discord, or whatever is on the other end) broke the protocol.

    Attributes:
        close_code: the WebSocket close code the connection sends because of it.

    """

    def __init__(self, message: str, *, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


class HandshakeError(ProtocolError):
    """The WebSocket upgrade was refused (for example an HTTP 5xx or 404).

    Attributes:
        status_code: the HTTP status the server answered with, if any.

    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, close_code=1002)
        self.status_code = status_code


class DecodeError(ProtocolError):
    """A received payload could not be decoded (bad JSON, bad ETF, bad envelope)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, close_code=1007)


class CompressionError(ProtocolError):
    """Transport or payload decompression failed: corrupt or truncated input."""

    def __init__(self, message: str) -> None:
        super().__init__(message, close_code=1007)


class MessageTooLargeError(ProtocolError):
    """A message grew past its size cap (compressed or decompressed): a refused bomb."""

    def __init__(self, message: str) -> None:
        super().__init__(message, close_code=1009)


class UnsafeResumeUrlError(ProtocolError):
    """READY's ``resume_gateway_url`` would lower the connection's security.

    A ``ws://`` resume URL for a ``wss://`` connection would carry the token of the
    RESUME in clear text: the connection resumes on the base URL instead and
    reports this in a :class:`~gateway_proto.events.ProtocolWarning` (it does not
    close). The URLs in the message carry no credentials.
    """


class FatalCloseError(GatewayError):
    """Discord closed the connection with a code that reconnecting will not fix.

    Attributes:
        code: the close code (4004, 4010, 4011, 4012, 4013 or 4014).
        meaning: what the code means, from Discord's documentation.
        reason: the reason text the server sent, if any.

    """

    def __init__(self, code: int, meaning: str, reason: str = "") -> None:
        detail = f"{meaning} (close code {code})"
        if reason:
            detail = f"{detail}: {reason}"
        super().__init__(detail)
        self.code = code
        self.meaning = meaning
        self.reason = reason


class AuthenticationFailedError(FatalCloseError):
    """4004: the token is invalid."""


class InvalidShardError(FatalCloseError):
    """4010: the shard id or count is invalid (or not a multiple of the shard factor)."""


class ShardingRequiredError(FatalCloseError):
    """4011: the session would hold too many guilds; the bot must use more shards."""


class InvalidApiVersionError(FatalCloseError):
    """4012: the gateway API version is invalid."""


class InvalidIntentsError(FatalCloseError):
    """4013: the intents bitfield is invalid (undefined bits, or miscalculated)."""


class DisallowedIntentsError(FatalCloseError):
    """4014: a privileged intent was asked for that the application may not use."""


_FATAL_CLASSES: dict[int, type[FatalCloseError]] = {
    4004: AuthenticationFailedError,
    4010: InvalidShardError,
    4011: ShardingRequiredError,
    4012: InvalidApiVersionError,
    4013: InvalidIntentsError,
    4014: DisallowedIntentsError,
}


def fatal_error_for(code: int, meaning: str, reason: str = "") -> FatalCloseError:
    """Build the most specific :class:`FatalCloseError` for a fatal close code."""
    cls = _FATAL_CLASSES.get(code, FatalCloseError)
    return cls(code, meaning, reason)
