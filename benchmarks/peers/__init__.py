"""The runners ``bench_peers.py`` measures, one module per library.

Each ``make`` function takes the recorded stream (and a URL or a chunk size) and
returns a run, or raises :class:`Unavailable` when its library cannot run here:

* ``floor.py``: zlib + orjson in memory, and a bare ``websockets`` client;
* ``spectacles.py``: ``GatewayConnection`` alone, and a ``gateway_anyio`` shard;
* ``discord_py.py``: discord.py's ``DiscordWebSocket``, parsers stubbed;
* ``hikari.py``: hikari's ``GatewayShardImpl``, event manager stubbed;
* ``frames.py``: WebSocket framing alone (aiohttp, wsproto), for context;
* ``_common.py``: what they share (the run's shape, clocks, imports).

The package lives next to the scripts: they put ``benchmarks/`` on ``sys.path``.
"""

from __future__ import annotations

from ._common import INTENTS, TIMEOUT, TOKEN, Instant, Run, Timed, Unavailable
from .discord_py import decode_discord, loopback_discord, loopback_discord_timed
from .floor import decode_floor, loopback_bare
from .frames import frames_aiohttp, frames_wsproto
from .hikari import decode_hikari, loopback_hikari, loopback_hikari_timed
from .spectacles import decode_spectacles, loopback_spectacles

__all__ = [
    "INTENTS",
    "TIMEOUT",
    "TOKEN",
    "Instant",
    "Run",
    "Timed",
    "Unavailable",
    "decode_discord",
    "decode_floor",
    "decode_hikari",
    "decode_spectacles",
    "frames_aiohttp",
    "frames_wsproto",
    "loopback_bare",
    "loopback_discord",
    "loopback_discord_timed",
    "loopback_hikari",
    "loopback_hikari_timed",
    "loopback_spectacles",
]
