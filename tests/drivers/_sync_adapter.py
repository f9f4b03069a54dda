"""The blocking driver (``gateway_sync``) behind the scenario adapter protocol.

The scenario and the fake gateway run on the test's event loop; the driver runs on
its own threads and talks to the fake over loopback. Nothing here blocks the loop:
blocking calls go through ``anyio.to_thread.run_sync`` and waits poll with
``anyio.sleep``.

Leaving ``start_shard``/``start_cluster`` stops the driver and then *checks* that it
left nothing behind: no ``gateway-*`` thread alive, and no socket descriptor open
that was not open before (the fake's server-side sockets are given a moment to
close). A leak fails the scenario.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread

from gateway_sync import Cluster, Gateway, GatewayEvent, InProcessIdentifyLimiter, Shard

from .adapter import DEFAULT_TIMEOUT, TOKEN, DriverAdapter, Seen, SpawnSpec

__all__ = ["ADAPTERS", "LeakCheck", "SyncAdapter", "driver_threads", "open_sockets", "until"]

#: Every thread of the blocking driver carries this prefix in its name.
THREAD_PREFIX = "gateway-"


class CountingCondition(threading.Condition):
    """A Condition that counts its notify() calls: one per wake-up handed out."""

    notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def driver_threads() -> list[threading.Thread]:
    """Return the blocking driver's live threads."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


def open_sockets() -> set[str]:
    """Return this process's open socket descriptors as ``"fd:socket:[inode]"`` strings."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while listing (the listing's own descriptor, or a race)
        if target.startswith("socket:"):
            found.add(f"{fd}:{target}")
    return found


class LeakCheck:
    """Snapshot threads and sockets now; :meth:`check` fails on anything new left open."""

    def __init__(self) -> None:
        self.threads = set(driver_threads())
        self.sockets = open_sockets()

    def leaks(self) -> tuple[list[threading.Thread], set[str]]:
        """Return the driver threads and socket descriptors opened since the snapshot."""
        threads = [t for t in driver_threads() if t not in self.threads]
        return threads, open_sockets() - self.sockets

    def _still_open(self, deadline: float) -> bool:
        # Whether something is still open; past the deadline that fails the test.
        threads, sockets = self.leaks()
        if (threads or sockets) and time.monotonic() > deadline:
            raise AssertionError(
                f"leaked threads {[t.name for t in threads]} and sockets {sorted(sockets)}"
            )
        return bool(threads or sockets)

    async def check(self, *, grace: float = 5.0) -> None:
        """Fail unless every new thread ended and every new socket closed within ``grace``."""
        deadline = time.monotonic() + grace
        while self._still_open(deadline):
            await anyio.sleep(0.02)

    def check_blocking(self, *, grace: float = 5.0) -> None:
        """:meth:`check` for plain blocking code."""
        deadline = time.monotonic() + grace
        while self._still_open(deadline):
            time.sleep(0.02)


def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class _Running:
    """A running shard or cluster, recorded by a catch-all handler (on its own thread)."""

    def __init__(self) -> None:
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self.shards: dict[int, Shard] = {}
        self.cluster: Cluster | None = None

    def record(self, event: GatewayEvent) -> None:
        self._append(Seen(event.name, event.shard_id, event.sequence, event.data))

    def _append(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def _snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    async def _until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                names = [s.name for s in self._snapshot() if s.name not in ("send", "receive")]
                raise AssertionError(f"timed out waiting for {what}; saw {names[-40:]}")
            await anyio.sleep(0.01)

    # -- the Running protocol ---------------------------------------------------------

    @property
    def seen(self) -> list[Seen]:
        return self._seen

    @property
    def identify_log(self) -> list[tuple[float, int]]:
        limiters = [s._limiter for s in self.shards.values()]
        if self.cluster is not None:
            limiters = [self.cluster.identify_limiter] if self.cluster.identify_limiter else []
        log: list[tuple[float, int]] = []
        for limiter in dict.fromkeys(limiters):
            if isinstance(limiter, InProcessIdentifyLimiter):
                log.extend((g.at, g.shard_id) for g in list(limiter.history))
        return log

    def shard(self, shard_id: int = 0) -> Any:
        if self.cluster is not None:
            return self.cluster.shards[shard_id]
        return self.shards[shard_id]

    def dispatches(self, name: str | None = None, *, shard_id: int | None = None) -> list[Seen]:
        return [
            s
            for s in self._snapshot()
            if s.sequence is not None
            and (name is None or s.name == name)
            and (shard_id is None or s.shard_id == shard_id)
        ]

    async def wait_for(
        self,
        name: str,
        *,
        count: int = 1,
        shard_id: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Seen:
        def matching() -> list[Seen]:
            return [
                s for s in self._snapshot() if s.name == name and shard_id in (None, s.shard_id)
            ]

        await self._until(lambda: len(matching()) >= count, f"{count} x {name!r}", timeout)
        return matching()[count - 1]

    async def wait_stopped(self, *, timeout: float = DEFAULT_TIMEOUT) -> BaseException | None:
        shards = self.cluster.shards if self.cluster is not None else self.shards
        await self._until(
            lambda: not any(s.running for s in shards.values()), "the shards to stop", timeout
        )
        if self.cluster is None:
            # A stopped shard's handler threads may still be delivering its last
            # events (``disconnect`` among them); disconnect() waits for them, as
            # the user's ``connect()`` does.
            for shard in shards.values():
                await anyio.to_thread.run_sync(shard.disconnect)
        if self.cluster is not None:
            return next(iter(self.cluster.errors.values()), None)
        return next((s.error for s in shards.values() if s.error is not None), None)

    async def send(self, command: Any, *, shard_id: int = 0) -> None:
        await anyio.to_thread.run_sync(self.shard(shard_id).send, command)

    async def request_guild_members(
        self,
        guild_id: int | str,
        *,
        shard_id: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> list[Any]:
        shard: Shard = self.shard(shard_id)

        def collect() -> list[Any]:
            return list(shard.request_guild_members(guild_id, timeout=timeout, **options))

        with anyio.fail_after(timeout + 1.0):
            return await anyio.to_thread.run_sync(collect)

    async def disconnect(self, code: int = 1000, *, shard_id: int = 0) -> None:
        with anyio.fail_after(DEFAULT_TIMEOUT):
            await anyio.to_thread.run_sync(self.shard(shard_id).disconnect, code)

    async def connect_again(self, *, shard_id: int = 0) -> None:
        assert self.cluster is None, "connect_again() works on a lone shard"
        self.shard(shard_id).start()


def _slow_handler(running: _Running, name: str, seconds: float) -> Callable[[GatewayEvent], None]:
    def slow(event: GatewayEvent) -> None:
        time.sleep(seconds)  # blocks this handler's own thread, nothing else
        running._append(Seen(f"slow_handler_done:{name}", event.shard_id, None, None))

    return slow


class SyncAdapter:
    """Runs ``gateway_sync`` on its own threads next to the scenario's event loop."""

    name = "sync"

    def __init__(self, backend: str = "asyncio") -> None:
        self.backend = backend

    @asynccontextmanager
    async def start_shard(
        self,
        fake: Any,
        *,
        shard_id: int = 0,
        shard_count: int = 1,
        intents: int = 513,
        ssl_context: Any = None,
        slow_handlers: Mapping[str, float] | None = None,
        disconnect_first: bool = False,
        **options: Any,
    ) -> AsyncIterator[_Running]:
        leaks = LeakCheck()
        # REST may be trusted separately from the gateway (rest_verify), to show that
        # the gateway's TLS is verified on its own.
        verify = options.pop("rest_verify", ssl_context or True)
        gateway = Gateway(TOKEN, api_base=fake.api_base, verify=verify)
        shard = Shard(
            gateway,
            shard_id,
            shard_count=shard_count,
            intents=intents,
            ssl_context=ssl_context,
            rng=options.pop("rng", None) or random.Random(shard_id),
            **options,
        )
        running = _Running()
        running.shards[shard_id] = shard
        shard.on("*", running.record)
        for name, seconds in (slow_handlers or {}).items():
            shard.on(name, _slow_handler(running, name, seconds))
        if disconnect_first:
            with anyio.fail_after(DEFAULT_TIMEOUT):
                await anyio.to_thread.run_sync(shard.disconnect)
        shard.start()
        try:
            yield running
        finally:
            with anyio.fail_after(DEFAULT_TIMEOUT + 5):
                await anyio.to_thread.run_sync(shard.disconnect, 1000)
        await leaks.check()

    @asynccontextmanager
    async def start_cluster(
        self,
        fake: Any,
        spawn: SpawnSpec,
        *,
        identify_window: float | None = None,
        ssl_context: Any = None,
        shard_count: int | None = None,
        **options: Any,
    ) -> AsyncIterator[_Running]:
        leaks = LeakCheck()
        verify = options.pop("rest_verify", ssl_context or True)
        gateway = Gateway(TOKEN, api_base=fake.api_base, verify=verify)
        if identify_window is not None:
            options["identify_window"] = identify_window
        if ssl_context is not None:
            options["ssl_context"] = ssl_context
        cluster = Cluster(gateway, intents=options.pop("intents", 513), **options)
        running = _Running()
        running.cluster = cluster
        cluster.on("*", running.record)
        try:
            await anyio.to_thread.run_sync(
                functools.partial(cluster.spawn, spawn, shard_count=shard_count)
            )
            yield running
        finally:
            with anyio.fail_after(DEFAULT_TIMEOUT + 5):
                await anyio.to_thread.run_sync(cluster.close, 1000)
        await leaks.check()


ADAPTERS: list[tuple[str, Callable[[], DriverAdapter]]] = [("sync", SyncAdapter)]
