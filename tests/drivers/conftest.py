"""Fixtures of the driver scenarios: one ``driver`` fixture over every adapter.

``DRIVERS`` lists ``(id, factory)`` pairs. The anyio adapter registers two (asyncio
and trio); the blocking driver's adapter is picked up from ``_sync_adapter.py``
(its ``ADAPTERS`` list) as soon as that module exists. ``anyio_backend`` follows
the adapter, so each scenario runs once per (driver, backend) pair.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

import pytest

from ._anyio_adapter import ADAPTERS as ANYIO_ADAPTERS
from .adapter import DriverAdapter

DRIVERS: list[tuple[str, Callable[[], DriverAdapter]]] = [*ANYIO_ADAPTERS]

# The blocking driver's adapter is optional until its author adds it; find_spec
# (not try/except ImportError) so that a broken _sync_adapter fails loudly.
if importlib.util.find_spec(f"{__package__}._sync_adapter") is not None:
    _sync = importlib.import_module(f"{__package__}._sync_adapter")
    DRIVERS.extend(_sync.ADAPTERS)


@pytest.fixture(params=[factory for _, factory in DRIVERS], ids=[name for name, _ in DRIVERS])
def driver(request: pytest.FixtureRequest) -> DriverAdapter:
    """The driver under test, behind the adapter protocol of ``adapter.py``."""
    factory: Callable[[], DriverAdapter] = request.param
    return factory()


@pytest.fixture
def anyio_backend(driver: DriverAdapter) -> str:
    """Run each scenario (and its fake gateway) on the adapter's backend."""
    return driver.backend
