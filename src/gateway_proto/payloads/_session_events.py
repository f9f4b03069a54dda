"""The ``d`` of the session dispatch events.

READY, RESUMED and RATE_LIMITED.

One job: these payload types; the table from event name to type is
:data:`gateway_proto.payloads._events.DISPATCH_EVENTS`.
"""

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake
from ._guilds import PartialApplication, UnavailableGuild
from ._users import User

__all__ = [
    "RateLimited",
    "RateLimitedRequestGuildMembers",
    "Ready",
    "Resumed",
]

# -- session ---------------------------------------------------------------------


class Ready(TypedDict):
    """READY: the new session, the bot's user and its guilds (all unavailable at first)."""

    v: int
    user: User
    guilds: list[UnavailableGuild]
    session_id: str
    resume_gateway_url: str
    shard: NotRequired[list[int]]
    application: PartialApplication


class Resumed(TypedDict, total=False):
    """RESUMED: the replay is over (Discord documents no fields)."""


class RateLimitedRequestGuildMembers(TypedDict):
    """RATE_LIMITED's ``meta`` for a rate-limited Request Guild Members (op 8)."""

    guild_id: Snowflake
    nonce: NotRequired[str]


class RateLimited(TypedDict):
    """RATE_LIMITED: a send event was refused by Discord's rate limit."""

    opcode: int
    retry_after: float
    meta: RateLimitedRequestGuildMembers
