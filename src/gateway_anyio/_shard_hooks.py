"""What a shard hands its runner: the interface between the public Shard and its I/O.

The runner (``_runner``) owns the connection; the shard (``_shard``) owns what
applications see. The runner needs a little of the shard (who it is, where to
report), and gets exactly that as a :class:`ShardHooks`, so neither module names
the other's class in both directions: ``_shard`` imports ``_runner`` and this
module, ``_runner`` imports only this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway_proto.driver_support import ShardCounters, ShardLogger, ShardState
from gateway_proto.events import Closed

from ._events import Emitter
from ._gateway import Gateway

__all__ = ["ShardHooks"]


@dataclass(frozen=True, slots=True)
class ShardHooks:
    """What a runner is given of the shard it runs: who it is, and how to report.

    The shard builds one and hands it to its :class:`ShardRunner`, which copies the
    callbacks into its own attributes (no lookup through this object per event).

    Attributes:
        shard: the public shard object, carried by every event the runner hands over.
        shard_id: the shard's id.
        gateway: where the URL comes from when none was given (``fetch``).
        log: the shard's logger (token redacted).
        counters: the shard's counters, which the runner keeps up to date.
        emitter: the shard's handlers and streams: dispatches go to them in batches.
        emit: emit one of the shard's events (``name, data``).
        set_state: change the shard's state (``new, reason``).
        closed: record how a connection ended (the shard's ``last_close``).

    """

    shard: object
    shard_id: int
    gateway: Gateway
    log: ShardLogger
    counters: ShardCounters
    emitter: Emitter
    emit: Callable[[str, Any], None]
    set_state: Callable[[ShardState, str], None]
    closed: Callable[[Closed], None]
