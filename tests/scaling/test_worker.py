"""Workers: a killed worker's pending events go to another, duplicates and bad entries."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from gateway_redis._resp import ReplyReader
from gateway_redis.streams import EventPublisher, pack_meta
from gateway_redis.worker import Deduplicator, StreamEvent, Worker, unpack_meta

from ._publishing import KEYS, TOKEN, anyio_backend, collect, parse_event_reply, until

__all__ = ["anyio_backend"]  # the fixture, imported to apply here

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def publish(url: str, count: int, *, shard: int = 0, session: str = "s1") -> None:
    publisher = EventPublisher(url, KEYS, batch_size=100)
    async with anyio.create_task_group() as tg:
        tg.start_soon(publisher.run)
        for seq in range(1, count + 1):
            publisher.publish("MESSAGE_CREATE", shard, session, seq, {"n": seq})
        with anyio.fail_after(10):
            await publisher.drain()
        tg.cancel_scope.cancel()
    await publisher.aclose()


async def test_a_killed_workers_pending_events_go_to_another(redis_url: str) -> None:
    await publish(redis_url, 30)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("_doomed_worker.py")),
            redis_url,
            KEYS.prefix,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with anyio.fail_after(20):
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
        assert line.strip() == "handling 1"  # it read a batch and is handling it
        client = aioredis.Redis.from_url(redis_url)
        try:
            # ... and has read the next one ahead: 20 pending, then no more.
            with anyio.fail_after(10):
                while (pending := await client.xpending(KEYS.events, "g"))["pending"] < 20:
                    await anyio.sleep(0.01)
        finally:
            await client.aclose()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert pending["pending"] == 20
    assert [c["name"] for c in pending["consumers"]] == [b"doomed"]

    rescuer = Worker(
        redis_url, KEYS, group="g", consumer="rescuer", min_idle=0.3, claim_interval=0.1,
        dedupe=Deduplicator(),
    )  # fmt: skip
    got = await collect(rescuer, 30)
    await rescuer.aclose()
    assert sorted(e.sequence or 0 for e in got) == list(range(1, 31))
    assert rescuer.claimed >= 20
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert (await client.xpending(KEYS.events, "g"))["pending"] == 0
    finally:
        await client.aclose()


async def test_duplicates_are_dropped_and_a_failed_handler_is_retried(redis_url: str) -> None:
    await publish(redis_url, 5)
    await publish(redis_url, 5)  # the same five again, as a retried batch would
    worker = Worker(
        redis_url, KEYS, start="0", min_idle=0.2, claim_interval=0.1, dedupe=Deduplicator()
    )
    got: list[int] = []
    failures = [3]

    def handle(event: StreamEvent) -> None:
        if event.sequence in failures:
            failures.remove(event.sequence)
            raise RuntimeError("handler bug, once")
        got.append(event.sequence or 0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run, handle)
        await until(lambda: len(got) == 5)
        worker.stop()
    await worker.aclose()
    assert sorted(got) == [1, 2, 3, 4, 5]
    assert worker.failed == 1
    assert worker.duplicates >= 4  # the 3 came back only after its retry
    assert worker.handled == 5


@pytest.mark.parametrize(
    "origin",
    [
        ("MESSAGE_CREATE", 3, "9f3c", 12),
        ("READY", 0, None, None),  # no session yet, no sequence
        ("A NAME WITH SPACES", 70, "a session with spaces", 1),  # a server chooses both
    ],
)
def test_the_meta_field_packs_name_shard_session_and_seq(
    origin: tuple[str, int, str | None, int | None],
) -> None:
    assert unpack_meta(pack_meta(*origin)) == origin


@pytest.mark.parametrize(
    "meta", [b"", b"1 2 3", b"1 x 0  N", b"x 1 0  N", b"1 2 -1 a N", b"1 2 9 short N", b"1 2 0  "]
)
def test_a_malformed_meta_field_is_a_value_error(meta: bytes) -> None:
    with pytest.raises(ValueError, match="malformed meta field"):
        unpack_meta(meta)


async def test_an_entry_decodes_the_same_whether_its_origin_was_seen_before_or_not(
    redis_url: str,
) -> None:
    # The worker keeps the part after the sequence decoded; the sequence is still checked.
    meta = pack_meta("A NAME", 4, "sess ion", 41)
    tail = meta.split(b" ", 1)[1]
    good = [b"41 " + tail, b"42 " + tail, b" " + tail]
    bad = [b"x1 " + tail, b"-1 " + tail, b"1_0 " + tail, tail, b"41" + tail]
    client = aioredis.Redis.from_url(redis_url)
    worker = Worker(redis_url, KEYS, start="0")
    await worker.create_groups()
    for value in [*good, *bad, *good]:
        await client.xadd(KEYS.events, {"meta": value, "data": b'{"a":1}'})
    try:
        got = await collect(worker, 2 * len(good))
        assert (await client.xpending(KEYS.events, "workers"))["pending"] == 0
    finally:
        await client.aclose()
        await worker.aclose()
    assert [(e.name, e.shard_id, e.session_id, e.data, e.stream) for e in got] == [
        ("A NAME", 4, "sess ion", {"a": 1}, KEYS.events)
    ] * 6
    assert [e.sequence for e in got] == [41, 42, None] * 2
    assert worker.malformed == len(bad)


async def test_handled_batches_are_acknowledged_while_the_worker_runs(redis_url: str) -> None:
    # Each batch's acknowledgements go when it was handled, not when the worker stops
    # (its reader then waits in a long blocking read).
    await publish(redis_url, 250)
    client = aioredis.Redis.from_url(redis_url)
    worker = Worker(redis_url, KEYS, start="0", count=50, block=30.0)
    got: list[StreamEvent] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, got.append)
            await until(lambda: len(got) == 250)
            with anyio.fail_after(10):
                while (await client.xpending(KEYS.events, "workers"))["pending"]:
                    await anyio.sleep(0.01)
            worker.stop()
    finally:
        await client.aclose()
        await worker.aclose()
    assert [e.sequence for e in got] == list(range(1, 251))


async def test_a_name_not_handled_is_acknowledged_without_its_data_decoded(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    worker = Worker(redis_url, KEYS, start="0", events=["MESSAGE_CREATE"])
    await worker.create_groups()
    await client.xadd(KEYS.events, {"meta": pack_meta("TYPING_START", 0, "s", 1), "data": "{"})
    await client.xadd(KEYS.events, {"meta": pack_meta("MESSAGE_CREATE", 0, "s", 2), "data": "[2]"})
    try:
        got = await collect(worker, 1)
        assert (await client.xpending(KEYS.events, "workers"))["pending"] == 0
    finally:
        await client.aclose()
        await worker.aclose()
    assert [(e.name, e.sequence, e.data) for e in got] == [("MESSAGE_CREATE", 2, [2])]
    assert (worker.malformed, worker.handled) == (0, 1)


async def test_a_malformed_entry_is_logged_and_acknowledged(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    worker = Worker(redis_url, KEYS, start="0")
    await worker.create_groups()
    await client.xadd(KEYS.events, {"meta": "1 x 0  MESSAGE_CREATE", "data": "{}"})
    await client.xadd(KEYS.events, {"meta": "1 0 0  MESSAGE_CREATE", "data": "{"})
    await client.xadd(KEYS.events, {"name": "MESSAGE_CREATE", "shard": "0", "data": "{}"})
    await client.xadd(KEYS.events, {"metas": "{}", "payloads": "[{}]"})  # packed, no columns
    await publish(redis_url, 1)
    got = await collect(worker, 1)
    try:
        assert (await client.xpending(KEYS.events, "workers"))["pending"] == 0
    finally:
        await client.aclose()
        await worker.aclose()
    assert worker.malformed == 4
    assert [e.data for e in got] == [{"n": 1}]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("malformed" in r.getMessage() for r in warnings) == 4


def test_the_deduplicator_forgets_the_oldest_past_its_bound() -> None:
    dedupe = Deduplicator(max_size=3)
    events = [StreamEvent("X", 0, "s", seq, None, "k", f"{seq}-0") for seq in range(1, 6)]
    for event in events:
        assert not dedupe.seen(event)
        dedupe.add(event)
    assert len(dedupe) == 3
    assert [dedupe.seen(e) for e in events] == [False, False, True, True, True]
    other_session = StreamEvent("X", 0, "t", 5, None, "k", "9-0")
    assert not dedupe.seen(other_session)
    no_seq = StreamEvent("X", 0, "s", None, None, "k", "9-1")
    dedupe.add(no_seq)
    assert not dedupe.seen(no_seq)
    assert len(dedupe) == 3


async def test_the_worker_command_prints_json_lines_and_stops_on_sigterm(redis_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DISCORD_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway_cli",
            "worker",
            "--redis",
            redis_url,
            "--events",
            "MESSAGE_CREATE",
            "--group",
            "cli",
            "--consumer",
            "c1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = aioredis.Redis.from_url(redis_url)
    try:

        async def group_exists() -> bool:
            try:
                groups: Any = await client.xinfo_groups(KEYS.events)
            except aioredis.ResponseError:
                return False
            return any(g["name"] == b"cli" for g in groups)

        with anyio.fail_after(20):
            while not await group_exists():
                await anyio.sleep(0.05)
        publisher = EventPublisher(redis_url, KEYS)
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher.run)
            publisher.publish("TYPING_START", 1, "s9", 1, {"user_id": "5"})
            publisher.publish("MESSAGE_CREATE", 1, "s9", 2, {"content": "hé"})
            with anyio.fail_after(10):
                await publisher.drain()
            tg.cancel_scope.cancel()
        await publisher.aclose()
        assert proc.stdout is not None
        with anyio.fail_after(20):
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
        assert json.loads(line) == {
            "shard": 1,
            "session": "s9",
            "seq": 2,
            "event": "MESSAGE_CREATE",
            "data": {"content": "hé"},
        }
        with anyio.fail_after(10):
            while (await client.xpending(KEYS.events, "cli"))["pending"]:
                await anyio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=20))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        await client.aclose()
    assert proc.returncode == 130
    assert out == ""  # the filtered TYPING_START was never printed
    assert "Traceback" not in err


def _parse(reader: ReplyReader, parser: str, data: bytes, cuts: list[int], *args: int) -> Any:
    """Run one of the reader's parsers over ``data`` fed in pieces (cut at ``cuts``)."""
    walk = getattr(reader, parser)(*args)
    next(walk)
    edges = [0, *cuts, len(data)]
    try:
        for start, end in itertools.pairwise(edges):
            reader.feed(data[start:end])
            next(walk)
    except StopIteration as done:
        return done.value
    raise AssertionError("the reply was not complete")


_ENTRY = b'*2\r\n$3\r\n1-0\r\n*4\r\n$4\r\nname\r\n$1\r\nX\r\n$4\r\ndata\r\n$8\r\n{"a":\r\n}\r\n'
_EXPECTED = [(b"k", [(b"1-0", {b"name": b"X", b"data": b'{"a":\r\n}'}), (b"2-0", {})])]


@pytest.mark.parametrize(
    "reply",
    [
        b"*1\r\n*2\r\n$1\r\nk\r\n*2\r\n" + _ENTRY + b"*2\r\n$3\r\n2-0\r\n*-1\r\n",  # RESP2
        b"%1\r\n$1\r\nk\r\n*2\r\n" + _ENTRY + b"*2\r\n$3\r\n2-0\r\n_\r\n",  # RESP3
    ],
)
def test_the_reply_reader_parses_entries_however_the_bytes_are_cut(reply: bytes) -> None:
    # A value holding CRLF, an entry trimmed away, and every split point of the reply.
    for cut in range(len(reply) + 1):
        assert _parse(ReplyReader(), "read_groups", reply, [cut]) == _EXPECTED
    assert _parse(ReplyReader(), "read_groups", reply, list(range(1, len(reply)))) == _EXPECTED


# Three entries as publishers write them (meta then data, or payload: the whole
# gateway payload; the second's meta holds CRLF, so only its lengths tell where it
# ends), one with other fields, one trimmed away.
_META = pack_meta("MESSAGE_CREATE", 3, "se\r\nss", 7)
_EVENTS = (
    b"*2\r\n$3\r\n1-0\r\n*4\r\n$4\r\nmeta\r\n$12\r\n5 3 1 s NAME\r\n$4\r\ndata\r\n$2\r\n{}\r\n"
    + b"*2\r\n$3\r\n2-0\r\n*4\r\n$4\r\nmeta\r\n$%d\r\n%b\r\n$4\r\ndata\r\n$3\r\n[1]\r\n"
    % (len(_META), _META)
    + b'*2\r\n$3\r\n4-0\r\n*4\r\n$4\r\nmeta\r\n$7\r\n8 3 0 N\r\n$7\r\npayload\r\n$7\r\n{"d":7}\r\n'
    + _ENTRY
    + b"*2\r\n$3\r\n3-0\r\n*-1\r\n"
    + b"*2\r\n$3\r\n5-0\r\n*4\r\n$4\r\nmeta\r\n$8\r\nx1 3 0 N\r\n$4\r\ndata\r\n$2\r\n{}\r\n"
)
_EXPECTED_EVENTS = [
    (
        b"k",
        [
            (b"1-0", b"5", b"3 1 s NAME", b"{}", False),
            (b"2-0", b"7", _META.split(b" ", 1)[1], b"[1]", False),
            (b"4-0", b"8", b"3 0 N", b'{"d":7}', True),
            (b"1-0", None, None, b'{"a":\r\n}', False),
            (b"3-0", None, None, b"", False),
            (b"5-0", b"x1 3 0 N", None, b"{}", False),  # not SEQ ORIGIN: the worker drops it
        ],
    )
]


@pytest.mark.parametrize(
    "reply",
    [
        b"*1\r\n*2\r\n$1\r\nk\r\n*6\r\n" + _EVENTS,  # RESP2
        b"%1\r\n$1\r\nk\r\n*6\r\n" + _EVENTS.replace(b"*-1\r\n", b"_\r\n"),  # RESP3
    ],
)
def test_the_event_reply_reader_parses_any_entry_however_the_bytes_are_cut(reply: bytes) -> None:
    for cut in range(len(reply) + 1):
        assert parse_event_reply(reply, [cut]) == _EXPECTED_EVENTS
    assert parse_event_reply(reply, list(range(1, len(reply)))) == _EXPECTED_EVENTS
    assert parse_event_reply(b"*-1\r\n", []) == []
    assert parse_event_reply(b"_\r\n", []) == []
    with pytest.raises(ResponseError, match="NOGROUP"):
        parse_event_reply(b"-NOGROUP no such group\r\n", [])


def test_the_reply_reader_knows_nulls_claims_and_errors() -> None:
    assert _parse(ReplyReader(), "read_groups", b"*-1\r\n", []) == []
    assert _parse(ReplyReader(), "read_groups", b"_\r\n", []) == []
    claim = b"*3\r\n$3\r\n0-0\r\n*1\r\n" + _ENTRY + b"*1\r\n$3\r\n9-0\r\n"
    assert _parse(ReplyReader(), "auto_claim", claim, [7]) == [_EXPECTED[0][1][0]]
    assert _parse(ReplyReader(), "simple", b":12\r\n", []) == 12
    with pytest.raises(NoScriptError):
        _parse(ReplyReader(), "simple", b"-NOSCRIPT No matching script\r\n", [])
    with pytest.raises(ResponseError, match="NOGROUP"):
        _parse(ReplyReader(), "read_groups", b"-NOGROUP no such group\r\n", [])


@pytest.mark.parametrize(
    ("replies", "error"),
    [
        (b"$3\r\n1-0\r\n$3\r\n2-0\r\n$3\r\n3-0\r\n", False),  # ids only: checked in bulk
        (b"$3\r\n1-0\r\n$3\r\n2-0\r\n-ERR last\r\n", True),
        (b"-ERR first\r\n$3\r\n1-0\r\n$3\r\n2-0\r\n", True),
        (b"$3\r\n1-0\r\n-ERR middle\r\n$3\r\n2-0\r\n", True),
        (b":1\r\n+OK\r\n$3\r\n1-0\r\n", False),  # replies of one line
        (b"$4\r\na\r\nb\r\n$3\r\n1-0\r\n$3\r\n3-0\r\n", False),  # a value holding CRLF
    ],
)
def test_three_pipelined_replies_are_read_whole_however_the_bytes_are_cut(
    replies: bytes, error: bool
) -> None:
    for cut in range(len(replies) + 1):
        reader = ReplyReader()
        if error:
            with pytest.raises(ResponseError, match="ERR"):
                _parse(reader, "replies", replies, [cut], 3)
        else:
            assert _parse(reader, "replies", replies, [cut], 3) == 3
        reader.reset()
        assert reader.lines == [b""]  # every line of the three was read


def test_pipelined_replies_are_counted_and_an_error_is_raised_after_all_were_read() -> None:
    ids = b"$3\r\n1-0\r\n$3\r\n2-0\r\n"
    reader = ReplyReader()
    walk = reader.replies(3)
    next(walk)
    reader.feed(ids[:7])
    next(walk)  # a reply cut in two: waits for the rest
    reader.feed(ids[7:] + b"-WRONGTYPE Operation against a key\r\n")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        next(walk)
    reader.reset()
    assert reader.lines == [b""]  # nothing of the batch left to confuse the next reply
    walk = reader.replies(1)
    next(walk)
    reader.feed(b"$4\r\na\r\nb\r\n")  # a value holding CRLF (no entry id does): still in step
    with pytest.raises(StopIteration) as done:
        next(walk)
    assert done.value.value == 1
