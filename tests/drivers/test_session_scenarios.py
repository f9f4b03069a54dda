"""Driver scenarios about sessions against servers that exist (PROTOCOL.md 13b).

Replays from ``seq`` inclusive, READY and GUILD_CREATE numbered 0, SESSIONS_REPLACE
before READY, a resume URL that drops TLS or carries credentials, and an outage
longer than two connect attempts. Each runs on every driver (see ``adapter.py``);
assertions are about order and counts only. A server without resume support, and
a 30-second outage, run on trio's virtual clock in ``anyio/test_long_outage.py``
(identify windows and backoff would cost seconds of real time here).
"""

from __future__ import annotations

import logging
import ssl

import anyio
import pytest
import trustme

from gateway_proto.errors import UnsafeResumeUrlError

from .adapter import DriverAdapter, Running
from .test_scenarios import assert_exactly_once_in_order, dispatch_messages, fake

pytestmark = pytest.mark.anyio


def numbered(run: Running) -> list[int]:
    """The sequences of the delivered dispatches that carry one (s > 0), in order."""
    return [s.sequence for s in run.dispatches() if s.sequence]


async def test_a_replay_from_seq_inclusive_is_delivered_once(driver: DriverAdapter) -> None:
    async with fake(replay_inclusive=True) as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await dispatch_messages(gw, range(3))
        await run.wait_for("MESSAGE_CREATE", count=3)
        await gw.connections[0].drop()
        await dispatch_messages(gw, range(3, 6))  # buffered for the resume
        await run.wait_for("RESUMED")
        await dispatch_messages(gw, range(6, 8))
        await run.wait_for("MESSAGE_CREATE", count=8)
        assert_exactly_once_in_order(run, 8)
        replayed = [p.s or 0 for p in gw.connections[1].dispatches()]
        assert replayed[0] == replayed[1] - 1  # the fake did send the last one again
        assert run.shard().counters.duplicates_dropped == 1


async def test_ready_and_guild_create_numbered_zero(driver: DriverAdapter) -> None:
    options = {"zero_sequence_ready": True, "replay_inclusive": True}
    async with fake(**options) as gw, driver.start_shard(gw) as run:
        await run.wait_for("GUILD_CREATE", count=len(gw.guild_ids))
        await dispatch_messages(gw, range(3))
        await run.wait_for("MESSAGE_CREATE", count=3)
        names = [s.name for s in run.dispatches()]
        assert names[:2] == ["READY", "READY_SUPPLEMENTAL"]
        assert names.count("GUILD_CREATE") == len(gw.guild_ids)
        assert run.shard().seq == 3
        await gw.connections[0].drop()
        await dispatch_messages(gw, range(3, 5))
        await run.wait_for("RESUMED")
        await run.wait_for("MESSAGE_CREATE", count=5)
        assert [s.data["n"] for s in run.dispatches("MESSAGE_CREATE")] == list(range(5))
        assert numbered(run) == sorted(set(numbered(run)))
        assert run.dispatches("GUILD_CREATE")[0].sequence == 0


async def test_sessions_replace_before_ready_is_delivered(driver: DriverAdapter) -> None:
    async with fake(sessions_replace_before_ready=True) as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await dispatch_messages(gw, range(2))
        await run.wait_for("MESSAGE_CREATE", count=2)
        names = [s.name for s in run.dispatches()]
        assert names[:2] == ["SESSIONS_REPLACE", "READY"]
        assert_exactly_once_in_order(run, 2)


async def test_credentials_in_the_resume_url_stay_out_of_host_and_logs(
    driver: DriverAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "ws://bot:s3cret@127.0.0.1:{port}/resume"
    async with fake(resume_url=url) as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await gw.connections[0].reconnect()
        await run.wait_for("RESUMED")
        resumed = gw.connections[1]
        assert resumed.path == "/resume"
        assert resumed.host == f"127.0.0.1:{gw.port}"
        assert "s3cret" not in repr(run.shard().session)
        # The server's own READY carries it; nothing the driver says does.
        said = [s for s in run.seen if s.sequence is None and s.name != "receive"]
        assert not [s for s in said if "s3cret" in repr(s.data)]
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]


async def test_a_resume_url_that_drops_tls_is_refused(driver: DriverAdapter) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    plain = "ws://127.0.0.1:{port}/resume"  # the RESUME would carry the token in clear
    async with (
        fake(ssl_context=server, resume_url=plain) as gw,
        driver.start_shard(gw, ssl_context=client) as run,
    ):
        await run.wait_for("READY")
        error = (await run.wait_for("error")).data
        assert isinstance(error, UnsafeResumeUrlError)
        await dispatch_messages(gw, range(2))
        await gw.connections[0].reconnect()
        await run.wait_for("RESUMED")
        assert gw.connections[1].path == "/"  # the base URL, over TLS
        assert run.shard().counters.reconnects == {"reconnect_requested": 1}
        assert_exactly_once_in_order(run, 2)


async def test_an_outage_longer_than_two_connect_attempts_still_resumes(
    driver: DriverAdapter,
) -> None:
    async with fake(session_ttl=60.0) as gw, driver.start_shard(gw) as run:
        await run.wait_for("READY")
        await dispatch_messages(gw, range(3))
        await run.wait_for("MESSAGE_CREATE", count=3)
        counters = run.shard().counters
        async with gw.unreachable():
            await dispatch_messages(gw, range(3, 6))  # the session keeps them for a resume
            with anyio.fail_after(10):
                # Resume URL, then base URL: both refused (the old policy gave up here).
                while counters.reconnects.get("connect_failed", 0) < 2:
                    await anyio.sleep(0.01)
        await run.wait_for("RESUMED")
        await run.wait_for("MESSAGE_CREATE", count=6)
        assert_exactly_once_in_order(run, 6)
        assert (counters.identifies, counters.resumes) == (1, 1)
