"""Sessions that survive a restart: each shard's resumable state, saved in Redis.

Theory of operation: a shard's ``session_id``, ``seq`` and ``resume_gateway_url``
live in a hash (``Keys.session(count, id)``) that expires ``ttl`` seconds after its
last write (default: ``ShardConfig.max_resume_age``, beyond which a resume is not
tried anyway). Saving is cheap on purpose: not a write per event, but a pipelined
round every ``interval`` seconds (1 s by default) holding only the shards whose
session changed (plus, now and then, unchanged ones, to keep them from expiring).
What the save leaves out is bounded by ``interval``, and the resume replays it:
Discord sends every dispatch after the saved ``seq`` again.

A save is fenced: the Lua script writes only while the shard's lease still holds
the saver's owner and fencing token, so a process that lost a lease can never
overwrite the session of the shard's new owner. The decision of *what* to write
is the pure :class:`SessionSaver`; :func:`save_sessions` and
:func:`load_sessions` are the thin Redis side (``redis.asyncio``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_proto.config import DEFAULT_MAX_RESUME_AGE
from gateway_proto.session import Session

from ._keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = [
    "DEFAULT_SAVE_INTERVAL",
    "SessionSaver",
    "decode_session",
    "encode_session",
    "load_sessions",
    "save_sessions",
]

_log = logging.getLogger("gateway_redis.sessions")

#: Seconds between two save rounds: the most a killed process's successor replays.
DEFAULT_SAVE_INTERVAL = 1.0


def encode_session(session: Session) -> dict[str, str]:
    """Return the hash fields of a saved session (``seq`` is ``""`` for none)."""
    return {
        "session_id": session.session_id,
        "seq": "" if session.sequence is None else str(session.sequence),
        "resume_url": session.resume_url,
    }


def decode_session(fields: Mapping[Any, Any]) -> Session | None:
    """Rebuild a saved session from its hash fields; ``None`` if absent or malformed."""
    if not fields:
        return None
    text = {_str(k): _str(v) for k, v in fields.items()}
    try:
        seq = text.get("seq", "")
        return Session.from_dict(
            {
                "session_id": text["session_id"],
                "sequence": int(seq) if seq else None,
                "resume_url": text["resume_url"],
            }
        )
    except (KeyError, ValueError) as exc:
        _log.warning("ignoring a malformed saved session (%s): the shard identifies", exc)
        return None


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class SessionSaver:
    """Decides which sessions a save round writes (pure; ``now`` given).

    Args:
        ttl: seconds a saved session lives after its last write.
        refresh: an unchanged session is written again once its last write is
            this old (default ``ttl / 3``), so that an idle shard's session never
            expires while the shard runs.

    """

    ttl: float = DEFAULT_MAX_RESUME_AGE
    refresh: float | None = None
    _written: dict[int, tuple[Session, float]] = field(default_factory=dict)

    @property
    def refresh_every(self) -> float:
        """Seconds after which an unchanged session is written again."""
        return self.ttl / 3 if self.refresh is None else self.refresh

    def due(self, current: Mapping[int, Session | None], now: float) -> dict[int, Session]:
        """Return the sessions to write now: changed ones, and unchanged ones due a refresh."""
        out = {}
        for shard_id, session in current.items():
            if session is None:
                continue  # nothing resumable (yet): the last saved one stays
            last = self._written.get(shard_id)
            if last is None or last[0] != session or now - last[1] >= self.refresh_every:
                out[shard_id] = session
        return out

    def saved(self, shard_id: int, session: Session, now: float) -> None:
        """Record that ``session`` was written at ``now``."""
        self._written[shard_id] = (session, now)

    def forget(self, shard_id: int | None = None) -> None:
        """Forget what was written (for one shard, or all: Redis lost its data)."""
        if shard_id is None:
            self._written.clear()
        else:
            self._written.pop(shard_id, None)


# KEYS: session, lease. ARGV: lease value, ttl_ms, session_id, seq, resume_url.
_SAVE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'session_id', ARGV[3], 'seq', ARGV[4], 'resume_url', ARGV[5],
           'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


async def save_sessions(
    redis: aioredis.Redis,
    keys: Keys,
    shard_count: int,
    sessions: Iterable[tuple[int, Session, str]],
    *,
    ttl: float = DEFAULT_MAX_RESUME_AGE,
) -> dict[int, bool]:
    """Write sessions in one pipelined round, each only while its lease is ours.

    Args:
        redis: the client.
        keys: the bot's keys.
        shard_count: the total shard count.
        sessions: ``(shard_id, session, lease_value)`` triples (see ``lease_value``).
        ttl: seconds each saved session lives after this write.

    Returns:
        Whether each shard's session was written (``False``: the lease is not ours).

    """
    items = list(sessions)
    if not items:
        return {}
    script = redis.register_script(_SAVE)
    ttl_ms = max(1, round(ttl * 1000))
    async with redis.pipeline(transaction=False) as pipe:
        for shard_id, session, value in items:
            fields = encode_session(session)
            await script(
                keys=[keys.session(shard_count, shard_id), keys.lease(shard_count, shard_id)],
                args=[value, ttl_ms, fields["session_id"], fields["seq"], fields["resume_url"]],
                client=pipe,
            )
        answers = await pipe.execute()
    return {item[0]: bool(a) for item, a in zip(items, answers, strict=True)}


async def load_sessions(
    redis: aioredis.Redis, keys: Keys, shard_count: int, ids: Iterable[int]
) -> dict[int, Session]:
    """Return the saved sessions of ``ids`` (those that have one)."""
    ids = list(ids)
    if not ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for shard_id in ids:
            pipe.hgetall(keys.session(shard_count, shard_id))
        answers = await pipe.execute()
    out = {}
    for shard_id, fields in zip(ids, answers, strict=True):
        session = decode_session(fields)
        if session is not None:
            out[shard_id] = session
    return out
