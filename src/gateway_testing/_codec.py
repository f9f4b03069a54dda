"""The fake's own encodings (JSON and ETF), independent of ``gateway_proto``'s codecs.

Theory of operation: the server side of the gateway encodes envelopes to send and
decodes what clients send. JSON goes out as text, ETF (through Discord's reference
packer, ``erlpack``) as binary. Decoding is strict where Discord is strict: a
payload that does not decode to a map, or an ETF map with **atom keys**, is a
:class:`DecodeFailure` (close 4002). ETF binaries come back from ``erlpack`` as
``bytes`` and atoms as ``erlpack.Atom``: both are normalised to ``str`` so records
compare equal across encodings. ``erlpack`` is imported lazily: it is an extra.
"""

from __future__ import annotations

import json
from importlib import import_module
from types import ModuleType
from typing import Any

__all__ = ["ENCODINGS", "DecodeFailure", "MissingDependency", "decode", "encode", "require"]

ENCODINGS = ("json", "etf")
_PACKAGES = {"etf": ("erlpack", "etf"), "zstd-stream": ("zstandard", "zstd")}


class DecodeFailure(ValueError):
    """A client payload that Discord would answer with close 4002."""


class MissingDependency(RuntimeError):
    """An encoding or compression was asked for whose optional package is not installed."""


def require(feature: str) -> ModuleType | None:
    """Import the optional package ``feature`` needs (``None`` when it needs none).

    Raises:
        MissingDependency: with the ``pip install`` line to fix it.

    """
    if feature not in _PACKAGES:
        return None
    module, extra = _PACKAGES[feature]
    try:
        return import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{feature} needs the {module!r} package: pip install 'spectacles-gateway[{extra}]'"
        ) from exc


def encode(payload: dict[str, Any], encoding: str) -> str | bytes:
    """Return ``payload`` encoded: ``str`` for JSON (a text frame), ``bytes`` for ETF."""
    if encoding == "json":
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    erlpack = require("etf")
    assert erlpack is not None
    packed: bytes = erlpack.pack(payload)
    return packed


def decode(message: str | bytes, encoding: str) -> dict[str, Any]:
    """Return the client payload ``message`` as a ``dict`` with ``str`` keys.

    Raises:
        DecodeFailure: not decodable, not a map, or (ETF) a map with atom keys.

    """
    if encoding == "json":
        try:
            value = json.loads(message)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeFailure(f"invalid JSON: {exc}") from exc
    else:
        if isinstance(message, str):
            raise DecodeFailure("a text frame on an ETF connection")
        erlpack = require("etf")
        assert erlpack is not None
        try:
            value = _normalise(erlpack.unpack(message), erlpack.Atom)
        except DecodeFailure:
            raise
        except Exception as exc:  # erlpack raises a variety of errors on garbage
            raise DecodeFailure(f"invalid ETF: {exc!r}") from exc
    if not isinstance(value, dict):
        raise DecodeFailure(f"a payload must be a map, not {type(value).__name__}")
    return value


def _normalise(value: Any, atom: type) -> Any:
    """Turn binaries and atoms into ``str``; refuse atom map keys (Discord's 4002)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, atom):
                raise DecodeFailure(f"ETF map with an atom key ({str(key)!r})")
            out[_normalise(key, atom)] = _normalise(item, atom)
        return out
    if isinstance(value, (list, tuple)):
        return [_normalise(item, atom) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeFailure("an ETF binary that is not UTF-8") from exc
    if isinstance(value, atom):
        return str(value)
    return value
