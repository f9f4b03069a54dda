"""The hot path's own line to Redis: commands packed here, stream replies parsed here.

Why not the client library's: per event it costs more than a shard's own work per
event (``redis-py`` packs each argument in Python and parses each reply element
through several calls: about 25 µs per ``XADD`` and 40 µs per entry read, against
the ~13 µs a shard spends per dispatch). Here a batch of commands is one packed
byte string, and a reply is split on CRLF in one C call and walked by token (or,
for the worker's ``XREADGROUP``, matched entry by entry: :class:`EventReplyReader`).

The connection itself (TCP or TLS or a Unix socket, AUTH, SELECT) is the client's
(``redis.asyncio``): :class:`RawConnection` makes one of its connections from the
client's pool settings, writes with ``send_packed_command`` and reads the socket's
bytes itself. Only one command is in flight per connection.

Theory of the reader: a RESP reply (RESP2, or RESP3 where the client negotiated
it) is lines ending in CRLF, except bulk strings, whose length is given first.
Splitting the bytes on CRLF gives the lines; a bulk string that contains CRLF
comes out in pieces and is joined again (its length says how far). The parsers
are generators that yield when they need a line not yet received, so a reply
spread over many reads is walked once.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Generator, Sequence
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ._entry import event_fields

__all__ = [
    "Entry",
    "EventEntry",
    "EventReplyReader",
    "RawConnection",
    "ReplyReader",
    "pack",
    "pack_ids",
]

#: One stream entry: its id and its fields (``{}`` for an entry trimmed away).
Entry = tuple[bytes, dict[bytes, bytes]]
#: One entry of an event stream: its id, then its fields as
#: :func:`~gateway_redis._entry.event_fields` returns them (the last: the entry's
#: kind, a bool for one event, ``PACKED`` for several).
EventEntry = tuple[bytes, bytes | None, bytes | None, bytes, int]
_Parser = Generator[None, None, Any]


def pack(*args: bytes | str | int) -> bytes:
    """Return one command in RESP (an array of bulk strings)."""
    return pack_ids(args, ())


def pack_ids(args: Sequence[bytes | str | int], ids: Sequence[bytes]) -> bytes:
    """Return one command in RESP: ``args``, then ``ids`` (many bytes: a batch's entry ids)."""
    out = [b"*%d\r\n" % (len(args) + len(ids))]
    for arg in args:
        value = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(value), value))
    out += [b"$%d\r\n%b\r\n" % (len(value), value) for value in ids]
    return b"".join(out)


def _length(line: bytes) -> int:
    """Return the count of an array or map header; 0 for a null (RESP2 ``*-1``, RESP3 ``_``)."""
    return 0 if line[:1] == b"_" else max(int(line[1:]), 0)


def _raise_error(line: bytes) -> None:
    """Raise the error reply ``line`` (``-ERR ...``) as the client library would."""
    message = line[1:].decode(errors="replace")
    if message.startswith("NOSCRIPT"):
        raise NoScriptError(message)
    raise ResponseError(message)


class ReplyReader:
    """Lines of RESP2 received so far, and the parsers that walk them."""

    def __init__(self) -> None:
        # Every item but the last is a complete line; the last is what came after
        # the last CRLF (a line still arriving, or b"").
        self.lines: list[bytes] = [b""]

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        lines = self.lines
        lines.extend((lines.pop() + data).split(b"\r\n"))

    def _complete(self) -> int:
        return len(self.lines) - 1

    def reset(self) -> None:
        """Forget what was read (after a reply, or a broken connection)."""
        self.lines = [self.lines[-1]] if len(self.lines) > 1 else [b""]

    # -- parsers (generators: they yield while a line they need has not come) ---------

    def _error_or(self, line: bytes) -> None:
        if line[:1] == b"-":
            _raise_error(line)

    def simple(self, j: int = 0) -> _Parser:
        """Parse an integer, simple string or bulk string reply (or raise its error)."""
        while self._complete() <= j:
            yield
        line = self.lines[j]
        self._error_or(line)
        if line[:1] == b":":
            return int(line[1:])
        if line[:1] == b"$":
            value, _ = yield from self._bulk(j)
            return value
        return line[1:]

    def _bulk(self, j: int) -> Generator[None, None, tuple[bytes | None, int]]:
        lines = self.lines
        while len(lines) - 1 <= j + 1:
            yield
        size = int(lines[j][1:])
        if size < 0:
            return None, j + 1
        value = lines[j + 1]
        if len(value) != size:
            # The value holds CRLF: join the pieces its length spans.
            k = j + 1
            while len(value) < size:
                k += 1
                while len(lines) - 1 <= k:
                    yield
                value += b"\r\n" + lines[k]
            if len(value) != size:
                raise RedisConnectionError("malformed bulk string in a reply")
            lines[j + 1 : k + 1] = [value]
        return value, j + 2

    def _entries(self, j: int, out: list[Entry]) -> Generator[None, None, int]:
        """Parse an array of stream entries at line ``j`` into ``out``; return the next line."""
        lines = self.lines
        while len(lines) - 1 <= j:
            yield
        count = _length(lines[j])
        j += 1
        for _ in range(count):
            # "*2", "$n", id, "*m" (or "*-1": an entry trimmed away), then m bulk strings.
            while len(lines) - 1 <= j + 3:
                yield
            if lines[j] != b"*2" or lines[j + 1][:1] != b"$":
                raise RedisConnectionError("unexpected stream entry in a reply")
            entry_id = lines[j + 2]
            head = lines[j + 3]
            fields = 4 if head == b"*4" else _length(head)
            j += 4
            if fields <= 0:
                out.append((entry_id, {}))
                continue
            end = j + 2 * fields
            while len(lines) - 1 < end:
                yield
            if fields == 4:  # an event's meta and data: the common case, unrolled
                h0, k0, h1, v0, h2, k1, h3, v1 = lines[j:end]
                if (len(k0), len(v0), len(k1), len(v1)) == (
                    int(h0[1:]), int(h1[1:]), int(h2[1:]), int(h3[1:]),
                ):  # fmt: skip
                    out.append((entry_id, {k0: v0, k1: v1}))
                    j = end
                    continue
            heads = lines[j:end:2]
            values = lines[j + 1 : end : 2]
            if [len(v) for v in values] != [int(h[1:]) for h in heads]:
                values = []  # a value holds CRLF: the careful way
                for _ in range(fields):
                    value, j = yield from self._bulk(j)
                    values.append(value or b"")
                end = j
            out.append((entry_id, dict(zip(values[::2], values[1::2], strict=False))))
            j = end
        return j

    def replies(self, count: int) -> _Parser:
        """Parse ``count`` pipelined replies (``XADD``'s entry ids); return ``count``.

        An error reply is raised once all ``count`` were read (the line stays in step).
        """
        # The common case, checked in bulk: every reply a bulk string of two lines
        # (an entry id holds no CRLF), so every other line is a "$" header. Anything
        # else (an error, another kind of reply) goes to the walk per reply below.
        lines = self.lines
        need = 2 * count
        done = 0  # lines known to be whole "$" replies
        while done < need:
            complete = min(len(lines) - 1, need)
            pairs = (complete - done) // 2
            if pairs:
                heads = b"\n".join(lines[done : done + 2 * pairs : 2])
                if heads[:1] != b"$" or heads.count(b"\n$") != pairs - 1:
                    break
                done += 2 * pairs
            if done < complete and lines[done][:1] != b"$":
                break  # a reply of one line
            if done < need:
                yield
        else:
            return count
        return (yield from self._walk_replies(count))

    def _walk_replies(self, count: int) -> _Parser:
        lines = self.lines
        error = b""
        j = 0
        for _ in range(count):
            while len(lines) - 1 <= j:
                yield
            line = lines[j]
            if line[:1] != b"$":
                if line[:1] == b"-" and not error:
                    error = line
                j += 1  # an error, an integer or a simple string: one line
                continue
            while len(lines) - 1 <= j + 1:
                yield
            if len(lines[j + 1]) != int(line[1:]):
                _, j = yield from self._bulk(j)  # holds CRLF (no entry id does)
            else:
                j += 2
        self._error_or(error)
        return count

    def read_groups(self) -> _Parser:
        """Parse an ``XREADGROUP`` reply: ``[(stream, entries), ...]`` (``[]`` for none)."""
        while self._complete() < 1:
            yield
        head = self.lines[0]
        self._error_or(head)
        out: list[tuple[bytes, list[Entry]]] = []
        # RESP2: an array of [stream, entries]; RESP3 (the client may speak it): a map.
        pairs = head[:1] == b"%"
        j = 1
        for _ in range(_length(head)):
            key, j = yield from self._bulk(j if pairs else j + 1)
            entries: list[Entry] = []
            j = yield from self._entries(j, entries)
            out.append((key or b"", entries))
        return out

    def auto_claim(self) -> _Parser:
        """Parse an ``XAUTOCLAIM`` reply: the entries taken over."""
        while self._complete() < 1:
            yield
        self._error_or(self.lines[0])
        _, j = yield from self._bulk(1)  # the cursor
        entries: list[Entry] = []
        j = yield from self._entries(j, entries)
        while self._complete() <= j:
            yield
        deleted = _length(self.lines[j])  # Redis 7: ids trimmed away, dropped from the PEL
        j += 1
        for _ in range(deleted):
            _, j = yield from self._bulk(j)
        return entries


# An event entry as publishers write it, up to the data (or payload) field's value:
# one match instead of a walk per line. Groups: id, meta length, the meta's
# sequence and what follows its first space, "payload" (or None: a data field),
# data length. The id's own length is not checked (an id is digits); a meta
# holding CR or LF, or not starting with digits and a space, does not match and
# goes the careful way.
_EVENT_HEAD = re.compile(
    rb"\*2\r\n\$\d+\r\n(\d+-\d+)\r\n\*4\r\n"
    rb"\$4\r\nmeta\r\n\$(\d+)\r\n(\d*) ([^\r\n]*)\r\n\$(?:4\r\ndata|7\r\n(payload))\r\n\$(\d+)\r\n"
)
_CRLF = b"\r\n"


def _value(buf: bytes, pos: int) -> tuple[Any, int] | None:
    """Parse any RESP value at ``pos``: ``(value, end)``, or ``None`` if not all of it came.

    Arrays, maps, sets and pushes are lists (a map's keys and values alternate);
    nulls are ``None``; an error inside a reply is a protocol error here.
    """
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return None
    kind = buf[pos : pos + 1]
    body = buf[pos + 1 : eol]
    pos = eol + 2
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None, pos
        end = pos + size
        if len(buf) < end + 2:
            return None
        if buf[end : end + 2] != _CRLF:
            raise RedisConnectionError("malformed bulk string in a reply")
        return buf[pos:end], end + 2
    if kind in b"*%~>":
        count = int(body)
        if count < 0:
            return None, pos
        items: list[Any] = []
        for _ in range(count * 2 if kind == b"%" else count):
            got = _value(buf, pos)
            if got is None:
                return None
            items.append(got[0])
            pos = got[1]
        return items, pos
    if kind == b"_":
        return None, pos
    if kind == b":":
        return int(body), pos
    if kind == b"-":
        raise RedisConnectionError("unexpected error inside a reply")
    return body, pos


class EventReplyReader:
    """Walks an ``XREADGROUP`` reply of event entries straight from the received bytes.

    Why not :class:`ReplyReader`: a worker reads every event, and splitting each
    one into its lines, then building a field dict, costs about as much as
    decoding its JSON. Here an entry in the publishers' shape (fields ``meta``
    then ``data`` or ``payload``) is one regular expression match and a slice; any other
    shape (other fields, an entry trimmed away, RESP3) goes through the careful
    :func:`_value`, which also tells an entry not yet received from a malformed one.
    """

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket (what was parsed already is let go)."""
        self.buf = self.buf[self.pos :] + data if self.pos else self.buf + data
        self.pos = 0

    def rest(self) -> bytes:
        """Bytes received beyond the reply parsed last."""
        return self.buf[self.pos :]

    def _line(self) -> bytes | None:
        eol = self.buf.find(_CRLF, self.pos)
        if eol < 0:
            return None
        line = self.buf[self.pos : eol]
        self.pos = eol + 2
        return line

    def read_groups(self) -> Generator[None, None, list[tuple[bytes, list[EventEntry]]]]:
        """Parse an ``XREADGROUP`` reply: ``[(stream, entries), ...]`` (``[]`` for none)."""
        while (head := self._line()) is None:
            yield
        if head[:1] == b"-":
            _raise_error(head)
        out: list[tuple[bytes, list[EventEntry]]] = []
        pairs = head[:1] == b"%"  # RESP3: a map of stream to entries
        for _ in range(_length(head)):
            if not pairs:
                while (line := self._line()) is None:
                    yield
                if line != b"*2":
                    raise RedisConnectionError("unexpected stream in a reply")
            while (got := _value(self.buf, self.pos)) is None:
                yield
            key, self.pos = got
            while (line := self._line()) is None:
                yield
            entries: list[EventEntry] = []
            yield from self._entries(_length(line), entries)
            out.append((key or b"", entries))
        return out

    def _entries(self, count: int, out: list[EventEntry]) -> Generator[None, None, None]:
        head, append = _EVENT_HEAD.match, out.append
        buf, pos = self.buf, self.pos
        while count:
            event = head(buf, pos)
            if event is not None:
                entry_id, meta_size, seq, origin, whole, data_size = event.groups()
                if len(seq) + len(origin) + 1 == int(meta_size):
                    start = event.end()
                    end = start + int(data_size)
                    if buf.startswith(_CRLF, end):
                        append((entry_id, seq, origin, buf[start:end], whole is not None))
                        pos = end + 2
                        count -= 1
                        continue
            # Another shape, or not all of it here yet: the careful way.
            self.pos = pos
            got = _value(buf, pos)
            if got is None:
                yield
                buf, pos = self.buf, self.pos
                continue
            entry, pos = got
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], bytes)
                and isinstance(entry[1], list | None)
            ):
                raise RedisConnectionError("unexpected stream entry in a reply")
            values = entry[1] or []
            append((entry[0], *event_fields(dict(zip(values[::2], values[1::2], strict=False)))))
            count -= 1
        self.pos = pos


#: Bytes the connection's ``asyncio.StreamReader`` may hold before it stops reading
#: the socket (it pauses above twice this). asyncio's default, 64 KiB, paused and
#: resumed the socket several times per 200-event read (~300 KB): about 0.6 µs
#: per event of a worker's CPU (a stream drained alone, 8.5 against 7.9 µs).
_BUFFER_LIMIT = 1 << 20


class RawConnection:
    """One connection of a client's pool settings, for packed commands and raw replies."""

    def __init__(self, redis: aioredis.Redis, *, read_size: int = 1 << 16) -> None:
        self._redis = redis
        self._conn: Any = None
        self._reader = ReplyReader()
        self._read_size = read_size

    async def request(self, packed: bytes, parse: str = "simple", *args: int) -> Any:
        """Send one packed command and return its parsed reply.

        ``parse`` names a :class:`ReplyReader` parser (``args`` go to it). A reply
        error is raised as ``ResponseError`` (``NoScriptError`` for NOSCRIPT) and
        keeps the connection; anything else (cancellation included) drops it.
        """
        reader = self._reader
        try:
            return await self._exchange(packed, reader, getattr(reader, parse)(*args))
        finally:
            reader.reset()

    async def read_events(self, packed: bytes) -> list[tuple[bytes, list[EventEntry]]]:
        """Send one packed ``XREADGROUP`` and return its entries (see :class:`EventReplyReader`).

        Errors as :meth:`request`.
        """
        reader = EventReplyReader()
        out: list[tuple[bytes, list[EventEntry]]] = await self._exchange(
            packed, reader, reader.read_groups()
        )
        if reader.rest():  # one command in flight: nothing can follow its reply
            await self.close()
            raise RedisConnectionError("unexpected bytes after a reply")
        return out

    async def _exchange(
        self, packed: bytes, reader: ReplyReader | EventReplyReader, parser: _Parser
    ) -> Any:
        if self._conn is None:
            pool = self._redis.connection_pool
            self._conn = pool.connection_class(**pool.connection_kwargs)
        conn = self._conn
        try:
            await conn.send_packed_command(packed, check_health=False)
            stream = conn._reader  # the socket's bytes; the client's parser never reads them
            if getattr(stream, "_limit", _BUFFER_LIMIT) < _BUFFER_LIMIT:
                stream._limit = _BUFFER_LIMIT  # asyncio's own attribute, there since 3.4
            try:
                while True:
                    next(parser)
                    data = await stream.read(self._read_size)
                    if not data:
                        raise RedisConnectionError("Redis closed the connection")
                    reader.feed(data)
            except StopIteration as done:
                return done.value
        except ResponseError:
            raise
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        conn, self._conn = self._conn, None
        self._reader = ReplyReader()
        if conn is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(RedisError, OSError):
                await conn.disconnect(nowait=True)
