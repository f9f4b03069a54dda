"""Units of ``gateway_proto.driver_support`` that both drivers share (no I/O)."""

from __future__ import annotations

import logging

import pytest

from gateway_proto.commands import UpdatePresence, UpdateVoiceState
from gateway_proto.driver_support import (
    IdentifyQueue,
    ShardLogger,
    StartOrder,
    UnsentCommands,
    plan_shards,
)
from gateway_proto.events import PayloadSent
from gateway_proto.identify import IdentifySchedule

TOKEN = "test-token.abcdef.0123456789"


def test_plan_shards_with_a_pinned_total() -> None:
    assert plan_shards([4, 5, 6, 7], 2, shard_count=16) == ([4, 5, 6, 7], 16)
    assert plan_shards(4, 2, shard_count=16) == ([0, 1, 2, 3], 16)
    assert plan_shards("auto", 2, shard_count=3) == ([0, 1, 2], 3)
    assert plan_shards([4, 5], 2) == ([4, 5], 6)  # without it: max(ids) + 1
    with pytest.raises(ValueError, match="shard_count"):
        plan_shards([15, 16], 2, shard_count=16)
    with pytest.raises(ValueError, match="shard_count"):
        plan_shards([0], 2, shard_count=0)


def test_identify_queue_grants_the_lowest_id_of_a_bucket_first() -> None:
    queue = IdentifyQueue(IdentifySchedule(2, window=5.0))
    first = queue.add(5)
    assert queue.grant(0.0) == [first]  # bucket 1 was free: no reason to wait
    tickets = {shard_id: queue.add(shard_id) for shard_id in (7, 3, 2, 0)}
    # Bucket 0 is free: its lowest waiter goes now; bucket 1 waits for its window.
    assert queue.grant(0.0) == [tickets[0]]
    assert queue.wake_at(tickets[3], 0.0) == 5.0
    assert queue.estimate(tickets[7], 0.0).delay == 10.0  # behind shard 3
    assert queue.grant(5.0) == [tickets[2], tickets[3]]
    assert queue.grant(10.0) == [tickets[7]]
    assert len(queue) == 0


def test_start_order_starts_each_bucket_one_shard_after_another() -> None:
    order = StartOrder([5, 0, 1, 4, 2, 3], 2)
    assert order.first() == [0, 1]
    assert order.passed(1) == 3
    assert order.passed(1) is None  # only the first pass counts
    assert order.passed(0) == 2
    assert order.passed(4) is None  # not started yet
    assert order.pending() == [4, 5]


def test_unsent_commands_follow_what_the_connection_wrote() -> None:
    unsent = UnsentCommands()
    presence = UpdatePresence(status="idle")
    voice = UpdateVoiceState(guild_id=1, channel_id=None)
    unsent.accepted(presence)
    unsent.accepted(voice)
    unsent.observe(PayloadSent(1, 42))  # a heartbeat is not a command
    assert list(unsent.commands) == [presence, voice]
    unsent.observe(PayloadSent(3, presence.to_payload()))
    assert list(unsent.commands) == [voice]
    assert unsent.take() == (voice,)
    assert len(unsent) == 0


def test_unsent_commands_requeue_on_the_next_connection(caplog: pytest.LogCaptureFixture) -> None:
    from gateway_proto import GatewayConnection, ShardConfig

    log = logging.getLogger("gateway_test.unsent")
    caplog.set_level(logging.INFO, logger="gateway_test.unsent")
    config = ShardConfig(token=TOKEN, intents=1, max_pending_commands=1)
    unsent = UnsentCommands()
    assert unsent.requeue(GatewayConnection(config), 0.0, log=log) == []
    assert caplog.records == []  # nothing to re-queue, nothing said
    presence, voice = UpdatePresence(status="idle"), UpdateVoiceState(guild_id=1, channel_id=None)
    unsent.accepted(presence)
    unsent.accepted(voice)
    conn = GatewayConnection(config)
    conn.connect(0.0)
    assert unsent.requeue(conn, 0.0, log=log) == [voice]  # room for one only
    assert conn.pending_commands == (presence,)
    assert list(unsent.commands) == [presence]
    assert [r.getMessage() for r in caplog.records] == [
        "re-queued 1 unsent command(s)",
        "dropped 1 unsent command(s): queue full",
    ]


def test_shard_logger_is_shared_and_redacts(caplog: pytest.LogCaptureFixture) -> None:
    import gateway_anyio
    import gateway_sync

    assert type(gateway_anyio.Shard(TOKEN, intents=1)._log) is ShardLogger
    assert type(gateway_sync.Shard(TOKEN, intents=1)._log) is ShardLogger
    caplog.set_level(logging.INFO)
    log = ShardLogger(logging.getLogger("gateway_test.shard"), TOKEN)
    log.info("token %s in a message", TOKEN)
    assert caplog.records[-1].getMessage() == "token [REDACTED] in a message"


def test_gateway_fetch_decides_without_io() -> None:
    import logging
    import random

    from gateway_proto.backoff import Backoff
    from gateway_proto.driver_support import (
        GatewayFetch,
        GatewayInfo,
        GatewayRequestError,
        InvalidTokenError,
    )

    def fetch() -> GatewayFetch:
        backoff = Backoff(random.Random(0), base=0.5, cap=10.0)
        return GatewayFetch("tok", max_retries=1, backoff=backoff, log=logging.getLogger("t"))

    body = {
        "url": "wss://gw.example/",
        "shards": 2,
        "session_start_limit": {
            "total": 1000,
            "remaining": 999,
            "reset_after": 1000,
            "max_concurrency": 1,
        },
    }
    f = fetch()
    assert f.headers["Authorization"] == "Bot tok"
    assert f.url("http://h/api/v10") == "http://h/api/v10/gateway/bot"
    assert f.answered(429, {}, {"retry_after": 0.25}) == 0.25  # not counted as a retry
    assert isinstance(f.answered(503, {}, None), float)  # the one retry allowed
    with pytest.raises(GatewayRequestError, match="after 2 attempts: HTTP 503"):
        f.answered(503, {}, None)
    info = fetch().answered(200, {}, body)
    assert isinstance(info, GatewayInfo)
    assert info.shards == 2
    with pytest.raises(InvalidTokenError):
        fetch().answered(401, {}, None)
    with pytest.raises(GatewayRequestError, match="HTTP 404"):
        fetch().answered(404, {}, None)
    with pytest.raises(GatewayRequestError, match="nonsense"):
        fetch().answered(200, {}, None)
    failing = fetch()
    failing.failed(ConnectionError("refused tok"))
    with pytest.raises(GatewayRequestError) as raised:
        failing.failed(ConnectionError("refused tok"))
    assert "tok" not in str(raised.value).replace("refused", "")


def test_a_waiting_send_learns_whether_its_command_was_written() -> None:
    from gateway_proto import GatewayConnection, ShardConfig

    outcomes: list[tuple[str, bool]] = []
    unsent = UnsentCommands()
    presence, voice = UpdatePresence(status="idle"), UpdateVoiceState(guild_id=1, channel_id=None)
    unsent.accepted(presence, lambda ok: outcomes.append(("presence", ok)))
    unsent.accepted(UpdatePresence(status="dnd"))  # a plain send(): nobody waits
    unsent.accepted(voice, lambda ok: outcomes.append(("voice", ok)))
    unsent.observe(PayloadSent(3, presence.to_payload()))
    assert outcomes == [("presence", True)]
    # A new connection with room for one refuses the voice command: never written.
    config = ShardConfig(token=TOKEN, intents=1, max_pending_commands=1)
    conn = GatewayConnection(config)
    conn.connect(0.0)
    assert unsent.requeue(conn, 0.0) == [voice]
    assert outcomes == [("presence", True), ("voice", False)]
    # The shard stops: whoever still waits is told.
    unsent.accepted(presence, lambda ok: outcomes.append(("last", ok)))
    assert unsent.take() == (UpdatePresence(status="dnd"), presence)
    assert outcomes[-1] == ("last", False)


def test_the_dispatch_subscription_matches_dispatch_names_only() -> None:
    from gateway_proto.driver_support import (
        ANY_DISPATCH,
        ANY_EVENT,
        LIFECYCLE_EVENTS,
        HandlerRegistry,
        name_matches,
    )

    registry: HandlerRegistry[str] = HandlerRegistry()
    registry.on(ANY_DISPATCH, "dispatches")
    registry.on(ANY_EVENT, "everything")
    registry.on("MESSAGE_CREATE", "messages")
    assert registry.handlers_for("MESSAGE_CREATE") == ["messages", "dispatches", "everything"]
    assert registry.handlers_for("TYPING_START") == ["dispatches", "everything"]
    for lifecycle in LIFECYCLE_EVENTS:  # "receive" included: no dispatch twice
        assert registry.handlers_for(lifecycle) == ["everything"]
    only: HandlerRegistry[str] = HandlerRegistry()
    only.on(ANY_DISPATCH, "dispatches")
    assert only.has("GUILD_CREATE")
    assert not only.has("receive")
    assert name_matches(frozenset({ANY_DISPATCH}), "READY")
    assert not name_matches(frozenset({ANY_DISPATCH}), "receive")
    assert name_matches(frozenset(), "receive")
    assert not name_matches(frozenset({"open"}), "READY")


def test_bad_configuration_is_a_value_error_of_the_library() -> None:
    from gateway_proto import ConfigError, GatewayError, LocalProtocolError, ShardConfig

    assert ShardConfig(token=TOKEN, intents=1, compression="none").compression is None
    assert ShardConfig(token=TOKEN, intents=1, compression=None).compression is None
    with pytest.raises(ConfigError, match="compression must be") as info:
        ShardConfig(token=TOKEN, intents=1, compression="gzip")  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LocalProtocolError)  # what callers caught before
    assert isinstance(info.value, GatewayError)
    with pytest.raises(ValueError, match="large_threshold"):
        ShardConfig(token=TOKEN, intents=1, large_threshold=1)


def test_a_new_dispatch_name_or_close_code_replaces_the_dict_other_threads_may_iterate() -> None:
    from gateway_proto.driver_support import ShardCounters

    counters = ShardCounters()
    counters.count_dispatch_name("READY")
    names, closes = counters.dispatch_names, counters.closes
    reader = iter(names)  # another thread, halfway through the dict
    next(reader)
    returned = counters.count_dispatch_name("GUILD_CREATE")
    counters.count_close(None)
    assert list(reader) == []  # the old dict did not change size under the reader
    assert returned is counters.dispatch_names
    assert counters.dispatch_names == {"READY": 1, "GUILD_CREATE": 1}
    assert names == {"READY": 1}
    assert counters.closes == {0: 1}
    assert closes == {}
