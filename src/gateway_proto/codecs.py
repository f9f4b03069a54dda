"""Payload codecs: JSON (stdlib ``json`` or ``orjson``) and ETF (``erlpack``).

Theory of operation: a codec turns one whole, decompressed gateway message into
the envelope tuple ``(op, d, s, t)`` and one outbound ``{"op", "d"}`` payload into
bytes. It never sees frames or compression. Decoding failures raise
:class:`~gateway_proto.errors.DecodeError`; the wire layer turns that into a close.

**One value, two encodings.** The same event decodes to an *equal* Python value
with JSON and with ETF: ``str`` keys, ``str`` strings, ``None``/``True``/``False``,
``list`` for arrays (ETF tuples too), and snowflakes as ``str``. ETF may send a
snowflake as a 64-bit integer where JSON sends a string; the rule that maps them
together is by *magnitude*:

    an ETF integer beyond ``2**53 - 1`` in magnitude (either sign) is turned into
    its decimal ``str``; one of more than 255 bytes is a ``DecodeError``.

Why this rule, and not one keyed on field names (``id``, ``*_id``, ``roles``...):
Discord sends snowflakes as JSON strings *because* they do not fit the 53-bit
integers of JavaScript, so no integer JSON sends is ever above ``2**53 - 1``
(millisecond timestamps, counts and flags are far below it; permission bitfields
are strings in both encodings). Every real snowflake is above it: a snowflake
below ``2**53`` would date from the first 25 days of 2015, before Discord
launched. Name-based rules break on real fields: a poll's ``answer_id`` and a
component's ``id`` are small *integers* in JSON. Small integers that JSON itself
sends in id positions (``not_found`` of GUILD_MEMBERS_CHUNK, PROTOCOL.md 4.3)
stay integers in both encodings, so they compare equal without any rewriting.

JSON integers are left as the JSON library gives them, either sign: rewriting
them would cost a walk over every payload, and Discord never sends one beyond
``2**53 - 1``. stdlib ``json`` keeps any integer of up to 4300 digits exact (and
refuses a longer one: a ``DecodeError``); ``orjson`` turns one beyond 64 bits
into a ``float``. Only the envelope's ``s`` is checked (:data:`MAX_SEQUENCE`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from . import _etf
from .config import DEFAULT_MAX_MESSAGE_SIZE
from .errors import DecodeError, InvalidCommandError

__all__ = [
    "MAX_OUTBOUND_SIZE",
    "MAX_SEQUENCE",
    "SNOWFLAKE_THRESHOLD",
    "EtfCodec",
    "JsonCodec",
    "Payload",
    "make_codec",
]

#: ``(op, d, s, t)``: a decoded envelope, a plain tuple because it is made per message.
Payload = tuple[int, Any, "int | None", "str | None"]

#: Discord closes with 4002 on a payload over 4096 bytes (PROTOCOL.md 0).
MAX_OUTBOUND_SIZE: Final = 4096
#: ETF integers beyond this, either sign, become ``str`` (see the module docstring).
SNOWFLAKE_THRESHOLD: Final = 2**53 - 1
#: The largest sequence number (``s``) accepted; a bool, a negative or a larger
#: ``s`` is a :class:`~gateway_proto.errors.DecodeError`, so the session, the
#: heartbeat and RESUME only ever carry an integer every codec can encode.
MAX_SEQUENCE: Final = 2**53 - 1

try:  # orjson is the fast path (the ``speed`` extra); stdlib json always works
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised on installs without the extra
    _orjson = None  # type: ignore[assignment]


def _check_size(data: bytes) -> bytes:
    if len(data) > MAX_OUTBOUND_SIZE:
        # Never echo the payload: an IDENTIFY or RESUME carries the token.
        raise InvalidCommandError(
            f"the encoded payload is {len(data)} bytes; Discord's limit is "
            f"{MAX_OUTBOUND_SIZE} bytes (close 4002)"
        )
    return data


def _envelope(obj: Any) -> Payload:
    """Check the envelope's shape and return ``(op, d, s, t)`` (shared by both codecs)."""
    if obj.__class__ is not dict:
        raise DecodeError(f"a gateway payload must be a map, not {type(obj).__name__}")
    op = obj.get("op")
    if op.__class__ is not int:
        raise DecodeError("a gateway payload needs an integer 'op'")
    s = obj.get("s")
    if not (s is None or (s.__class__ is int and 0 <= s <= MAX_SEQUENCE)):
        raise DecodeError("a gateway payload's 's' must be null or an integer from 0 to 2**53 - 1")
    t = obj.get("t")
    if not (t is None or t.__class__ is str) or (t is None and op == 0):
        raise DecodeError("a gateway payload's 't' must be a string (a dispatch's name) or null")
    return (op, obj.get("d"), s, t)


class JsonCodec:
    """JSON payloads in text frames; ``orjson`` when importable, else stdlib ``json``.

    Args:
        use_orjson: force the choice (``None``: orjson if it is installed).

    """

    #: JSON travels in text frames.
    binary: Final = False

    def __init__(self, use_orjson: bool | None = None) -> None:
        if use_orjson is None:
            use_orjson = _orjson is not None
        if use_orjson and _orjson is None:  # pragma: no cover - only without orjson
            raise ImportError("orjson is not installed: pip install 'spectacles-gateway[speed]'")
        self.uses_orjson = use_orjson
        #: ``loads`` accepting ``bytes`` (both libraries do; stdlib sniffs UTF-8).
        self.loads: Callable[[bytes], Any] = _orjson.loads if use_orjson else json.loads
        self._dumps: Callable[[Any], bytes] = _orjson.dumps if use_orjson else _stdlib_dumps

    def decode(self, data: bytes) -> Payload:
        """Decode one whole message into ``(op, d, s, t)``.

        Raises:
            DecodeError: not JSON, not UTF-8, or not a gateway envelope.

        """
        try:
            obj = self.loads(data)
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; stdlib json
        # recurses, so deep nesting is a RecursionError (orjson caps depth itself).
        except (ValueError, TypeError, RecursionError) as exc:
            raise DecodeError(f"invalid JSON payload: {exc.__class__.__name__}") from None
        return _envelope(obj)

    def encode(self, op: int, d: Any) -> bytes:
        """Encode ``{"op": op, "d": d}`` as UTF-8 JSON bytes.

        Raises:
            InvalidCommandError: the result is over 4096 bytes, or ``d`` is not
                JSON-serialisable.

        """
        try:
            data = self._dumps({"op": op, "d": d})
        except (TypeError, ValueError) as exc:
            raise InvalidCommandError(
                f"the payload is not JSON-serialisable ({exc.__class__.__name__})"
            ) from None
        return _check_size(data)


def _stdlib_dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _import_erlpack() -> Any:
    try:
        import erlpack  # noqa: PLC0415 - an optional extra, imported only when used
    except ImportError as exc:
        raise ImportError(
            "encoding='etf' needs the 'erlpack' package: pip install 'spectacles-gateway[etf]'"
        ) from exc
    return erlpack


class EtfCodec:
    """ETF payloads in binary frames (the ``etf`` extra: Discord's ``erlpack`` packs them).

    Decoding uses the pure-Python decoder :mod:`gateway_proto._etf`, which builds
    the JSON-equal values directly (module docstring): binaries and atoms become
    ``str`` (``nil``/``true``/``false`` are ``None``/``True``/``False``), tuples
    become lists, integers beyond ``2**53 - 1`` (either sign) become ``str``. It is faster than
    ``erlpack.unpack`` followed by a normalising walk, and unlike erlpack it cannot
    be crashed by a deeply nested term. Encoding packs ``str`` keys as binaries:
    Discord closes with 4002 on atom keys.

    Args:
        max_size: the largest size a compressed ETF term may inflate to.

    """

    #: ETF travels in binary frames.
    binary: Final = True

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        erlpack = _import_erlpack()
        self._pack: Callable[[Any], bytes] = erlpack.pack
        self._max_size = max_size

    def loads(self, data: bytes) -> Any:
        """Decode one ETF term into normalised Python values (no envelope check).

        Raises:
            DecodeError: not ETF, truncated, not UTF-8, or nested too deeply.

        """
        return _etf.decode(data, self._max_size)

    def decode(self, data: bytes) -> Payload:
        """Decode one whole message into ``(op, d, s, t)``.

        Raises:
            DecodeError: not ETF, a binary that is not UTF-8, or not a gateway envelope.

        """
        return _envelope(_etf.decode(data, self._max_size))

    def encode(self, op: int, d: Any) -> bytes:
        """Encode ``{"op": op, "d": d}`` as ETF (``str`` keys packed as binaries).

        Raises:
            InvalidCommandError: the result is over 4096 bytes, or ``d`` holds a
                value ETF cannot carry.

        """
        try:
            data = self._pack({"op": op, "d": d})
        except Exception as exc:  # erlpack raises EncodingError/OverflowError/...
            raise InvalidCommandError(
                f"the payload cannot be encoded as ETF ({exc.__class__.__name__})"
            ) from None
        return _check_size(bytes(data))


def make_codec(
    encoding: str,
    *,
    use_orjson: bool | None = None,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> JsonCodec | EtfCodec:
    """Return the codec for ``encoding`` (``"json"`` or ``"etf"``).

    Raises:
        ImportError: ``etf`` without ``erlpack`` installed (the message names the extra).

    """
    if encoding == "etf":
        return EtfCodec(max_size)
    return JsonCodec(use_orjson)
