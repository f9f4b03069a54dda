"""``DropOldestBuffer``: keeps the newest ``maxlen`` items and counts every one it drops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_proto.driver_support import DropOldestBuffer

# Each step: an int to append, a list to extend with, or None to pop the oldest.
steps = st.lists(
    st.one_of(st.integers(), st.lists(st.integers(), max_size=12), st.none()), max_size=60
)


@given(maxlen=st.integers(1, 8), steps=steps)
def test_it_behaves_like_a_list_that_drops_its_oldest(
    maxlen: int, steps: list[int | list[int] | None]
) -> None:
    buffer: DropOldestBuffer[int] = DropOldestBuffer(maxlen)
    model: list[int] = []
    dropped = 0
    for step in steps:
        if step is None:
            if model:
                assert buffer.popleft() == model.pop(0)
            continue
        added = [step] if isinstance(step, int) else list(step)
        model += added
        over = max(0, len(model) - maxlen)
        del model[:over]
        dropped += over
        if isinstance(step, int):
            assert buffer.append(step) is (over == 1)
        else:
            assert buffer.extend(added) == over
        assert list(buffer.items) == model
        assert len(buffer) == len(model)
        assert buffer.dropped == dropped


def test_a_buffer_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DropOldestBuffer(0)
