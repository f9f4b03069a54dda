"""A pure-Python ETF (External Term Format 131) decoder that yields JSON-equal values.

Theory of operation: one recursive pass over the bytes builds exactly what the
JSON codec would build: ``str`` keys and strings (binaries and atoms), ``None``/
``True``/``False`` for the atoms ``nil``/``true``/``false``, ``list`` for lists and
tuples, and integers beyond ``2**53 - 1`` (either sign) as ``str`` (see
:mod:`gateway_proto.codecs`); an integer of more than 255 bytes is refused.

Why it exists next to ``erlpack``: erlpack's C decoder recurses without a limit
and crashes the interpreter (SIGSEGV) on a deeply nested term, which a hostile or
broken peer can send in a few hundred KB. This decoder recurses in Python, so the
same input is a ``RecursionError``, turned into a :class:`DecodeError`. It is used
for *every* inbound ETF payload (it is also faster than erlpack plus a
normalising walk; ``benchmarks/README.md`` has the numbers).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

from .errors import DecodeError

__all__ = ["decode"]

_THRESHOLD: Final = 2**53 - 1
#: The longest bignum accepted, in bytes (2040 bits, what SMALL_BIG_EXT holds):
#: its decimal form (614 digits) is cheap to build and within every
#: ``sys.set_int_max_str_digits`` setting (at least 640); a snowflake needs 8.
_MAX_BIG_BYTES: Final = 255
_ATOMS: Final[dict[str, Any]] = {"nil": None, "true": True, "false": False}
_unpack_double = struct.Struct(">d").unpack_from
_from_bytes = int.from_bytes


def decode(data: bytes, max_size: int) -> Any:
    """Decode one ETF term (with its ``131`` version byte).

    Args:
        data: the whole term.
        max_size: the largest size a compressed term (tag 80) may inflate to.

    Raises:
        DecodeError: not ETF, truncated, trailing bytes, a binary or atom that is
            not UTF-8, an unsupported tag, or nesting too deep.

    """
    if data[:1] != b"\x83":
        raise DecodeError("an ETF payload must start with version 131")
    try:
        if data[1:2] == b"P":  # a compressed term: 4-byte size, then zlib
            size = _from_bytes(data[2:6], "big")
            if size > max_size:
                raise DecodeError(f"a compressed ETF term of {size} bytes exceeds the cap")
            inflate = zlib.decompressobj()
            data = b"\x83" + inflate.decompress(data[6:], size + 1)
            if len(data) != size + 1:
                raise DecodeError("a compressed ETF term of the wrong size")
        value, end = _term(data, 1)
    except DecodeError:
        raise
    except UnicodeDecodeError:
        raise DecodeError("an ETF binary or atom that is not UTF-8") from None
    except (IndexError, ValueError, KeyError, struct.error, zlib.error):
        raise DecodeError("a truncated or malformed ETF payload") from None
    except TypeError:  # a list or map as a map key: not hashable, nor a JSON key
        raise DecodeError("an ETF map key that is not a string, number or atom") from None
    except RecursionError:
        raise DecodeError("an ETF payload nested too deeply") from None
    if end != len(data):
        raise DecodeError("a truncated ETF term, or trailing bytes after it")
    return value


def _big(data: bytes, start: int, end: int, negative: int) -> int | str:
    """Return the bignum in ``data[start:end]``: as ``str`` beyond ``2**53 - 1`` either way.

    The same rule for both signs, so no integer a JSON encoder could not carry
    exactly (and no integer too long for ``json.dumps``) reaches the caller.
    """
    if end > len(data):
        raise IndexError
    value = _from_bytes(data[start:end], "little")
    if value > _THRESHOLD:
        return f"-{value}" if negative else str(value)
    return -value if negative else value


def _term(data: bytes, pos: int) -> tuple[Any, int]:
    """Decode the term at ``pos``; return it and the position after it.

    Tags are tested in order of how often Discord's payloads use them.
    """
    tag = data[pos]
    if tag == 109:  # BINARY_EXT: a string
        end = pos + 5 + _from_bytes(data[pos + 1 : pos + 5], "big")
        if end > len(data):
            raise IndexError
        return data[pos + 5 : end].decode(), end
    if tag == 116:  # MAP_EXT
        arity = _from_bytes(data[pos + 1 : pos + 5], "big")
        pos += 5
        out: dict[Any, Any] = {}
        # Keys are binaries and most values binaries or small integers: inlined,
        # this loop is the decoder's hot spot. A truncated binary shows up as a
        # position past the end, which decode() refuses.
        for _ in range(arity):
            if data[pos] == 109:
                end = pos + 5 + _from_bytes(data[pos + 1 : pos + 5], "big")
                key = data[pos + 5 : end].decode()
                pos = end
            else:
                key, pos = _term(data, pos)
            tag = data[pos]
            if tag == 109:
                end = pos + 5 + _from_bytes(data[pos + 1 : pos + 5], "big")
                out[key] = data[pos + 5 : end].decode()
                pos = end
            elif tag == 97:
                out[key] = data[pos + 1]
                pos += 2
            else:
                out[key], pos = _term(data, pos)
        return out, pos
    if tag == 97:  # SMALL_INTEGER_EXT
        return data[pos + 1], pos + 2
    if tag == 115 or tag == 119:  # SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT  # noqa: PLR1714
        end = pos + 2 + data[pos + 1]
        if end > len(data):
            raise IndexError
        name = data[pos + 2 : end].decode()
        return _ATOMS.get(name, name), end
    if tag == 108:  # LIST_EXT (+ a tail, NIL for a proper list)
        length = _from_bytes(data[pos + 1 : pos + 5], "big")
        pos += 5
        items: list[Any] = []
        append = items.append
        for _ in range(length):
            item, pos = _term(data, pos)
            append(item)
        tail, pos = _term(data, pos)
        if tail != []:
            append(tail)  # an improper list: keep the tail as erlpack does
        return items, pos
    if tag == 110:  # SMALL_BIG_EXT: snowflakes
        end = pos + 3 + data[pos + 1]
        return _big(data, pos + 3, end, data[pos + 2]), end
    if tag == 98:  # INTEGER_EXT
        return _from_bytes(data[pos + 1 : pos + 5], "big", signed=True), pos + 5
    if tag == 106:  # NIL_EXT: the empty list
        return [], pos + 1
    if tag == 70:  # NEW_FLOAT_EXT
        return _unpack_double(data, pos + 1)[0], pos + 9
    if tag == 100 or tag == 118:  # ATOM_EXT, ATOM_UTF8_EXT  # noqa: PLR1714
        end = pos + 3 + _from_bytes(data[pos + 1 : pos + 3], "big")
        if end > len(data):
            raise IndexError
        name = data[pos + 3 : end].decode()
        return _ATOMS.get(name, name), end
    if tag == 104 or tag == 105:  # SMALL_TUPLE_EXT, LARGE_TUPLE_EXT -> list  # noqa: PLR1714
        if tag == 104:
            arity, pos = data[pos + 1], pos + 2
        else:
            arity, pos = _from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
        items = []
        for _ in range(arity):
            item, pos = _term(data, pos)
            items.append(item)
        return items, pos
    if tag == 107:  # STRING_EXT: a list of small integers, not text
        end = pos + 3 + _from_bytes(data[pos + 1 : pos + 3], "big")
        if end > len(data):
            raise IndexError
        return list(data[pos + 3 : end]), end
    if tag == 111:  # LARGE_BIG_EXT
        n = _from_bytes(data[pos + 1 : pos + 5], "big")
        if n > _MAX_BIG_BYTES:
            raise DecodeError(f"an ETF integer of {n} bytes (at most {_MAX_BIG_BYTES})")
        end = pos + 6 + n
        return _big(data, pos + 6, end, data[pos + 5]), end
    if tag == 99:  # FLOAT_EXT: a 31-byte decimal string
        return float(data[pos + 1 : pos + 32].rstrip(b"\x00")), pos + 32
    raise DecodeError(f"unsupported ETF tag {tag}")
