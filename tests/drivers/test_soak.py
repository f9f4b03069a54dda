"""Soak: dispatches through random faults, exactly once and in order, per session.

Each case runs one shard of one driver (anyio on asyncio, anyio on trio, the
blocking driver) against the fake gateway, which streams numbered dispatches while
a seeded schedule injects faults: TCP drops, zombies, op 7, op 9 both ways, split
zlib messages, fragmented frames and big dispatches (128 KiB to 1 MiB). The ledger
checks every delivered dispatch against the fake's records (see ``_soak.py``), and
the end finds no anyio task, thread or file descriptor left behind.

The cases cover every transport compression with both encodings between them
(payload compression on one), and both drivers get every fault: the faults that
end connections are dealt out, one to each of the anyio driver's six cases (three
per backend) and two to each of the blocking driver's three, starting at a place
the seed picks (so that over runs each backend meets each fault); split, fragment
and big come in every case.

Environment:
    SPECTACLES_SOAK_SECONDS: seconds of random faults per case after the dealt-out
        ones (default 0: the dealt ones only, in a seeded order, with seeded bursts,
        sizes and counts; e.g. 600 for a long soak: ``SPECTACLES_SOAK_SECONDS=600
        pytest tests/drivers/test_soak.py``).
    SPECTACLES_SOAK_SEED: the seed (default: a new one per session, printed on
        failure); set it to replay a failed run's schedule.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest

from ._anyio_adapter import AnyioAdapter
from ._soak import DISRUPTIVE, FAULTS, SoakConfig, soak
from ._sync_adapter import SyncAdapter
from .adapter import DriverAdapter

pytestmark = pytest.mark.anyio

SECONDS = float(os.environ.get("SPECTACLES_SOAK_SECONDS", "0"))
SEED = int(os.environ.get("SPECTACLES_SOAK_SEED") or random.SystemRandom().getrandbits(32))


@dataclass(frozen=True, slots=True)
class Case:
    driver: str
    compress: str | None
    encoding: str
    must: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.driver}-{self.compress or 'none'}-{self.encoding}"


def _cases(seed: int = SEED) -> list[pytest.ParameterSet]:
    drivers = ("anyio-asyncio", "anyio-trio", "sync")
    transports: tuple[str | None, ...] = ("zlib-stream", "zstd-stream", None)
    params = []
    dealt_so_far: dict[str, int] = {}
    for d, driver in enumerate(drivers):
        family = driver.split("-")[0]
        per_case = 1 if family == "anyio" else 2  # six faults over six or three cases
        for t, transport in enumerate(transports):
            encoding = ("json", "etf")[(d + t) % 2]
            compress = transport
            if transport is None and driver == "sync" and encoding == "json":
                compress = "payload"  # JSON payload compression: zlib per big message
            first = seed + dealt_so_far.get(family, 0)
            dealt = tuple(DISRUPTIVE[(first + i) % len(DISRUPTIVE)] for i in range(per_case))
            dealt_so_far[family] = dealt_so_far.get(family, 0) + per_case
            split = ("split",) if compress == "zlib-stream" else ()
            shaping = ("fragment", "big", *split)
            case = Case(driver, compress, encoding, (*dealt, *shaping))
            params.append(pytest.param(case, id=case.id))
    return params


@pytest.fixture(params=_cases())
def case(request: pytest.FixtureRequest) -> Case:
    """One soak case: a driver, a compression, an encoding, the faults dealt to it."""
    result: Case = request.param
    return result


@pytest.fixture
def driver(case: Case) -> DriverAdapter:
    """The case's driver (replaces the scenarios' fixture, which runs every driver)."""
    if case.driver == "sync":
        return SyncAdapter()
    return AnyioAdapter(case.driver.removeprefix("anyio-"))


@pytest.fixture
def anyio_backend(driver: DriverAdapter) -> str:
    """The fake and the harness run on the driver's backend."""
    return driver.backend


def test_both_drivers_meet_every_fault() -> None:
    # The dealing above, checked for every starting place the seed can pick.
    for seed in range(len(DISRUPTIVE)):
        by_driver: dict[str, set[str]] = {}
        for param in _cases(seed):
            case = param.values[0]
            assert isinstance(case, Case)
            by_driver.setdefault(case.driver.split("-")[0], set()).update(case.must)
        assert by_driver == {"anyio": set(FAULTS), "sync": set(FAULTS)}


async def test_soak(driver: DriverAdapter, case: Case) -> None:
    faults = set(FAULTS) if case.compress == "zlib-stream" else set(FAULTS) - {"split"}
    config = SoakConfig(
        seed=SEED,
        seconds=SECONDS,
        encoding=case.encoding,
        compress=case.compress,
        faults=frozenset(faults),
        must=case.must,
    )
    report = await soak(driver, config)
    print(
        f"{report.messages} messages, {report.sessions} sessions, {report.closes} closes, "
        f"{len(report.faults)} faults: {' '.join(report.faults[:60])}"
    )
    # The ledger checked every dispatch as it came; these say the run did something.
    assert report.messages > 0
    assert len(report.faults) >= len(case.must)
    new_sessions = sum(f.startswith("op9-new-session@") for f in report.faults)
    assert report.sessions == 1 + new_sessions
