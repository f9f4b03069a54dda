"""Encoders for payloads a real server's library would refuse to write: any JSON or ETF value.

``GatewayPeer.payload`` encodes with ``json.dumps`` and ``erlpack.pack``, which is right
for well-formed traffic, but erlpack cannot pack an integer beyond 64 bits or an atom
from a plain ``str``. A hostile or broken server writes whatever it likes; these
encoders are written from the ETF specification (term_to_binary's external format),
independently of ``gateway_proto._etf``, so a test can put *any* value at any field:
NaN and infinite floats, integers of thousands of bits, atoms, non-string keys.
``frame()`` hands the result to ``GatewayPeer.encoded`` for compression and framing.
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = ["Atom", "etf", "json_text", "server_close"]


class Atom(str):
    """A ``str`` packed as an ETF atom (JSON has no atoms: there it is a plain string)."""

    __slots__ = ()


def _int(value: int) -> bytes:
    if 0 <= value <= 255:
        return bytes((97, value))  # SMALL_INTEGER_EXT
    if -(2**31) <= value < 2**31:
        return b"b" + value.to_bytes(4, "big", signed=True)  # INTEGER_EXT
    magnitude = abs(value)
    digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
    sign = b"\x01" if value < 0 else b"\x00"
    if len(digits) <= 255:
        return b"n" + bytes((len(digits),)) + sign + digits  # SMALL_BIG_EXT
    return b"o" + len(digits).to_bytes(4, "big") + sign + digits  # LARGE_BIG_EXT


def _term(value: Any) -> bytes:
    if value is None:
        return b"w\x03nil"
    if value is True:
        return b"w\x04true"
    if value is False:
        return b"w\x05false"
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return b"F" + struct.pack(">d", value)  # NEW_FLOAT_EXT: NaN and inf too
    if isinstance(value, Atom):
        name = value.encode()
        return b"v" + len(name).to_bytes(2, "big") + name  # ATOM_UTF8_EXT
    if isinstance(value, str):
        text = value.encode("utf-8", "surrogatepass")
        return b"m" + len(text).to_bytes(4, "big") + text  # BINARY_EXT
    if isinstance(value, list):
        if not value:
            return b"j"  # NIL_EXT
        body = b"".join(_term(item) for item in value)
        return b"l" + len(value).to_bytes(4, "big") + body + b"j"
    if isinstance(value, dict):
        body = b"".join(_term(k) + _term(v) for k, v in value.items())
        return b"t" + len(value).to_bytes(4, "big") + body
    raise TypeError(f"no ETF term for {type(value).__name__}")


def etf(value: Any) -> bytes:
    """Return ``value`` as one ETF term (version byte included)."""
    return b"\x83" + _term(value)


def json_text(value: Any) -> bytes:
    """Return ``value`` as JSON the way a lax server writes it (``NaN``/``Infinity`` included).

    Dict keys that are not strings become strings, as ``json.dumps`` makes them.
    """
    return json.dumps(value, separators=(",", ":")).encode()


def server_close(code: int | None, reason: bytes = b"") -> bytes:
    """Return an unmasked close frame with any 16-bit ``code`` and any ``reason`` bytes."""
    payload = b"" if code is None else code.to_bytes(2, "big") + reason
    return bytes((0x88, len(payload))) + payload
