"""What the fake answers to each client payload, and the rules it enforces like Discord.

Theory of operation: :func:`open_connection` checks the query string and sends HELLO.
:func:`handle` takes one decoded payload and either queues answers on the connection
or closes it with Discord's close code (PROTOCOL.md 3, 4, 7, 8):

* unknown opcode 4001, undecodable 4002 (checked by the reader), anything but
  heartbeat/identify/resume before a session 4003, bad token 4004, second identify
  4005, bad resume ``seq`` 4007, bad shard 4010, too many guilds 4011, bad intents
  4013, privileged intents not allowed 4014;
* identifies faster than ``max_concurrency`` per window (bucket ``shard_id %
  max_concurrency``) get op 9 ``false``, so does a resume of an unknown session;
* a full member list requested again within the window gets a RATE_LIMITED dispatch.

Habits of servers that exist, each a :class:`~gateway_testing.FakeOptions` switch
(off by default): READY, READY_SUPPLEMENTAL and GUILD_CREATE numbered 0
(``zero_sequence_ready``), SESSIONS_REPLACE before READY
(``sessions_replace_before_ready``), op 9 ``false`` for every RESUME
(``resume_unsupported``), and a replay that starts at the client's ``seq``
inclusive (``replay_inclusive``).

Handlers never block: they only queue, so the reader keeps reading. They are functions
of the connection's records (:class:`~gateway_testing._peer.ConnectionBase`), the
server's app-wide state (:class:`~gateway_testing._peer.Owner`) and ``now``: no
socket, no task, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway_testing import corpus
from gateway_testing._codec import DecodeFailure, MissingDependency, decode, require
from gateway_testing._compress import Compressor
from gateway_testing._options import ALL_INTENTS
from gateway_testing._peer import ConnectionBase
from gateway_testing._session import Dispatch

__all__ = ["decode_client", "handle", "make_compressor", "open_connection"]

logger = logging.getLogger("gateway_testing")

_CLIENT_OPS = frozenset({1, 2, 3, 4, 6, 8, 31, 43})
_BEFORE_SESSION = frozenset({1, 2, 6})
_STATUSES = frozenset({"online", "dnd", "idle", "invisible", "offline"})
_GUILD_MEMBERS = 2
_GUILD_PRESENCES = 256


def decode_client(message: str | bytes, encoding: str) -> dict[str, Any]:
    """Decode a client message (JSON may come as text or binary; ETF must be binary)."""
    if encoding == "json" and isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeFailure("a binary frame that is not UTF-8 JSON") from exc
    return decode(message, encoding)


def make_compressor(conn: ConnectionBase) -> Compressor:
    """Return the connection's compressor (none if the query's choice is unusable)."""
    try:
        return Compressor(conn.compress, end_frames=conn.fake.options.zstd_end_frames)
    except (ValueError, MissingDependency):
        return Compressor(None)  # open_connection closes with the reason


def open_connection(conn: ConnectionBase, now: float) -> None:
    """Check ``User-Agent``, ``v``, ``encoding``, ``compress``; then send HELLO (or close)."""
    options = conn.fake.options
    if options.require_user_agent and not conn.user_agent:
        conn.close_with(4002, "User-Agent header is required")
        return
    if conn.query.get("v") != "10":
        conn.close_with(4012, "Invalid API version.")
        return
    problem = None
    if conn.encoding not in options.encodings:
        problem = f"encoding {conn.encoding!r} is not served here"
    elif conn.compress not in options.compressions:
        problem = f"compress {conn.compress!r} is not served here"
    else:
        try:
            require(conn.encoding)
            require(conn.compress or "")
        except MissingDependency as exc:
            logger.error("connection %d: %s", conn.number, exc)
            problem = str(exc)
    if problem is not None:
        conn.close_with(4002, problem)
        return
    conn.last_heartbeat = now
    if conn.fake.reconnects_before_hello > 0:
        conn.fake.reconnects_before_hello -= 1
        conn.send_payload({"op": 7, "d": None})
        return
    conn.hello_at = conn.last_heartbeat
    conn.send_payload(
        {"op": 10, "d": {"heartbeat_interval": round(options.heartbeat_interval * 1000)}}
    )


def handle(conn: ConnectionBase, payload: dict[str, Any], now: float) -> None:
    """Answer one decoded client payload (queue replies, or close with a code)."""
    op, d = payload.get("op"), payload.get("d")
    if not isinstance(op, int) or isinstance(op, bool) or op not in _CLIENT_OPS:
        conn.close_with(4001, f"Unknown opcode {op!r}.")
        return
    if op not in _BEFORE_SESSION and conn.session is None:
        conn.close_with(4003, "Not authenticated.")
        return
    _HANDLERS[op](conn, d, now)


def _heartbeat(conn: ConnectionBase, d: Any, now: float) -> None:
    if d is not None and (not isinstance(d, int) or isinstance(d, bool)):
        conn.close_with(4001, "Invalid heartbeat payload.")
        return
    first = conn.first_heartbeat_deadline()
    if first is not None and now > first:
        conn.first_heartbeat_late()
        return
    if conn.first_heartbeat_at is None:
        conn.first_heartbeat_at = now
    conn.last_heartbeat = now
    if conn.acking:
        conn.send_payload({"op": 11, "d": None})


def _token_ok(conn: ConnectionBase, token: Any) -> bool:
    if not isinstance(token, str):
        return False
    return bool(token.removeprefix("Bot ") == conn.fake.options.token)


def _identify(conn: ConnectionBase, d: Any, now: float) -> None:
    fake, options = conn.fake, conn.fake.options
    if conn.session is not None:
        conn.close_with(4005, "Already authenticated.")
        return
    if not isinstance(d, dict) or not isinstance(d.get("properties"), dict):
        conn.close_with(4001, "Invalid identify payload.")
        return
    if not _token_ok(conn, d.get("token")):
        conn.close_with(4004, "Authentication failed.")
        return
    intents = d.get("intents")
    if (
        not isinstance(intents, int)
        or isinstance(intents, bool)
        or intents < 0
        or intents & ~ALL_INTENTS
    ):
        conn.close_with(4013, "Invalid intent(s).")
        return
    if intents & ~options.privileged_intents & (2 | 256 | 32768):
        conn.close_with(4014, "Disallowed intent(s).")
        return
    shard = d.get("shard", [0, 1])
    if (
        not isinstance(shard, list)
        or len(shard) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
        or not 0 <= shard[0] < shard[1]
        or shard[1] % options.shard_count_multiple
    ):
        conn.close_with(4010, "Invalid shard.")
        return
    threshold = d.get("large_threshold", 50)
    if not isinstance(threshold, int) or not 50 <= threshold <= 250:
        conn.close_with(4001, "Invalid large_threshold.")
        return
    guild_ids = fake.guilds_for(shard[0], shard[1])
    if len(guild_ids) > options.max_guilds_per_shard:
        conn.close_with(4011, "Sharding required.")
        return
    if not fake.identify_allowed(shard[0], now):
        conn.identify_rejected += 1
        conn.send_payload({"op": 9, "d": False})
        return
    if not fake.take_session_start(now):
        conn.close_with(4004, "Authentication failed (session start limit exhausted).")
        return
    conn.payload_compression = bool(d.get("compress")) and conn.encoding == "json"
    session = fake.new_session((shard[0], shard[1]), guild_ids, intents, conn)
    ready = corpus.ready_payload(
        session_id=session.session_id,
        resume_url=fake.resume_gateway_url,
        shard=(shard[0], shard[1]),
        guild_ids=guild_ids,
    )
    zero = options.zero_sequence_ready

    def number(t: str, data: Any) -> Dispatch:
        # Numbered 0, a server that exists keeps them out of the sequence (and the replay).
        return Dispatch(0, t, data) if zero else session.number(t, data)

    if options.sessions_replace_before_ready:
        conn.send_dispatch(number("SESSIONS_REPLACE", _sessions_replace(session.session_id)))
    conn.send_dispatch(number("READY", ready))
    if zero:
        supplemental: dict[str, Any] = {"guilds": [], "merged_members": [], "merged_presences": {}}
        conn.send_dispatch(number("READY_SUPPLEMENTAL", supplemental))
    for guild_id in guild_ids:
        data = corpus.guild_create(guild_id, seed=options.seed, members=options.members_per_guild)
        conn.send_dispatch(number("GUILD_CREATE", data))
    conn._notify()


def _sessions_replace(session_id: str) -> list[dict[str, Any]]:
    """SESSIONS_REPLACE's ``d``: the user's sessions (here: the one being started)."""
    client_info = {"version": 0, "os": "other", "client": "bot"}
    return [
        {"session_id": session_id, "client_info": client_info, "status": "online", "activities": []}
    ]


def _resume(conn: ConnectionBase, d: Any, now: float) -> None:
    fake = conn.fake
    if conn.session is not None:
        conn.close_with(4005, "Already authenticated.")
        return
    if not isinstance(d, dict) or not isinstance(d.get("session_id"), str):
        conn.close_with(4001, "Invalid resume payload.")
        return
    if not _token_ok(conn, d.get("token")):
        conn.close_with(4004, "Authentication failed.")
        return
    session = fake.live_session(d["session_id"], now)
    if session is not None and fake.options.resume_unsupported:
        session.invalidated = True  # no resume support at all: the session is over
        session = None
    if session is None:
        conn.send_payload({"op": 9, "d": False})
        return
    seq = d.get("seq")
    inclusive = fake.options.replay_inclusive
    missed = (
        session.missed(seq, inclusive=inclusive)
        if isinstance(seq, int) and not isinstance(seq, bool)
        else None
    )
    if missed is None:
        session.invalidated = True
        conn.close_with(4007, "Invalid seq.")
        return
    fake.attach(session, conn)
    conn.resumed = True
    for dispatch in missed:
        conn.send_dispatch(dispatch)
    conn.send_dispatch(session.number("RESUMED", {"_trace": ['["gateway-fake",{"micros":0}]']}))
    conn._notify()


def _presence(conn: ConnectionBase, d: Any, now: float) -> None:
    if (
        not isinstance(d, dict)
        or d.get("status") not in _STATUSES
        or not isinstance(d.get("activities"), list)
    ):
        conn.close_with(4001, "Invalid presence payload.")


def _voice_state(conn: ConnectionBase, d: Any, now: float) -> None:
    if not isinstance(d, dict) or not isinstance(d.get("guild_id"), str):
        conn.close_with(4001, "Invalid voice state payload.")
        return
    session = conn.session
    assert session is not None
    guild_id, channel_id = d["guild_id"], d.get("channel_id")
    state = corpus.voice_state_update(
        guild_id, channel_id, self_mute=bool(d.get("self_mute")), self_deaf=bool(d.get("self_deaf"))
    )
    conn.send_dispatch(session.number("VOICE_STATE_UPDATE", state))
    if channel_id is not None:
        server = corpus.voice_server_update(guild_id)
        conn.send_dispatch(session.number("VOICE_SERVER_UPDATE", server))


def _request_members(conn: ConnectionBase, d: Any, now: float) -> None:
    fake, options = conn.fake, conn.fake.options
    session = conn.session
    assert session is not None
    if not isinstance(d, dict) or not isinstance(d.get("guild_id"), (str, int)):
        conn.close_with(4001, "Invalid request guild members payload.")
        return
    guild_id = str(d["guild_id"])
    query, user_ids, limit = d.get("query"), d.get("user_ids"), d.get("limit", 0)
    if (query is None) == (user_ids is None) or not isinstance(limit, int):
        conn.close_with(4001, "Request guild members needs one of query or user_ids.")
        return
    nonce = d.get("nonce")
    if not isinstance(nonce, str) or len(nonce.encode()) > 32:
        nonce = None  # Discord ignores an invalid nonce: the chunks then carry none
    if guild_id not in session.guild_ids:
        return  # not this shard's guild: nothing comes back
    members = corpus.guild_members(guild_id, seed=options.seed, members=options.members_per_guild)
    not_found: list[Any] = []
    if user_ids is not None:
        wanted = [str(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])][:100]
        by_id = {m["user"]["id"]: m for m in members}
        picked = [by_id[u] for u in wanted if u in by_id]
        not_found = [u for u in wanted if u not in by_id]
    elif query == "" and limit == 0:
        if not session.intents & _GUILD_MEMBERS:
            conn.close_with(4013, "Requesting all members needs the GUILD_MEMBERS intent.")
            return
        retry_after = fake.full_member_request(guild_id, now)
        if retry_after is not None:
            meta: dict[str, Any] = {"guild_id": guild_id}
            if nonce is not None:
                meta["nonce"] = nonce
            limited = {"opcode": 8, "retry_after": retry_after, "meta": meta}
            conn.send_dispatch(session.number("RATE_LIMITED", limited))
            return
        picked = members
    else:
        prefix = str(query).lower()
        cap = min(limit or 100, 100)
        picked = [
            m
            for m in members
            if m["user"]["username"].lower().startswith(prefix)
            or (m["nick"] or "").lower().startswith(prefix)
        ][:cap]
    size = max(1, options.member_chunk_size)
    chunks = [picked[i : i + size] for i in range(0, len(picked), size)] or [[]]
    presences = bool(d.get("presences")) and bool(session.intents & _GUILD_PRESENCES)
    for index, chunk in enumerate(chunks):
        data: dict[str, Any] = {
            "guild_id": guild_id,
            "members": chunk,
            "chunk_index": index,
            "chunk_count": len(chunks),
        }
        if not_found and index == 0:
            data["not_found"] = not_found
        if presences:
            data["presences"] = [
                {
                    "user": {"id": m["user"]["id"]},
                    "status": "online",
                    "activities": [],
                    "client_status": {"desktop": "online"},
                }
                for m in chunk
            ]
        if nonce is not None:
            data["nonce"] = nonce
        conn.send_dispatch(session.number("GUILD_MEMBERS_CHUNK", data))


def _soundboard(conn: ConnectionBase, d: Any, now: float) -> None:
    session = conn.session
    assert session is not None
    if not isinstance(d, dict) or not isinstance(d.get("guild_ids"), list):
        conn.close_with(4001, "Invalid request soundboard sounds payload.")
        return
    seed = conn.fake.options.seed
    for guild_id in (str(g) for g in d["guild_ids"]):
        if guild_id in session.guild_ids:
            data = {
                "guild_id": guild_id,
                "soundboard_sounds": corpus.soundboard_sounds(guild_id, seed=seed),
            }
            conn.send_dispatch(session.number("SOUNDBOARD_SOUNDS", data))


def _channel_info(conn: ConnectionBase, d: Any, now: float) -> None:
    session = conn.session
    assert session is not None
    if not isinstance(d, dict) or not isinstance(d.get("guild_id"), str):
        conn.close_with(4001, "Invalid request channel info payload.")
        return
    fields = [f for f in d.get("fields") or [] if isinstance(f, str)]
    data = corpus.channel_info(d["guild_id"], seed=conn.fake.options.seed, fields=fields)
    conn.send_dispatch(session.number("CHANNEL_INFO", data))


_HANDLERS: dict[int, Callable[[ConnectionBase, Any, float], None]] = {
    1: _heartbeat,
    2: _identify,
    3: _presence,
    4: _voice_state,
    6: _resume,
    8: _request_members,
    31: _soundboard,
    43: _channel_info,
}
