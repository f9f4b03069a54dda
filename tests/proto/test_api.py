"""The public surface: explicit __all__, a version, a docstring on every public name."""

from __future__ import annotations

import inspect

import pytest

import gateway_proto


def test_version() -> None:
    assert gateway_proto.__version__ == "0.1.0.dev0"


def test_all_is_sorted_and_resolves() -> None:
    names = gateway_proto.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(gateway_proto, name), name


PUBLIC = [
    getattr(gateway_proto, name)
    for name in gateway_proto.__all__
    if inspect.isclass(getattr(gateway_proto, name))
    or inspect.isfunction(getattr(gateway_proto, name))
]


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda o: o.__name__)
def test_public_names_have_docstrings(obj: object) -> None:
    assert inspect.getdoc(obj), obj
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            if name.startswith("_") or not (
                inspect.isfunction(member) or isinstance(member, property)
            ):
                continue
            assert inspect.getdoc(member), f"{obj.__name__}.{name}"
