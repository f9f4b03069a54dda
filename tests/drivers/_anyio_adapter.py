"""The anyio driver behind the scenario adapter protocol (asyncio and trio)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from gateway_anyio import Cluster, Gateway, GatewayEvent, Shard, ShardState
from gateway_anyio._limiter import InProcessIdentifyLimiter

from .adapter import DEFAULT_TIMEOUT, TOKEN, DriverAdapter, Seen, SpawnSpec

__all__ = ["ADAPTERS", "AnyioAdapter"]


class _Running:
    """A running shard or cluster, recorded by a catch-all handler."""

    def __init__(self) -> None:
        self._seen: list[Seen] = []
        self._changed: anyio.Event | None = None
        self.shards: dict[int, Shard] = {}
        self.errors: dict[int, BaseException] = {}
        self.cluster: Cluster | None = None
        #: Starts ``connect()`` of a shard in the adapter's task group.
        self.start: Callable[[int], None] | None = None

    # -- recording ------------------------------------------------------------

    def record(self, event: GatewayEvent) -> None:
        self._append(Seen(event.name, event.shard_id, event.sequence, event.data))

    def _append(self, seen: Seen) -> None:
        self._seen.append(seen)
        if self._changed is not None:
            self._changed.set()

    async def _until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        try:
            with anyio.fail_after(timeout):
                while not check():
                    self._changed = anyio.Event()
                    with anyio.move_on_after(0.05):  # also polls state that emits nothing
                        await self._changed.wait()
        except TimeoutError:
            names = [s.name for s in self._seen if s.name not in ("send", "receive")]
            raise AssertionError(f"timed out waiting for {what}; saw {names[-40:]}") from None

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
                log.extend((g.at, g.shard_id) for g in limiter.history)
        return log

    def shard(self, shard_id: int = 0) -> Any:
        if self.cluster is not None:
            return self.cluster.shards[shard_id]
        return self.shards[shard_id]

    def dispatches(self, name: str | None = None, *, shard_id: int | None = None) -> list[Seen]:
        return [
            s
            for s in self._seen
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
            return [s for s in self._seen if s.name == name and shard_id in (None, s.shard_id)]

        await self._until(lambda: len(matching()) >= count, f"{count} x {name!r}", timeout)
        return matching()[count - 1]

    async def wait_stopped(self, *, timeout: float = DEFAULT_TIMEOUT) -> BaseException | None:
        def all_stopped() -> bool:
            shards = self.cluster.shards if self.cluster is not None else self.shards
            return all(s.state is ShardState.STOPPED and not s._running for s in shards.values())

        await self._until(all_stopped, "the shards to stop", timeout)
        errors = self.cluster.errors if self.cluster is not None else self.errors
        return next(iter(errors.values()), None)

    async def send(self, command: Any, *, shard_id: int = 0) -> None:
        await self.shard(shard_id).send(command)

    async def request_guild_members(
        self,
        guild_id: int | str,
        *,
        shard_id: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> list[Any]:
        members: list[Any] = []
        with anyio.fail_after(timeout):
            async for member in self.shard(shard_id).request_guild_members(guild_id, **options):
                members.append(member)
        return members

    async def disconnect(self, code: int = 1000, *, shard_id: int = 0) -> None:
        with anyio.fail_after(DEFAULT_TIMEOUT):
            await self.shard(shard_id).disconnect(code)

    async def connect_again(self, *, shard_id: int = 0) -> None:
        assert self.start is not None, "connect_again() works on a lone shard"
        self.start(shard_id)
        await self._until(lambda: self.shard(shard_id)._running, "the shard to start", 5.0)


def _slow_handler(running: _Running, name: str, seconds: float) -> Callable[[GatewayEvent], Any]:
    async def slow(event: GatewayEvent) -> None:
        await anyio.sleep(seconds)
        running._append(Seen(f"slow_handler_done:{name}", event.shard_id, None, None))

    return slow


class AnyioAdapter:
    """Runs ``gateway_anyio`` in the scenario's own event loop."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"anyio-{backend}"

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
        rest_verify: Any = None,
        disconnect_first: bool = False,
        **options: Any,
    ) -> AsyncIterator[_Running]:
        verify = rest_verify if rest_verify is not None else (ssl_context or True)
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

        async def run() -> None:
            try:
                await shard.connect()
            except Exception as exc:
                running.errors[shard_id] = exc

        if disconnect_first:
            with anyio.fail_after(DEFAULT_TIMEOUT):
                await shard.disconnect()
        async with anyio.create_task_group() as tg:

            def start(_: int) -> None:
                tg.start_soon(run)

            running.start = start
            start(shard_id)
            try:
                yield running
            finally:
                with anyio.move_on_after(DEFAULT_TIMEOUT):
                    await shard.disconnect(1000)
                tg.cancel_scope.cancel()

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
        gateway = Gateway(TOKEN, api_base=fake.api_base, verify=ssl_context or True)
        if identify_window is not None:
            options["identify_window"] = identify_window
        if ssl_context is not None:
            options["ssl_context"] = ssl_context
        cluster = Cluster(gateway, intents=options.pop("intents", 513), **options)
        running = _Running()
        running.cluster = cluster
        cluster.on("*", running.record)
        async with cluster:
            await cluster.spawn(spawn, shard_count=shard_count)
            yield running


ADAPTERS: list[tuple[str, Callable[[], DriverAdapter]]] = [
    ("anyio-asyncio", lambda: AnyioAdapter("asyncio")),
    ("anyio-trio", lambda: AnyioAdapter("trio")),
]
