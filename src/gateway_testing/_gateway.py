"""The public :class:`FakeGateway`: the fake's server, and a way to run it from a thread.

The server (:class:`~gateway_testing._server.GatewayServer`) runs on an event loop;
:meth:`FakeGateway.run_in_thread` wraps it for synchronous tests with
:mod:`gateway_testing._thread`, which sees only the server. So the thread runner
points at the server, and only this class, above both, knows the two.
"""

from __future__ import annotations

import contextlib

from gateway_testing._server import GatewayServer
from gateway_testing._thread import ThreadedFakeGateway, run_in_thread

__all__ = ["FakeGateway"]


class FakeGateway(GatewayServer):
    """A faithful fake of Discord's gateway (API v10) and its two REST endpoints.

    Use it as ``async with FakeGateway(token=..., shards=2) as fake:``; connect clients to
    :attr:`gateway_url` (or let them discover it from :attr:`api_base`). Every keyword
    is a field of :class:`~gateway_testing.FakeOptions`; the main ones:

    Args:
        token: the bot token accepted in Identify/Resume and ``Authorization: Bot``.
        shards: the recommended shard count (``GET /gateway/bot``); the bot has
            ``guilds_per_shard`` guilds on each of these shards.
        max_concurrency: identify buckets per ``identify_window`` (5 s on Discord).
        heartbeat_interval: seconds, sent in HELLO as milliseconds.
        heartbeat_grace: seconds past the interval before 4009 (default: one interval).
        members_per_guild: members in each guild (GUILD_CREATE, GUILD_MEMBERS_CHUNK).
        ssl_context: serve ``wss://`` and ``https://`` with this server context.
        host, port: where to listen (port 0 picks a free one).
        identify_window, session_start_total, session_start_reset,
        member_request_window: Discord's limits, shortened by tests.
        event_rate: if set, stream the lively corpus to identified sessions at this
            many dispatches per second (the demo mode).
        seed: the seed of every generated payload.
        zero_sequence_ready: READY, READY_SUPPLEMENTAL (then sent too) and
            GUILD_CREATE carry ``s`` = 0 and stay out of the replay buffer, as a
            server that exists does.
        resume_unsupported: answer every RESUME with op 9 ``false`` (and end the session).
        replay_inclusive: replay from the RESUME's ``seq`` inclusive: the client's
            last dispatch comes a second time.
        sessions_replace_before_ready: send a SESSIONS_REPLACE dispatch before READY.
        resume_url: READY's ``resume_gateway_url`` as given (``{port}`` becomes the
            fake's port) instead of this fake on ``resume_path``: e.g. a ``ws://``
            URL for a TLS fake, or one with ``user:password@``.

    :meth:`unreachable` takes the fake off the network for a while (an outage).

    """

    def run_in_thread(self) -> contextlib.AbstractContextManager[ThreadedFakeGateway]:
        """Run this fake on an event loop in a background thread (for synchronous tests).

        Returns a context manager that yields a :class:`~gateway_testing.ThreadedFakeGateway`,
        whose methods are plain blocking calls.
        """
        return run_in_thread(self)
