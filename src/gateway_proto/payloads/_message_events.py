"""The ``d`` of the message dispatch events.

Deletes, reactions and poll votes (creates and updates are :class:`Message`).

One job: these payload types; the table from event name to type is
:data:`gateway_proto.payloads._events.DISPATCH_EVENTS`.
"""

from typing import TypeAlias

from typing_extensions import NotRequired, TypedDict

from ._base import Snowflake
from ._messages import Message
from ._users import Member, PartialEmoji

__all__ = [
    "MessageCreate",
    "MessageDelete",
    "MessageDeleteBulk",
    "MessagePollVote",
    "MessagePollVoteAdd",
    "MessagePollVoteRemove",
    "MessageReactionAdd",
    "MessageReactionRemove",
    "MessageReactionRemoveAll",
    "MessageReactionRemoveEmoji",
    "MessageUpdate",
]

# -- messages ----------------------------------------------------------------------

MessageCreate: TypeAlias = Message
MessageUpdate: TypeAlias = Message


class MessageDelete(TypedDict):
    """MESSAGE_DELETE."""

    id: Snowflake
    channel_id: Snowflake
    guild_id: NotRequired[Snowflake]


class MessageDeleteBulk(TypedDict):
    """MESSAGE_DELETE_BULK."""

    ids: list[Snowflake]
    channel_id: Snowflake
    guild_id: NotRequired[Snowflake]


class MessageReactionRemove(TypedDict):
    """MESSAGE_REACTION_REMOVE: a user took a reaction back."""

    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: NotRequired[Snowflake]
    emoji: PartialEmoji
    burst: bool
    type: int


class MessageReactionAdd(MessageReactionRemove):
    """MESSAGE_REACTION_ADD: a user reacted (with its member in guilds)."""

    member: NotRequired[Member]
    message_author_id: NotRequired[Snowflake]
    burst_colors: NotRequired[list[str]]


class MessageReactionRemoveAll(TypedDict):
    """MESSAGE_REACTION_REMOVE_ALL."""

    channel_id: Snowflake
    message_id: Snowflake
    guild_id: NotRequired[Snowflake]


class MessageReactionRemoveEmoji(MessageReactionRemoveAll):
    """MESSAGE_REACTION_REMOVE_EMOJI: every reaction of one emoji was removed."""

    emoji: PartialEmoji


class MessagePollVote(TypedDict):
    """MESSAGE_POLL_VOTE_ADD and MESSAGE_POLL_VOTE_REMOVE (one event per answer)."""

    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: NotRequired[Snowflake]
    answer_id: int


MessagePollVoteAdd: TypeAlias = MessagePollVote
MessagePollVoteRemove: TypeAlias = MessagePollVote
