"""Entries that pack several events (``events_per_entry``): format, hostile values, handling.

The format is checked without Redis (what ``pack_events`` writes, read back by the
worker's reply reader, however the bytes are cut; any value in the fields gives
events of the right types or a ``ValueError``), the handling through a real one
(a failed handler leaves its whole entry pending, and the deduplicator hands only
what was not handled when it comes back; a malformed one is acknowledged: see
``test_worker.py``).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_redis._entry import PACKED, QueuedEvent, pack_events, unpack_events
from gateway_redis.streams import EventPublisher
from gateway_redis.worker import Deduplicator, StreamEvent, Worker

from ._publishing import KEYS, anyio_backend, collect, parse_event_reply, until

__all__ = ["anyio_backend"]  # the fixture, imported to apply here

_payloads = st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8)).map(
    lambda d: json.dumps({"op": 0, "d": d}, ensure_ascii=False).encode()
)
_events = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12),  # a name: whatever a server chose
        st.integers(0, 2**31),
        st.none() | st.text(max_size=12),
        st.none() | st.integers(0, 2**53),
        _payloads,
    ),
    min_size=1,
    max_size=8,
)


_Event = tuple[str, int, str | None, int | None, bytes]


def _queued(events: list[_Event]) -> list[QueuedEvent]:
    return [(name, b"", data, shard, session, seq) for name, shard, session, seq, data in events]


def _reply(fields: bytes) -> bytes:
    """An ``XREADGROUP`` reply of one stream ``k`` with one entry ``1-0`` of ``fields``."""
    return b"*1\r\n*2\r\n$1\r\nk\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*4\r\n" + fields


@given(_events, st.lists(st.integers(0, 10_000), max_size=4))
def test_packed_events_come_back_as_they_went_however_the_reply_is_cut(
    events: list[_Event], cuts: list[int]
) -> None:
    reply = _reply(pack_events(_queued(events)))
    [(stream, [(entry_id, seq, metas, payloads, kind)])] = parse_event_reply(
        reply, [cut % (len(reply) + 1) for cut in cuts]
    )
    assert (stream, entry_id, seq, kind) == (b"k", b"1-0", None, PACKED)
    assert metas is not None
    assert unpack_events(metas, payloads) == events
    # Any client can read the entry as two JSON arrays.
    columns = json.loads(metas)
    assert [json.loads(p) for p in (payloads,)] == [[json.loads(e[4]) for e in events]]
    assert columns["name"] == [e[0] for e in events]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
_columns = st.fixed_dictionaries(
    {},
    optional={
        key: st.lists(_json, max_size=3) | _json
        for key in ("seq", "shard", "session", "name", "length")
    },
)


def _typed_events_or_a_value_error(metas: bytes, payloads: bytes) -> None:
    try:
        events = unpack_events(metas, payloads)
    except ValueError:
        return
    assert events
    for name, shard, session, seq, payload in events:
        assert name.__class__ is str
        assert name
        assert shard.__class__ is int
        assert session is None or session.__class__ is str
        assert seq is None or seq.__class__ is int
        assert payload
        assert payload in payloads


# Bytes drawn apart from other values: hypothesis's cache compares the draws of
# one example with another's, and bytes against an int is a BytesWarning under -bb.
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_any_bytes_in_packed_fields_give_typed_events_or_a_value_error(
    metas: bytes, payloads: bytes
) -> None:
    _typed_events_or_a_value_error(metas, payloads)


@given(
    _json.map(lambda v: json.dumps(v).encode()) | _columns.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=40).map(str.encode),
)
def test_any_json_in_packed_fields_gives_typed_events_or_a_value_error(
    metas: bytes, payloads: bytes
) -> None:
    _typed_events_or_a_value_error(metas, payloads)


_GOOD_METAS = b'{"seq":[1],"shard":[0],"session":[null],"name":["A"],"length":[2]}'


def test_a_packed_entry_of_one_event_reads_back() -> None:
    assert unpack_events(_GOOD_METAS, b"[{}]") == [("A", 0, None, 1, b"{}")]


@pytest.mark.parametrize(
    ("metas", "payloads"),
    [
        (_GOOD_METAS, b"[{}, ]"),  # longer than its lengths say
        (_GOOD_METAS, b"{}"),  # not an array
        (b'{"seq":[1],"shard":[true],"session":[null],"name":["A"],"length":[2]}', b"[{}]"),
        (b'{"seq":[1],"shard":[0],"session":[null],"name":[""],"length":[2]}', b"[{}]"),
        (b'{"seq":[1],"shard":[0],"session":[null],"name":["A"],"length":[3]}', b"[{}]"),
        (b'{"seq":[1,2],"shard":[0],"session":[null],"name":["A"],"length":[2]}', b"[{}]"),
        (b'{"seq":[],"shard":[],"session":[],"name":[],"length":[]}', b"[]"),
        (b'[[1, 0, null, "A", 2]]', b"[{}]"),
        (b"{", b"[{}]"),
    ],
)
def test_a_malformed_packed_entry_is_a_value_error(metas: bytes, payloads: bytes) -> None:
    with pytest.raises(ValueError, match=r"malformed|does not match"):
        unpack_events(metas, payloads)


async def _packed(url: str, count: int, per_entry: int) -> None:
    publisher = EventPublisher(url, KEYS, batch_size=100, events_per_entry=per_entry)
    async with anyio.create_task_group() as tg:
        tg.start_soon(publisher.run)
        for seq in range(1, count + 1):
            publisher.publish("MESSAGE_CREATE", 0, "s1", seq, {"n": seq})
        with anyio.fail_after(10):
            await publisher.drain()
        tg.cancel_scope.cancel()
    await publisher.aclose()


@pytest.mark.anyio
async def test_a_failed_handler_leaves_its_whole_entry_pending_and_gets_only_its_event_again(
    redis_url: str,
) -> None:
    await _packed(redis_url, 6, per_entry=3)  # two entries: 1-3 and 4-6
    worker = Worker(
        redis_url, KEYS, start="0", min_idle=0.2, claim_interval=0.1, dedupe=Deduplicator()
    )
    got: list[tuple[int, str]] = []
    failures = [2]

    def handle(event: StreamEvent) -> None:
        assert event.sequence is not None
        if event.sequence in failures:
            failures.remove(event.sequence)
            raise RuntimeError("handler bug, once")
        got.append((event.sequence, event.id))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run, handle)
        await until(lambda: len(got) == 6)
        worker.stop()
    await worker.aclose()
    assert sorted(seq for seq, _ in got) == [1, 2, 3, 4, 5, 6]
    assert [seq for seq, _ in got][-1] == 2  # back with its entry, after the others
    assert len({entry_id for _, entry_id in got}) == 2  # one id per entry, shared
    assert (worker.failed, worker.handled) == (1, 6)
    assert worker.duplicates == 2  # 1 and 3 came back with 2 and were dropped


def test_events_per_entry_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="events_per_entry"):
        EventPublisher("redis://127.0.0.1:1/0", KEYS, events_per_entry=0)


@pytest.mark.anyio
async def test_a_worker_reads_about_count_events_at_a_time_whatever_the_packing(
    redis_url: str,
) -> None:
    await _packed(redis_url, 1000, per_entry=10)  # 100 entries of 10
    worker = Worker(redis_url, KEYS, start="0", count=20)
    sizes: list[int] = []
    handle_batch = worker._handle

    async def count_batch(batch: Any, handler: Any) -> None:
        sizes.append(sum(len(json.loads(e[2])["name"]) for _, entries in batch for e in entries))
        await handle_batch(batch, handler)

    worker._handle = count_batch  # type: ignore[method-assign]
    got = await collect(worker, 1000)
    await worker.aclose()
    sizes = [size for size in sizes if size]
    # The first read takes 20 entries (200 events), and so may the one read ahead
    # while it is handled; from then on reads take 2 entries: 20 events.
    assert sizes[:2] == [200, 200]
    assert set(sizes[2:]) == {20}
    assert [e.sequence for e in got] == list(range(1, 1001))
