"""FakeGateway's options are typed: a misspelled one fails mypy and names itself at run time.

mypy --strict runs over this file with ``warn_unused_ignores``: each
``type: ignore[...]`` below is a type error that must stay one. If FakeGateway's
keyword arguments became untyped again, the ignore would be unused and mypy would fail.
"""

from __future__ import annotations

import dataclasses
import typing

import pytest

from gateway_testing import FakeGateway, FakeOptions, FakeOptionsDict


def test_a_misspelled_option_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"'evnt_rate' \(did you mean 'event_rate'\?\)"):
        FakeGateway(evnt_rate=20.0)  # type: ignore[call-arg]


def test_a_wrongly_typed_option_fails_type_checking() -> None:
    # mypy rejects it (the ignore below must stay needed); at run time the check of
    # the value happens to fail too.
    with pytest.raises(TypeError):
        FakeGateway(shards="2")  # type: ignore[arg-type]


def test_the_typed_dict_lists_every_option_with_its_type() -> None:
    hints = typing.get_type_hints(FakeOptionsDict)
    fields = {f.name: f.type for f in dataclasses.fields(FakeOptions)}
    assert set(hints) == set(fields)
    option_hints = typing.get_type_hints(FakeOptions)
    assert all(hints[name] == option_hints[name] for name in fields)
