"""Unit tests of the anyio driver's own pieces: run on both backends, no driver param."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on asyncio and on trio."""
    backend: str = request.param
    return backend
