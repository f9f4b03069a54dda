"""Fatal errors of ``spectacles-gateway``, explained: one line each, never a traceback.

:func:`explain` says what an error means and what to do about it; the helpers
flatten anyio's exception groups and skip the cancellations in them, so that the
line names the error that ended the run.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway_proto.driver_support import GatewayRequestError, InvalidTokenError
from gateway_proto.errors import (
    AuthenticationFailedError,
    DisallowedIntentsError,
    FatalCloseError,
    InvalidIntentsError,
    InvalidShardError,
    ShardingRequiredError,
)

from .values import intent_names, privileged_names

if TYPE_CHECKING:
    from .options import ListenOptions

__all__ = ["OutOfTimeError", "explain"]


def explain(error: BaseException, options: ListenOptions | None = None) -> str:
    """Return one line saying what a fatal error means and what to do about it."""
    if isinstance(error, DisallowedIntentsError):
        asked = privileged_names(options.intents) if options is not None else []
        which = ", ".join(asked) if asked else "a privileged intent"
        return (
            f"Discord refused the privileged intents {which} (close code 4014): enable them "
            "for the bot in the Developer Portal (Bot > Privileged Gateway Intents), "
            "or leave them out of --intents"
        )
    if isinstance(error, AuthenticationFailedError):
        return (
            "Discord refused the token (close code 4004, authentication failed): "
            "check --token or DISCORD_TOKEN"
        )
    if isinstance(error, InvalidTokenError):
        return (
            "the token was refused (HTTP 401 on GET /gateway/bot): check --token or DISCORD_TOKEN"
        )
    if isinstance(error, InvalidIntentsError):
        names = ",".join(intent_names(options.intents)) if options is not None else "?"
        return f"Discord refused the intents bitfield ({names}) as invalid (close code 4013)"
    if isinstance(error, ShardingRequiredError):
        return (
            "the bot is in too many guilds for this shard count (close code 4011): "
            "use --shards auto or more shards"
        )
    if isinstance(error, InvalidShardError):
        return (
            "Discord refused the shard id or count (close code 4010): use --shards auto, "
            "or a count that is a multiple of the bot's shard factor"
        )
    if isinstance(error, FatalCloseError):
        return f"Discord closed the connection for good: {error}"
    if isinstance(error, GatewayRequestError):
        return f"could not ask for the gateway URL: {error}"
    if isinstance(error, OSError):
        return f"could not connect: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """Flatten exception groups (anyio task groups raise them) into their leaves."""
    inner = getattr(error, "exceptions", None)
    if isinstance(inner, tuple):
        for sub in inner:
            yield from _leaves(sub)
    else:
        yield error


def _is_cancellation(error: BaseException) -> bool:
    # Not anyio.get_cancelled_exc_class(): this runs after the event loop has ended,
    # where that call raises (and turned one error into two tracebacks).
    if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(error, trio.Cancelled)


def _first_real_error(error: BaseException) -> BaseException | None:
    for leaf in _leaves(error):
        if not _is_cancellation(leaf):
            return leaf
    return None


class OutOfTimeError(GatewayRequestError):
    """``--duration`` ran out while ``GET /gateway/bot`` was still being retried."""

    def __init__(self, duration: float) -> None:
        super().__init__(
            f"GET /gateway/bot did not succeed within --duration {duration:g} s "
            "(-v shows each failed attempt)"
        )
