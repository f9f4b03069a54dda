"""The loop both drivers run over a connection's events: the per-dispatch hot path.

Theory of operation: after feeding bytes (or a timeout) to the core, a driver calls
:meth:`EventDrain.drain`. It walks the connection's events and, for each event:

- an ordinary dispatch (all but READY and RESUMED) is counted and wrapped in a
  :class:`~.shard_events.GatewayEvent` (plus a :data:`~.shard_events.RECEIVE`
  event if anything listens to those), nothing more: the reconnector and the
  reactor have nothing to do for one (both say so), so neither is called. Runs of
  them come from ``conn.take_dispatches``, made and counted there (in C with the
  extension: ~0.6 µs less per event than this loop over ``events()`` in Python,
  ``benchmarks/README.md``); the rest, one at a time, from ``conn.next_event()``;
- anything else goes to the reconnector (backoff, counts), the backlog of unsent
  commands and the :class:`~.reactor.ConnectionReactor`, and what the reactor asks
  for is handed to the driver's ``on_reaction`` *after* the dispatches before it
  were handed over, so handlers see everything in the order it happened. A
  heartbeat sent or ACKed that nobody listens to asks for nothing (the reactor's
  quiet events): then nothing is handed over early and the counts wait for the end
  of the drain, so an idle shard's heartbeat costs little more than its bytes.

Dispatches are handed over in batches (``hand_over``, at most :data:`HAND_OVER_EVERY`
at a time, and what is left at the end): a consumer then takes one lock or one
wake-up per batch, not per event, and a batch's decoded payloads do not pile up
(a whole read's worth held alive at once cost more than decoding them). For the
same reason a drain with a limit also stops once the dispatches it decoded come to
:data:`HAND_OVER_BYTES` (a burst of big GUILD_CREATEs): held until the consumers
run, their trees would survive young collections and be traversed again by the
next older one (three ~1.5 ms collections per 20,000 events of the recorded session,
where freeing them a few at a time leaves ~0.2 ms ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway_proto.events import Dispatch

from .shard_events import (
    RECEIVE,
    GatewayEvent,
    ShardCounters,
    dispatch_event_maker,
    new_gateway_event,
)

if TYPE_CHECKING:
    from gateway_proto.connection import GatewayConnection
    from gateway_proto.reconnect import Reconnector

    from .reactor import ConnectionReactor, Reaction
    from .unsent import UnsentCommands

__all__ = ["HAND_OVER_BYTES", "HAND_OVER_EVERY", "EventDrain"]

#: Dispatches per hand-over at most (and per :meth:`EventDrain.drain` call with a limit).
HAND_OVER_EVERY = 64
#: Payload bytes (decompressed) after which a :meth:`EventDrain.drain` call with a
#: limit stops early: twice what 64 everyday dispatches come to (~55 KB), so only
#: big ones (a GUILD_CREATE is ~100 KB and up) make it stop sooner.
HAND_OVER_BYTES = 128 * 1024


class EventDrain:
    """Turns one connection's events into what the driver delivers and does.

    Args:
        shard: the driver's shard object (each event's ``shard``).
        shard_id: its id.
        counters: the shard's counters (dispatches and names are counted here).
        reconnector: the shard's reconnector (it observes every other event).
        reactor: this connection's reactor.
        unsent: the shard's backlog of commands not yet written.
        hand_over: delivers a batch of events, in order (it must not keep the list).
        wants: whether anything listens to events of a name (the emitter's ``wants``;
            keep it cheap, it is asked once per drain and once per heartbeat):
            :data:`RECEIVE` events are built only then (asked once per drain), and
            the reactor leaves out a :data:`SEND` or :data:`RECEIVE` event (every
            heartbeat and ACK has one) when nothing listens.
        on_reaction: does what a :class:`~.reactor.Reaction` asks.
        on_counts: called before each reaction is handed over, and once per drain
            (the reconnector counts IDENTIFY, RESUME and replayed duplicates): the
            counters are current whenever a handler could look at them.
        clock: a CPU-cheap monotonic clock for ``counters.decode_seconds`` (the
            driver's ``time.perf_counter``: the core reads no clock of its own).

    """

    __slots__ = (
        "_clock",
        "_counters",
        "_hand_over",
        "_make",
        "_on_counts",
        "_on_reaction",
        "_reactor",
        "_reconnector",
        "_shard",
        "_shard_id",
        "_unsent",
        "_wants",
    )

    def __init__(
        self,
        *,
        shard: Any,
        shard_id: int,
        counters: ShardCounters,
        reconnector: Reconnector,
        reactor: ConnectionReactor,
        unsent: UnsentCommands,
        hand_over: Callable[[list[GatewayEvent]], None],
        wants: Callable[[str], bool],
        on_reaction: Callable[[Reaction], None],
        on_counts: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self._shard, self._shard_id, self._counters = shard, shard_id, counters
        self._reconnector, self._reactor, self._unsent = reconnector, reactor, unsent
        self._hand_over, self._wants = hand_over, wants
        self._on_reaction, self._on_counts = on_reaction, on_counts
        self._clock = clock
        self._make = dispatch_event_maker(shard_id, shard)

    def drain(self, conn: GatewayConnection, limit: int = 0) -> bool:
        """Deliver the connection's events; with ``limit``, stop after that many dispatches.

        With ``limit`` it also stops after the dispatch that brings the payload bytes
        decoded in this call over :data:`HAND_OVER_BYTES`. Returns ``True`` if it
        stopped early (more may be waiting: an async driver lets its consumers run,
        then calls again), ``False`` once the connection has nothing more.
        """
        # Timed per call, not per event: decoding happens as events are handed out.
        start = self._clock()
        counters, shard, shard_id = self._counters, self._shard, self._shard_id
        hand_over, make = self._hand_over, new_gateway_event
        # Asked once per drain: most applications don't listen to "receive", and
        # building an event nobody reads costs about as much as the dispatch's own.
        receive = self._wants(RECEIVE)
        # Runs of ordinary dispatches come from the connection as events already
        # made and counted (in C, with the extension): not when "receive" events,
        # which carry the Dispatch, are wanted.
        take = None if receive else conn.take_dispatches
        next_event = conn.next_event
        batch: list[GatewayEvent] = []
        left = limit
        # With a limit, the payload meter is read after every run and dispatch;
        # without, neither (a drain without a limit needs nothing but the events).
        meter = conn.payload_meter if limit else None
        bound = meter.payload_bytes + HAND_OVER_BYTES if meter is not None else -1
        try:
            while True:
                if take is not None:
                    room = HAND_OVER_EVERY - len(batch)
                    if 0 < left < room:
                        room = left
                    taken = take(
                        self._make, batch, room, counts=counters.dispatch_names, payload_bound=bound
                    )
                    if taken:
                        counters.dispatches += taken
                        left -= taken
                        if len(batch) >= HAND_OVER_EVERY:
                            hand_over(batch)
                            batch = []
                        if left == 0 or (meter is not None and meter.payload_bytes > bound):
                            left = 0
                            break
                        if taken == room:
                            continue
                event = next_event()
                if event is None:
                    break
                if type(event) is Dispatch:
                    name = event.name
                    if name == "READY" or name == "RESUMED":  # noqa: PLR1714 (hot path)
                        batch = self._react(event, batch)
                    counters.dispatches += 1
                    names = counters.dispatch_names
                    count = names.get(name)
                    if count is None:
                        counters.count_dispatch_name(name)
                    else:
                        names[name] = count + 1
                    batch.append(make(name, shard_id, event.data, event.sequence, shard, event.raw))
                    if receive:
                        batch.append(make(RECEIVE, shard_id, event, None, shard, None))
                    if len(batch) >= HAND_OVER_EVERY:
                        hand_over(batch)
                        batch = []
                    left -= 1
                    if left == 0 or (meter is not None and meter.payload_bytes > bound):
                        left = 0
                        break
                else:
                    self._unsent.observe(event)
                    batch = self._react(event, batch)
        finally:
            if batch:
                hand_over(batch)
        self._on_counts()  # once per drain: replayed duplicates are dropped silently
        counters.decode_seconds += self._clock() - start
        return left == 0

    def _react(self, event: Any, batch: list[GatewayEvent]) -> list[GatewayEvent]:
        # What the reaction does (state, lifecycle events, errors) comes after the
        # dispatches before it, as it happened. Returns the batch to go on filling.
        self._reconnector.observe(event)
        reaction = self._reactor.react(event, self._wants)
        if reaction is None:
            return batch  # nothing to do or show: the drain's end counts it
        if batch:
            self._hand_over(batch)
            batch = []
        self._on_counts()  # the core counts IDENTIFY and RESUME payloads
        self._on_reaction(reaction)
        return batch
