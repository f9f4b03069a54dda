"""Suite-wide guard against token leaks, and the fixture that runs a test on both wire paths."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from gateway_proto import GatewayConnection, GatewayError, _wire
from gateway_proto.events import Event

from .helpers import TOKEN

_SECRETS = (TOKEN, TOKEN.rsplit(".", 1)[-1])

# Longer fuzzing (docs/testing.md): HYPOTHESIS_PROFILE=long, or --hypothesis-profile=long.
# Loaded here, before the test modules are imported, as their settings read it.
settings.register_profile("long", max_examples=6_000, deadline=None)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def _check(thing: object) -> None:
    for text in (repr(thing), str(thing)):
        for secret in _SECRETS:
            assert secret not in text, f"the token leaked into {type(thing).__name__}: {text}"


@pytest.fixture(autouse=True)
def _token_never_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Check every GatewayError built and every event drained during the test."""
    errors: list[GatewayError] = []
    original_init = GatewayError.__init__
    original_events = GatewayConnection.events
    original_next = GatewayConnection.next_event

    @functools.wraps(original_init)
    def init(self: GatewayError, *args: object) -> None:
        original_init(self, *args)
        errors.append(self)

    @functools.wraps(original_events)
    def events(self: GatewayConnection) -> Iterator[Event]:
        for event in original_events(self):
            _check(event)
            yield event

    @functools.wraps(original_next)
    def next_event(self: GatewayConnection) -> Event | None:
        event = original_next(self)
        _check(event)
        return event

    monkeypatch.setattr(GatewayError, "__init__", init)
    monkeypatch.setattr(GatewayConnection, "events", events)
    monkeypatch.setattr(GatewayConnection, "next_event", next_event)
    yield
    for error in errors:
        _check(error)


@pytest.fixture(params=["speedups", "python"])
def wire_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on the C hot path and on the pure-Python wire layer.

    The C path must be there unless the build was told to skip it
    (``SPECTACLES_GATEWAY_NO_EXTENSIONS``): a failed build must not quietly
    leave it untested.
    """
    if request.param == "python":
        monkeypatch.setattr(_wire, "Scanner", None)
    elif _wire.Scanner is None:
        if os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS"):
            pytest.skip("gateway_proto._speedups was not built (SPECTACLES_GATEWAY_NO_EXTENSIONS)")
        pytest.fail("gateway_proto._speedups is missing: was the C extension built?")
    return str(request.param)
