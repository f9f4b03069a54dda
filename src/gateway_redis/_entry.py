"""One stream entry's format: one event (``meta`` and its value), or several packed.

An entry of one event holds two fields. ``meta`` is ``SEQ SHARD SESSION-LENGTH
SESSION NAME`` (one field, not four: Redis stores and sends it as one string). The
value is either ``data`` (the dispatch's ``d``, encoded once by the publisher) or
``payload`` (the whole payload as the gateway received it, when the shard keeps
raw bytes).

An entry of several events (the publisher's ``events_per_entry`` above 1) also
holds two fields, both JSON: ``metas``, an object of five arrays with one item
per event, ``{"seq": [...], "shard": [...], "session": [...], "name": [...],
"length": [...]}`` (a ``seq`` or ``session`` may be ``null``), and ``payloads``,
the array of the events' whole gateway payloads, each as received (``length`` is
its size in bytes, so a reader can cut it out without decoding the array). Why:
Redis's price is per entry more than per byte (the entry id, the pending-entries
list, the acknowledgement), and so is the worker's parse. Columns, not one array
per event: a reader checks each column's types in one C call
(``set(map(type, column))``) instead of five checks per event in Python
(measured: ~2 µs per event of a worker under ``cProfile``).

The publisher (``streams``) packs entries, the worker (``worker``) reads them;
both take the format from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate, repeat
from operator import add, sub
from typing import Any

from ._codec import DUMPS, LOADS

__all__ = [
    "DATA",
    "DATA_FIELD",
    "PACKED",
    "PAYLOAD",
    "PAYLOAD_FIELD",
    "PackedEvent",
    "QueuedEvent",
    "event_fields",
    "pack_events",
    "pack_meta",
    "pack_origin",
    "unpack_events",
    "unpack_meta",
]

#: What an entry's value is, as :func:`event_fields` and the worker's reader say:
#: a ``data`` field, a ``payload`` field (``True``: the readers' fast path tells
#: the two apart with a bool), or ``metas`` and ``payloads``, several events.
DATA = False
PAYLOAD = True
PACKED = 2

#: An entry's second field name, packed: the dispatch's ``d`` encoded here, or the
#: whole payload as received.
DATA_FIELD = b"$4\r\ndata\r\n"
PAYLOAD_FIELD = b"$7\r\npayload\r\n"


def pack_origin(shard_id: int, session_id: str | None) -> bytes:
    """Return the part of ``meta`` after the sequence: ``SHARD SESSION-LENGTH SESSION``."""
    session = b"" if session_id is None else session_id.encode()
    return b"%d %d %b" % (shard_id, len(session), session)


def pack_meta(name: str, shard_id: int, session_id: str | None, sequence: int | None) -> bytes:
    """Return an entry's ``meta`` field: ``SEQ SHARD SESSION-LENGTH SESSION NAME``.

    ``SEQ`` is empty for a dispatch without one and ``SESSION`` for an unknown
    session; the session's length comes first because a server chooses both it
    and the name (either may hold spaces). :func:`unpack_meta` reads it back.
    """
    seq = b"" if sequence is None else b"%d" % sequence
    return b"%b %b %b" % (seq, pack_origin(shard_id, session_id), name.encode())


def unpack_meta(meta: bytes) -> tuple[str, int, str | None, int | None]:
    """Read an entry's ``meta`` field: (name, shard id, session id, sequence).

    The inverse of :func:`pack_meta`.

    Raises:
        ValueError: it is not one.

    """
    parts = meta.split(b" ", 3)
    if len(parts) != 4:
        raise ValueError("malformed meta field")
    seq, shard, size, rest = parts
    length = int(size) if size.isdigit() else -1
    if not (shard.isdigit() and (seq == b"" or seq.isdigit())) or rest[length : length + 1] != b" ":
        raise ValueError("malformed meta field")
    name = rest[length + 1 :]
    if not name:
        raise ValueError("malformed meta field (no name)")
    return name.decode(), int(shard), rest[:length].decode() or None, int(seq) if seq else None


def event_fields(fields: dict[bytes, bytes]) -> tuple[bytes | None, bytes | None, bytes, int]:
    """Return an entry's fields as a worker reads them: ``(seq, origin, JSON, kind)``.

    ``meta`` cut at its first space: the sequence (digits, or ``b""``) and the
    origin after it (what :func:`unpack_meta` reads after a sequence; the worker
    checks it). No ``meta`` (an entry trimmed away, or someone else's): ``None``
    for both; a ``meta`` that is not ``SEQ ORIGIN``: the whole field, then
    ``None``. JSON is ``b""`` if there is none; ``kind`` says it is the whole
    gateway payload (:data:`PAYLOAD`, a ``payload`` field: read its ``d``) or a
    ``data`` field (:data:`DATA`). An entry of several events (:data:`PACKED`)
    comes back as ``(None, metas, payloads, PACKED)``, for :func:`unpack_events`.
    """
    metas, payloads = fields.get(b"metas"), fields.get(b"payloads")
    if isinstance(metas, bytes) and isinstance(payloads, bytes):
        return None, metas, payloads, PACKED
    meta, data = fields.get(b"meta"), fields.get(b"data")
    whole = data is None and b"payload" in fields
    if whole:
        data = fields[b"payload"]
    seq: bytes | None = None
    origin: bytes | None = None
    if isinstance(meta, bytes):
        seq, space, origin = meta.partition(b" ")
        if not space or not (seq.isdigit() or not seq):
            seq, origin = meta, None
    return seq, origin, data if isinstance(data, bytes) else b"", whole


#: One event of a packed entry, as :func:`unpack_events` reads it: name, shard id,
#: session id, sequence, and its whole gateway payload (JSON bytes, as received).
PackedEvent = tuple[str, int, "str | None", "int | None", bytes]

#: An event queued by the publisher: name, the packed head of its fields but their
#: last value (meta and the value field's name and length; empty when entries pack
#: several events), that value (JSON), then shard id, session id and sequence again
#: (for packed entries and the checkpoint). Packed when published: the queue then
#: holds bytes, not the decoded payload, whose objects would otherwise live on (and
#: be walked by the cyclic GC) until sent. The value stays apart from its head,
#: joined once per batch: formatting it into the head copied it once more
#: (measured: ~0.7 µs per ~1 KB event).
QueuedEvent = tuple[str, bytes, bytes, int, "str | None", "int | None"]


def pack_events(events: Sequence[QueuedEvent]) -> bytes:
    """Return the fields of one entry packing ``events`` (RESP: ``metas`` then ``payloads``).

    Each event's payload must be a whole gateway payload in JSON (one object).
    """
    names, _, payloads, shards, sessions, seqs = zip(*events, strict=True)
    metas = DUMPS(
        {
            "seq": seqs,
            "shard": shards,
            "session": sessions,
            "name": names,
            "length": [len(payload) for payload in payloads],
        }
    )
    joined = b",".join(payloads)
    return b"$5\r\nmetas\r\n$%d\r\n%b\r\n$8\r\npayloads\r\n$%d\r\n[%b]\r\n" % (
        len(metas), metas, len(joined) + 2, joined,
    )  # fmt: skip


_INT = frozenset({int})
_INT_OR_NONE = frozenset({int, type(None)})
_STR = frozenset({str})
_STR_OR_NONE = frozenset({str, type(None)})


def unpack_events(metas: bytes, payloads: bytes) -> list[PackedEvent]:
    """Read a packed entry's ``metas`` and ``payloads``: one tuple per event, in order.

    Each payload is cut out by its length, not decoded: the worker decodes only
    what it handles. Checks are per column, in C calls, not per event.

    Raises:
        ValueError: the fields are not a packed entry's (any value a peer may
            have written there: the whole entry is malformed).

    """
    try:
        columns: Any = LOADS(metas)
    except ValueError as exc:
        raise ValueError(f"malformed metas field: {exc}") from None
    try:
        seqs, shards, sessions, names = (
            columns["seq"], columns["shard"], columns["session"], columns["name"],
        )  # fmt: skip
        lengths = columns["length"]
    except (TypeError, KeyError):
        raise ValueError("malformed metas field") from None
    if not (
        all(column.__class__ is list for column in (seqs, shards, sessions, names, lengths))
        and len({len(seqs), len(shards), len(sessions), len(names), len(lengths)}) == 1
        and lengths
        and set(map(type, seqs)) <= _INT_OR_NONE
        and set(map(type, shards)) == _INT
        and set(map(type, sessions)) <= _STR_OR_NONE
        and set(map(type, names)) == _STR
        and all(names)
        and set(map(type, lengths)) == _INT
        and min(lengths) > 0
    ):
        raise ValueError("malformed metas field")
    # Where each payload starts: after "[" and after each comma (running sums in C);
    # the last "start", one past the closing "]", must be the field's length.
    starts = list(accumulate(map(add, lengths, repeat(1)), initial=1))
    if starts[-1] != len(payloads) or payloads[:1] != b"[":
        raise ValueError("the payloads field does not match its lengths")
    cuts = map(slice, starts, map(sub, starts[1:], repeat(1)))
    return list(zip(names, shards, sessions, seqs, map(payloads.__getitem__, cuts), strict=True))
