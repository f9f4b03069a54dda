"""The pure-Python wire path builds each ``Dispatch`` by changing a ``_Building``'s class.

The object must be a ``Dispatch`` in every way a caller can tell: its exact type,
equality and hash, ``raw``, ``repr``, and still frozen. The slot descriptors (what
an interpreter that refuses the class change gets) must build the same thing.
"""

from __future__ import annotations

import dataclasses
import zlib

import pytest

from gateway_proto import _wire, _wire_reader
from gateway_proto.events import Dispatch

from ._wire_helpers import make_config, open_wire, server_frame

_PAYLOAD = b'{"op":0,"d":{"a":[1,2]},"s":7,"t":"MESSAGE_CREATE"}'
# No sequence: not the usual shape, so it is built by _as_item, after the full check.
_NO_SEQUENCE = b'{"op":0,"d":{"a":[1,2]},"s":null,"t":"MESSAGE_CREATE"}'


def _python_dispatches(monkeypatch: pytest.MonkeyPatch, *, swap: bool) -> list[object]:
    monkeypatch.setattr(_wire, "Scanner", None)
    monkeypatch.setattr(_wire_reader, "_SWAP", swap)
    wire, _ = open_wire(make_config(compression="zlib-stream", keep_raw=True))
    deflate = zlib.compressobj()
    body = deflate.compress(_PAYLOAD) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return list(wire.receive(server_frame(0x2, body) + server_frame(0x1, _NO_SEQUENCE)))


def test_this_interpreter_allows_the_class_change() -> None:
    assert _wire_reader._SWAP


@pytest.mark.parametrize("swap", [True, False])
def test_the_python_path_builds_a_genuine_frozen_dispatch(
    monkeypatch: pytest.MonkeyPatch, swap: bool
) -> None:
    items = _python_dispatches(monkeypatch, swap=swap)
    expected = [
        Dispatch("MESSAGE_CREATE", {"a": [1, 2]}, 7, _PAYLOAD),
        Dispatch("MESSAGE_CREATE", {"a": [1, 2]}, None, _NO_SEQUENCE),
    ]
    assert items == expected
    for item, want in zip(items, expected, strict=True):
        assert type(item) is Dispatch
        assert isinstance(item, Dispatch)
        assert item.raw == want.raw
        assert repr(item) == repr(want)
        assert dataclasses.asdict(item) == dataclasses.asdict(want)
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.name = "OTHER"  # type: ignore[misc]
