"""A cluster's events handed to a callback in batches, in the shard's reader."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway_anyio._events import Emitter
from gateway_proto.driver_support import RECEIVE, SEND, GatewayEvent

__all__ = ["BatchSink"]

_log = logging.getLogger("gateway_redis.streams")

_UNWANTED = frozenset({RECEIVE, SEND})


class BatchSink(Emitter):
    """Hands a cluster's events to a callback as they are emitted, in the shard's reader.

    The cheapest subscription there is: no buffer and no task switch per event
    (an ``events()`` stream costs both, and one without names also asks every
    shard for a ``receive`` event per dispatch, which doubles the emits). A
    shard's reader hands its emitter batches (``emit_batch``, which passes them
    on to the parents as batches): both entry points are overridden, so no event
    goes through the base class's routing. Add it as a parent of the cluster's
    emitter.
    """

    def __init__(self, on_events: Callable[[list[GatewayEvent]], None]) -> None:
        super().__init__(_log)
        self._on_events = on_events

    def wants(self, name: str) -> bool:
        """Every event but the raw ``receive`` and ``send`` ones."""
        return name not in _UNWANTED

    def emit(self, event: GatewayEvent) -> None:
        """Hand on one event."""
        self._on_events([event])

    def emit_batch(self, events: list[GatewayEvent]) -> None:
        """Hand on a batch, as it came."""
        self._on_events(events)
