"""The transition table: every (state, input) pair either is a row or is refused."""

from __future__ import annotations

import itertools

import pytest

from gateway_proto import ConnectionState
from gateway_proto._state import TRANSITIONS, Input, next_state

PAIRS = list(itertools.product(ConnectionState, Input))


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_every_pair_is_a_row_or_illegal(state: ConnectionState, event: Input) -> None:
    assert next_state(state, event) is TRANSITIONS.get((state, event))


def test_closed_is_final_and_every_other_state_can_finish() -> None:
    assert all(next_state(ConnectionState.CLOSED, e) is None for e in Input)
    for state in ConnectionState:
        if state is not ConnectionState.CLOSED:
            assert next_state(state, Input.FINISH) is ConnectionState.CLOSED


def test_identify_is_legal_in_one_state_only() -> None:
    legal = [s for s in ConnectionState if next_state(s, Input.SEND_IDENTIFY) is not None]
    assert legal == [ConnectionState.AWAITING_IDENTIFY]


def test_every_state_is_reachable_from_connecting() -> None:
    seen = {ConnectionState.CONNECTING}
    frontier = [ConnectionState.CONNECTING]
    while frontier:
        state = frontier.pop()
        for event in Input:
            target = next_state(state, event)
            if target is not None and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ConnectionState)
