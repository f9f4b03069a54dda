"""The adapter protocol that the shared driver scenarios are written against.

Both drivers (``gateway_anyio`` on asyncio and trio, ``gateway_sync`` on threads)
run the *same* scenario functions (``test_scenarios.py``), so the two cannot drift.
A scenario is an async test: the fake gateway (``gateway_testing.FakeGateway``) runs
on the test's event loop, and the adapter starts the driver under test against it
(the anyio adapter in the same loop, the sync adapter in its own threads).

Registering an adapter: ``conftest.py`` holds ``DRIVERS``, a list of
``(id, factory)``; the ``driver`` fixture is parametrized over it and the
``anyio_backend`` fixture follows the adapter's ``backend``. The anyio adapter lives
in ``_anyio_adapter.py``; the blocking driver's in ``_sync_adapter.py`` (picked up by
``conftest.py`` as soon as that file exists; it must define
``ADAPTERS: list[tuple[str, Callable[[], DriverAdapter]]]``).

Rules for adapters (so a scenario means the same thing on every driver):

* Events are recorded by one catch-all handler registered with ``on("*", ...)``
  *before* the shard connects, so nothing is missed; ``seen`` lists them in the
  order the driver delivered them. Dispatches are recorded under their name
  (``"READY"``, ``"MESSAGE_CREATE"``, ...), lifecycle events under theirs
  (``"open"``, ``"close"``, ``"connect"``, ``"disconnect"``, ``"error"``,
  ``"state"``, ``"send"``, ``"receive"``, ``"identify_wait"``).
* Nothing in an adapter may block the test's event loop: the sync adapter waits
  in worker threads (``anyio.to_thread.run_sync``) or polls with ``anyio.sleep``.
* Leaving the ``start_*`` context manager stops the driver (``disconnect`` with
  1000, then waits for it) and must leave no task, thread or socket behind.
* Waits take a timeout and raise ``AssertionError`` (with what was seen) when it
  expires, never hang.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["DEFAULT_TIMEOUT", "TOKEN", "DriverAdapter", "Running", "Seen", "SpawnSpec"]

#: The token every scenario's fake gateway accepts.
TOKEN = "test-token.abcdef.0123456789"
#: Seconds a scenario waits for anything before failing.
DEFAULT_TIMEOUT = 10.0

#: What ``Cluster.spawn`` takes: a count, explicit shard ids, or ``"auto"``.
SpawnSpec = int | Sequence[int] | Literal["auto"]


@dataclass(frozen=True, slots=True)
class Seen:
    """One event the driver delivered to the test's catch-all handler.

    Attributes:
        name: the event name (a dispatch name, or a lifecycle name such as ``"close"``).
        shard_id: the shard that produced it.
        sequence: the dispatch's sequence number (``None`` for lifecycle events).
        data: the dispatch's ``d``, or the lifecycle event's payload.

    """

    name: str
    shard_id: int
    sequence: int | None
    data: Any


class Running(Protocol):
    """A shard or a cluster running against the fake, as a scenario sees it."""

    @property
    def seen(self) -> list[Seen]:
        """Every event delivered so far, in delivery order (a live list)."""
        ...

    @property
    def identify_log(self) -> list[tuple[float, int]]:
        """``(limiter clock time, shard_id)`` of each identify permit, in grant order.

        The time is on the identify limiter's (injected) clock, so a scenario can
        check bucket windows without reading the wall clock. Empty for a lone shard
        that uses no limiter.
        """
        ...

    def shard(self, shard_id: int = 0) -> Any:
        """Return the driver's ``Shard`` object (``seq``, ``session``, ``latency``,
        ``state``, ``counters`` are read from it directly)."""
        ...

    def dispatches(self, name: str | None = None, *, shard_id: int | None = None) -> list[Seen]:
        """Return the recorded dispatches (sequence not ``None``), optionally filtered."""
        ...

    async def wait_for(
        self,
        name: str,
        *,
        count: int = 1,
        shard_id: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Seen:
        """Wait until ``count`` events named ``name`` were seen; return the last one."""
        ...

    async def wait_stopped(self, *, timeout: float = DEFAULT_TIMEOUT) -> BaseException | None:
        """Wait until the shard (or every shard of the cluster) stopped on its own.

        Returns the exception that ended it (a fatal close raises a
        ``gateway_proto.errors.FatalCloseError`` subclass), or ``None`` for a
        clean stop. Fails the test if it is still running after ``timeout``.
        """
        ...

    async def send(self, command: Any, *, shard_id: int = 0) -> None:
        """Send a ``gateway_proto.commands`` command through the shard's ``send``."""
        ...

    async def request_guild_members(
        self,
        guild_id: int | str,
        *,
        shard_id: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> list[Any]:
        """Collect everything ``shard.request_guild_members(guild_id, **options)`` yields."""
        ...

    async def disconnect(self, code: int = 1000, *, shard_id: int = 0) -> None:
        """Call the shard's ``disconnect(code)`` and wait until it returned."""
        ...

    async def connect_again(self, *, shard_id: int = 0) -> None:
        """Start a stopped shard again, as its owner would (``connect()``/``start()``).

        Returns once the new run started; wait for its events as usual.
        """
        ...


class DriverAdapter(Protocol):
    """How the scenarios start a driver against a fake gateway."""

    #: The pytest id, e.g. ``"anyio-asyncio"``, ``"anyio-trio"``, ``"sync"``.
    name: str
    #: The anyio backend the scenario (and the fake) runs on: ``"asyncio"`` or ``"trio"``.
    backend: str

    def start_shard(
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
    ) -> AbstractAsyncContextManager[Running]:
        """Start one shard against ``fake`` (REST: ``fake.api_base``); stop it on exit.

        Args:
            fake: a running ``gateway_testing.FakeGateway``.
            shard_id: the shard's id.
            shard_count: the total number of shards.
            intents: the intents bitfield.
            ssl_context: the client's ``ssl.SSLContext`` (for a TLS fake), or ``None``.
            slow_handlers: event name -> seconds: registers, for each, a handler that
                blocks that long in the driver's idiom (``await anyio.sleep`` for anyio,
                ``time.sleep`` for sync) and then records a ``Seen`` named
                ``"slow_handler_done:<name>"``.
            rest_verify: the ``verify`` of the ``Gateway``'s REST client; ``None`` means
                ``ssl_context`` if given, else ``True`` (lets a scenario trust REST but
                not the gateway, to prove the gateway verifies by default).
            disconnect_first: call the shard's ``disconnect()`` once before it is
                started (it is not running then), and wait for that call.
            options: passed to the ``Shard`` constructor as is (``rng`` replaces the
                adapter's ``random.Random(shard_id)``: a seeded soak passes its own).

        The shard is connecting when the context is entered; wait for ``"READY"``.

        """
        ...

    def start_cluster(
        self,
        fake: Any,
        spawn: SpawnSpec,
        *,
        identify_window: float | None = None,
        ssl_context: Any = None,
        shard_count: int | None = None,
        **options: Any,
    ) -> AbstractAsyncContextManager[Running]:
        """Start a ``Cluster`` against ``fake``, ``spawn`` its shards; close it on exit.

        Args:
            fake: a running ``gateway_testing.FakeGateway``.
            spawn: the argument to ``Cluster.spawn``.
            identify_window: the identify limiter's window in seconds (Discord: 5),
                shortened so bucket scenarios run fast; ``None`` keeps the default.
            ssl_context: the client's ``ssl.SSLContext``, or ``None``.
            shard_count: ``Cluster.spawn``'s ``shard_count`` (the pinned total).
            options: passed to the ``Cluster`` constructor as is.

        """
        ...
