"""``new_gateway_event``: the C ``SlotMaker`` and the Python fallback build what the class does.

Drivers build one ``GatewayEvent`` per dispatch with ``new_gateway_event``, which
skips the frozen dataclass's ``__init__``; both ways of doing it must give an
event indistinguishable from the constructor's, and ``SlotMaker`` must refuse
what it cannot build safely.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_proto.driver_support import GatewayEvent, new_gateway_event, shard_events
from gateway_proto.driver_support.shard_events import dispatch_event_maker, python_event_maker

try:
    from gateway_proto._speedups import SlotMaker
except ImportError:
    SlotMaker = None  # type: ignore[assignment,misc]

values = st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(), st.integers()))


def _makers() -> list[Any]:
    makers: list[Any] = [new_gateway_event, python_event_maker(), python_event_maker(swap=False)]
    if SlotMaker is not None:
        names = ("name", "shard_id", "data", "sequence", "shard", "raw")
        makers.append(SlotMaker(GatewayEvent, names))
    return makers


@given(
    st.tuples(st.text(), st.integers(), values, values, values, st.one_of(st.none(), st.binary()))
)
def test_every_maker_builds_what_the_constructor_builds(
    fields: tuple[str, int, Any, Any, Any, bytes | None],
) -> None:
    name, shard_id, data, sequence, shard, raw = fields
    expected = GatewayEvent(name, shard_id, data, sequence, shard, raw)
    for make in _makers():
        event = make(name, shard_id, data, sequence, shard, raw)
        assert type(event) is GatewayEvent
        assert event == expected
        assert repr(event) == repr(expected)
        assert event.shard is shard
        assert event.raw is raw
        with pytest.raises(AttributeError):
            event.name = "changed"  # type: ignore[misc]


@given(st.tuples(st.text(), values, values, st.one_of(st.none(), st.binary()), st.integers()))
def test_a_dispatch_maker_builds_what_the_constructor_builds(
    fields: tuple[str, Any, Any, bytes | None, int],
) -> None:
    name, data, sequence, raw, shard_id = fields
    shard = object()
    expected = GatewayEvent(name, shard_id, data, sequence, shard, raw)
    saved: Any = getattr(shard_events, "SlotMaker")  # noqa: B009 (not exported)
    try:
        for maker in (saved, None):  # the C one (when built), then the Python one
            setattr(shard_events, "SlotMaker", maker)  # noqa: B010
            for swap in (True, False):
                event = dispatch_event_maker(shard_id, shard, swap=swap)(name, data, sequence, raw)
                assert type(event) is GatewayEvent
                assert event == expected
                assert event.shard is shard
                assert event.raw is raw
    finally:
        setattr(shard_events, "SlotMaker", saved)  # noqa: B010


def test_the_c_maker_is_used_when_the_extension_is_built() -> None:
    if SlotMaker is None:
        if os.environ.get("SPECTACLES_GATEWAY_NO_EXTENSIONS"):
            pytest.skip("the C extension was not built")
        pytest.fail("gateway_proto._speedups is missing: was the C extension built?")
    assert type(new_gateway_event) is SlotMaker
    assert type(dispatch_event_maker(0, None)) is SlotMaker


@pytest.mark.skipif(SlotMaker is None, reason="the C extension was not built")
def test_slot_maker_refuses_what_is_not_a_plain_slot_call() -> None:
    assert SlotMaker is not None
    make = SlotMaker(GatewayEvent, ("name", "shard_id"))
    with pytest.raises(TypeError, match="takes 2 arguments"):
        make("only one")
    with pytest.raises(TypeError, match="positional"):
        make("a", 1, shard_id=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no slot 'nope'"):
        SlotMaker(GatewayEvent, ("nope",))
    with pytest.raises(TypeError, match="not a slot"):
        SlotMaker(GatewayEvent, ("__init__",))
    with pytest.raises(TypeError, match="must be str"):
        SlotMaker(GatewayEvent, (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 8"):
        SlotMaker(GatewayEvent, tuple("abcdefghi"))
    with pytest.raises(ValueError, match="at most 8"):
        SlotMaker(GatewayEvent, tuple("abcdefgh"), {"shard": 1})
    with pytest.raises(TypeError, match="no slot 'nope'"):
        SlotMaker(GatewayEvent, ("name",), {"nope": 1})
    with pytest.raises(TypeError, match="must be str"):
        SlotMaker(GatewayEvent, ("name",), {1: 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        SlotMaker(GatewayEvent, ("name",), [("shard", 1)])  # type: ignore[arg-type]
    fixed = SlotMaker(GatewayEvent, ("name", "shard_id"), {"data": [1]})
    with pytest.raises(TypeError, match="takes 2 arguments"):
        fixed("a", 1, [2])
    assert fixed("a", 1).data == [1]
    with pytest.raises(TypeError):
        SlotMaker("not a class", ())  # type: ignore[arg-type]
