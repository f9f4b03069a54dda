"""One stream entry's format: its ``meta`` field and the name of its value field.

An entry holds two fields. ``meta`` is ``SEQ SHARD SESSION-LENGTH SESSION NAME``
(one field, not four: Redis stores and sends it as one string). The value is
either ``data`` (the dispatch's ``d``, encoded once by the publisher) or
``payload`` (the whole payload as the gateway received it, when the shard keeps
raw bytes). The publisher (``streams``) packs entries, the worker (``worker``)
reads them; both take the format from here.
"""

from __future__ import annotations

__all__ = [
    "DATA_FIELD",
    "PAYLOAD_FIELD",
    "event_fields",
    "pack_meta",
    "pack_origin",
    "unpack_meta",
]

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


def event_fields(fields: dict[bytes, bytes]) -> tuple[bytes | None, bytes | None, bytes, bool]:
    """Return an entry's fields as a worker reads them: ``(seq, origin, JSON, whole)``.

    ``meta`` cut at its first space: the sequence (digits, or ``b""``) and the
    origin after it (what :func:`unpack_meta` reads after a sequence; the worker
    checks it). No ``meta`` (an entry trimmed away, or someone else's): ``None``
    for both; a ``meta`` that is not ``SEQ ORIGIN``: the whole field, then
    ``None``. JSON is ``b""`` if there is none; ``whole`` says it is the whole
    gateway payload (a ``payload`` field: read its ``d``), not a ``data`` field.
    """
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
