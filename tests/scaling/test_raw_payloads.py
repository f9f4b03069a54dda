"""Payloads published as received (``keep_raw``): a worker gets what the shard decoded.

The property: for any JSON ``d`` (unicode, integers of any size, any key order,
spacing and escaping of the payload around it), the ``data`` a worker receives
through a real Redis equals the ``data`` of the shard's own ``Dispatch`` (what an
in-process handler gets), whether the publisher sent the received bytes (a
``payload`` field) or encoded ``d`` again (a ``data`` field), in entries of one
event or packed (``events_per_entry``).
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_proto.events import Dispatch
from gateway_redis._keys import Keys
from gateway_redis.streams import EventPublisher
from gateway_redis.worker import StreamEvent, Worker
from proto._wire_helpers import dispatch_messages, make_config, open_wire, server_frame

_prefixes = itertools.count()


async def _through_redis(
    redis_url: str, dispatches: list[tuple[Dispatch, bool]], per_entry: int
) -> list[Any]:
    """Publish each dispatch (with its bytes, or without), then read them with a worker."""
    keys = Keys(f"raw:{next(_prefixes)}")
    publisher = EventPublisher(redis_url, keys, events_per_entry=per_entry)
    worker = Worker(redis_url, keys, start="0", block=0.1)
    got: list[StreamEvent] = []

    def handle(event: StreamEvent) -> None:
        got.append(event)
        if len(got) == len(dispatches):
            worker.stop()

    await worker.create_groups()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher.run)
            for item, send_raw in dispatches:
                raw = item.raw if send_raw else None
                publisher.publish(item.name, 0, "sess", item.sequence, item.data, raw=raw)
            await publisher.drain()
            await worker.run(handle)
            tg.cancel_scope.cancel()
    await publisher.aclose()
    await worker.aclose()
    assert (publisher.dropped, worker.malformed) == (0, 0)
    assert [event.sequence for event in got] == [item.sequence for item, _ in dispatches]
    return [event.data for event in got]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(dispatch_messages(), st.booleans()), min_size=1, max_size=6),
    st.sampled_from([1, 4]),  # one entry per event, or entries packing up to four
)
def test_a_worker_gets_the_data_the_shard_decoded(
    redis_url: str, messages: list[tuple[bytes, bool]], per_entry: int
) -> None:
    wire, _ = open_wire(make_config(compression=None, keep_raw=True))
    items = wire.receive(b"".join(server_frame(0x1, message) for message, _ in messages))
    dispatches: list[tuple[Dispatch, bool]] = []
    for item, (_, send_raw) in zip(items, messages, strict=True):
        assert isinstance(item, Dispatch)
        assert item.raw is not None
        dispatches.append((item, send_raw))
    received = anyio.run(_through_redis, redis_url, dispatches, per_entry, backend="asyncio")
    assert received == [item.data for item, _ in dispatches]
