"""What ``spectacles-gateway listen`` prints, on a terminal and on a pipe.

Theory of operation: the wiring in ``run.py`` turns whatever a driver reports into
a few plain calls here (:meth:`Display.event`, :meth:`Display.shard_state`, ...),
and the display decides what reaches the screen. Output comes in three modes:

* ``human`` (stdout is a terminal): one compact, coloured line per event;
* ``plain`` (stdout is a pipe): one tab-separated line per event
  (``shard<TAB>seq<TAB>NAME<TAB>summary``), nothing else on stdout;
* ``jsonl`` (``--jsonl``): one JSON object per line on stdout, for ``jq``.

Progress (shards ready x/N, the identify-bucket wait) and the periodic status line
go to stderr, and only when asked for or when both streams are terminals: a pipe
gets nothing but data. Every time-dependent method takes ``now`` (seconds on a
monotonic clock), so the status arithmetic is tested without sleeping.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

__all__ = [
    "Display",
    "EventRecord",
    "Mode",
    "OutputOptions",
    "ShardView",
    "StatusBoard",
    "summarize",
]

Mode = Literal["human", "plain", "jsonl"]

#: Longest message content shown in a human line; the rest is elided.
_CONTENT_WIDTH = 60
#: Above this many shards the status line summarises instead of listing each shard.
_LIST_SHARDS_UP_TO = 8

_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_CYAN = "\x1b[36m"
_RESET = "\x1b[0m"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One dispatch as the CLI shows it, whichever driver delivered it.

    Attributes:
        shard_id: the shard that received it.
        name: the dispatch name (``t``).
        data: the decoded payload (``d``).
        sequence: the sequence number (``s``), if any.

    """

    shard_id: int
    name: str
    data: Any
    sequence: int | None

    def to_json(self) -> str:
        """Return the record as one line of strict JSON (no trailing newline).

        Values JSON cannot carry are written as strings: NaN and the infinities
        as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, an integer too long for
        ``str()`` in hexadecimal (``"-0x1f..."``), nesting deeper than 100 levels
        as ``"…"``; anything else the decoder could hand over by its ``str()``.
        """
        record = {
            "shard": self.shard_id,
            "seq": self.sequence,
            "event": self.name,
            "data": self.data,
        }
        try:  # the common case: one C-speed call
            return json.dumps(
                record, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
            )
        except (ValueError, TypeError, RecursionError, OverflowError):
            # A server sent what JSON cannot carry: write the closest strict JSON.
            return json.dumps(_jsonable(record, 0), ensure_ascii=False, separators=(",", ":"))


#: How deep the fallback JSON and summaries go into a payload.
_MAX_DEPTH = 100
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _number_text(value: int) -> str:
    """``str(value)``, or hexadecimal for an integer longer than ``str()`` allows."""
    try:
        return str(value)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return hex(value)


def _jsonable(value: Any, depth: int) -> Any:
    """Return ``value`` with everything strict JSON cannot carry replaced by a string."""
    if value is None or value.__class__ in (str, bool):
        return value
    if isinstance(value, int):
        try:
            str(value)  # what json.dumps will do: it refuses the same integers
        except ValueError:
            return hex(value)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE.get(value, "NaN")
    if depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): _jsonable(item, depth + 1) for key, item in value.items()}
    return _plain_text(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    value = _jsonable(key, _MAX_DEPTH)
    return value if isinstance(value, str) else json.dumps(value)


def _plain_text(value: Any) -> str:
    """``str(value)`` for what a decoder may hand over, never raising."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _shown(value: Any, depth: int = 0) -> str:
    """Return a short, bounded text for any value (a piece of a summary); never raises."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return _number_text(value)
    if isinstance(value, float):
        return repr(value)
    if depth >= 3:
        return "…"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v, depth + 1) for v in value[:4]) + "]"
    if isinstance(value, dict):
        items = list(value.items())[:4]
        return "{" + ", ".join(f"{_shown(k, 3)}: {_shown(v, depth + 1)}" for k, v in items) + "}"
    return _plain_text(value)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _user(data: Any) -> str:
    """Best display name of the user an event is about."""
    for path in (("author",), ("user",), ("member", "user")):
        user = _get(data, *path)
        if isinstance(user, dict):
            name = user.get("global_name") or user.get("username")
            if name:
                return str(name)
            if user.get("id"):
                return f"user {user['id']}"
    user_id = _get(data, "user_id")
    return f"user {user_id}" if user_id else "someone"


def _shorten(text: str, width: int = _CONTENT_WIDTH) -> str:
    text = " ".join(text.split())  # one line, whatever newlines the message had
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize(name: str, data: Any) -> str:
    """Return a short, one-line, human summary of a dispatch (never raises)."""
    try:
        return _summarize(name, data)
    except (ValueError, TypeError, RecursionError, OverflowError):
        # A field held what str() refuses (an integer of thousands of digits...).
        return _shorten(_shown(data))


def _summarize(name: str, data: Any) -> str:
    if name == "READY":
        guilds = _get(data, "guilds")
        count = len(guilds) if isinstance(guilds, list) else 0
        session = _get(data, "session_id") or "?"
        return f"as {_user(data)}, {count} guilds, session {session}"
    if name == "RESUMED":
        return "session resumed"
    if name in ("GUILD_CREATE", "GUILD_UPDATE"):
        members = _get(data, "member_count")
        extra = f", {members} members" if members is not None else ""
        return f"{_get(data, 'name') or _get(data, 'id')}{extra}"
    if name == "GUILD_DELETE":
        outage = " (unavailable)" if _get(data, "unavailable") else ""
        return f"guild {_get(data, 'id')}{outage}"
    if name == "MESSAGE_CREATE":
        content = _get(data, "content")
        text = _shorten(content) if isinstance(content, str) and content else "(no content)"
        return f"{_user(data)} in {_get(data, 'channel_id')}: {text}"
    if name in ("MESSAGE_UPDATE", "MESSAGE_DELETE"):
        return f"message {_get(data, 'id')} in {_get(data, 'channel_id')}"
    if name.startswith("MESSAGE_REACTION_"):
        emoji = _get(data, "emoji", "name") or "?"
        return f"{emoji} by {_user(data)} on {_get(data, 'message_id')}"
    if name == "TYPING_START":
        return f"{_user(data)} typing in {_get(data, 'channel_id')}"
    if name == "PRESENCE_UPDATE":
        return f"{_user(data)} is {_get(data, 'status') or '?'}"
    if name.startswith("GUILD_MEMBER_"):
        return f"{_user(data)} in guild {_get(data, 'guild_id')}"
    if name == "VOICE_STATE_UPDATE":
        channel = _get(data, "channel_id")
        where = f"in voice {channel}" if channel else "left voice"
        return f"{_user(data)} {where}"
    if name == "INTERACTION_CREATE":
        command = _get(data, "data", "name")
        what = f"/{command}" if command else f"interaction type {_get(data, 'type')}"
        return f"{what} by {_user(data)}"
    if name == "GUILD_MEMBERS_CHUNK":
        members = _get(data, "members")
        count = len(members) if isinstance(members, list) else 0
        index, total = _get(data, "chunk_index"), _get(data, "chunk_count")
        return f"{count} members, chunk {index}/{total}"
    return _generic_summary(data)


def _generic_summary(data: Any) -> str:
    if not isinstance(data, dict):
        return _shorten(_shown(data) if not isinstance(data, str) else repr(data))
    parts = [
        f"{_shown(key)}={_shown(value)}"
        for key, value in data.items()
        if isinstance(value, (str, int, float, bool)) and key != "nonce"
    ]
    return _shorten(" ".join(parts[:4])) if parts else f"{len(data)} fields"


@dataclass(slots=True)
class ShardView:
    """What the status display knows about one shard.

    Attributes:
        shard_id: the shard's id.
        state: a short state name (``connecting``, ``identifying``, ``ready``, ...).
        latency: the last heartbeat round trip, in seconds.
        ready: whether the session is live: READY or RESUMED arrived, and the shard
            has not left the ``ready`` state since (a reconnecting shard is not ready).
        identify_at: when the shard may identify, while it waits for its bucket.
        rejected: why the server refused the shard's last connection before READY
            (close code and reason), until the shard is ready again.

    """

    shard_id: int
    state: str = "waiting"
    latency: float | None = None
    ready: bool = False
    identify_at: float | None = None
    rejected: str | None = None


@dataclass(slots=True)
class StatusBoard:
    """Per-shard state and an events/s counter, as pure arithmetic on ``now``."""

    shards: dict[int, ShardView] = field(default_factory=dict)
    events: int = 0
    _window_start: float | None = None
    _window_events: int = 0

    @classmethod
    def for_shards(cls, shard_ids: Iterable[int]) -> StatusBoard:
        """Return a board tracking these shard ids."""
        return cls(shards={sid: ShardView(sid) for sid in shard_ids})

    def view(self, shard_id: int) -> ShardView:
        """Return (creating if needed) the view of a shard."""
        view = self.shards.get(shard_id)
        if view is None:
            view = self.shards[shard_id] = ShardView(shard_id)
        return view

    @property
    def ready_count(self) -> int:
        """How many shards are live now (READY or RESUMED, and not left since)."""
        return sum(view.ready for view in self.shards.values())

    @property
    def all_ready(self) -> bool:
        """Whether every tracked shard is ready."""
        return bool(self.shards) and self.ready_count == len(self.shards)

    def count_event(self, now: float) -> None:
        """Count one dispatch received at ``now``."""
        if self._window_start is None:
            self._window_start = now
        self.events += 1
        self._window_events += 1

    def take_rate(self, now: float) -> float:
        """Return events/s since the last call (or the first event), and start over."""
        start = self._window_start
        count = self._window_events
        self._window_start = now
        self._window_events = 0
        if start is None or now <= start:
            return 0.0
        return count / (now - start)

    def progress_line(self, now: float) -> str:
        """Return the identify progress: shards ready and the bucket wait, if any."""
        line = f"identifying: {self.ready_count}/{len(self.shards)} shards ready"
        waits = [
            (view.identify_at - now, view.shard_id)
            for view in self.shards.values()
            if view.identify_at is not None and view.identify_at > now and not view.ready
        ]
        if waits:
            # The earliest wait, ties (to a tenth of a second) going to the lower shard id.
            wait, shard_id = min(waits, key=lambda w: (round(w[0], 1), w[1]))
            line += (
                f"; {len(waits)} waiting for identify buckets "
                f"(next: shard {shard_id} in {wait:.1f} s)"
            )
        rejected = [v for v in self.shards.values() if v.rejected is not None]
        if rejected:
            first = min(rejected, key=lambda v: v.shard_id)
            others = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
            line += f"; shard {first.shard_id} rejected: {first.rejected}{others}"
        return line

    def status_line(self, now: float) -> str:
        """Return the compact periodic status, and reset the events/s window."""
        rate = self.take_rate(now)
        head = f"{self.ready_count}/{len(self.shards)} ready · {rate:.1f} events/s"
        views = sorted(self.shards.values(), key=lambda v: v.shard_id)
        if len(views) <= _LIST_SHARDS_UP_TO:
            return head + " · " + " · ".join(_shard_cell(v) for v in views)
        states: dict[str, int] = {}
        for view in views:
            states[view.state] = states.get(view.state, 0) + 1
        latencies = sorted(v.latency for v in views if v.latency is not None)
        cells = [", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
        if latencies:
            median = latencies[len(latencies) // 2]
            cells.append(f"latency median {_ms(median)}, max {_ms(latencies[-1])}")
        return head + " · " + " · ".join(cells)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _shard_cell(view: ShardView) -> str:
    latency = _ms(view.latency) if view.latency is not None else "-"
    state = view.state if view.rejected is None else f"rejected: {view.rejected}"
    return f"#{view.shard_id} {state} {latency}"


class OutputOptions(Protocol):
    """The output settings ``listen`` and ``run`` share (see :meth:`Display.for_options`)."""

    @property
    def jsonl(self) -> bool:
        """Whether events are written as JSON lines."""
        ...

    @property
    def status(self) -> Literal["auto", "on", "off"]:
        """When the status line is shown (``--status``)."""
        ...

    @property
    def events(self) -> frozenset[str] | None:
        """The event names to show (``--events``), or ``None`` for all."""
        ...

    @property
    def status_interval(self) -> float:
        """Seconds between two status lines."""
        ...


class Display:
    """Writes events to stdout and progress, status and notices to stderr.

    Args:
        out: where events go (stdout).
        err: where progress, status, notices and errors go (stderr).
        mode: ``human``, ``plain`` or ``jsonl`` (see the module docstring).
        status: whether to show progress and periodic status lines on ``err``.
        color: whether to colour human output with ANSI escapes.
        events: dispatch names to show (``None``: all); the rest are only counted.
        status_interval: seconds between periodic status lines.

    """

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        *,
        mode: Mode,
        status: bool,
        color: bool = False,
        events: frozenset[str] | None = None,
        status_interval: float = 5.0,
    ) -> None:
        self.out = out
        self.err = err
        self.mode = mode
        self.status = status
        self.color = color
        self.events = events
        self.status_interval = status_interval
        self.board = StatusBoard()
        self.shown = 0
        self._next_status: float | None = None
        self._last_progress = ""
        #: Whether stdout was closed by its reader (``| head``): the run should end.
        self.out_closed = False

    @classmethod
    def for_streams(
        cls,
        out: TextIO,
        err: TextIO,
        *,
        jsonl: bool,
        status: Literal["auto", "on", "off"],
        events: frozenset[str] | None = None,
        status_interval: float = 5.0,
    ) -> Display:
        """Pick the mode from the streams: a terminal gets colour and status, a pipe data."""
        out_tty = _isatty(out)
        mode: Mode = "jsonl" if jsonl else ("human" if out_tty else "plain")
        show_status = status == "on" or (status == "auto" and out_tty and _isatty(err))
        color = mode == "human" and "NO_COLOR" not in os.environ
        return cls(
            out,
            err,
            mode=mode,
            status=show_status,
            color=color,
            events=events,
            status_interval=status_interval,
        )

    @classmethod
    def for_options(cls, options: OutputOptions) -> Display:
        """Return :meth:`for_streams` on stdout and stderr, with the command's output options."""
        return cls.for_streams(
            sys.stdout,
            sys.stderr,
            jsonl=options.jsonl,
            status=options.status,
            events=options.events,
            status_interval=options.status_interval,
        )

    def _paint(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self.color else text

    # -- lifecycle -----------------------------------------------------------------

    def start(self, shard_ids: Iterable[int], now: float, *, where: str) -> None:
        """Announce the run and start tracking these shards."""
        self.board = StatusBoard.for_shards(shard_ids)
        self._next_status = now + self.status_interval
        if self.status:
            count = len(self.board.shards)
            if not count:  # `run`: shards come as their leases are taken
                self.notice(f"connecting to {where}")
                return
            self.notice(f"connecting {count} shard{'s' if count != 1 else ''} to {where}")

    def shard_state(self, shard_id: int, state: str, now: float) -> None:
        """Record a shard's new state (and show progress while identifying)."""
        view = self.board.view(shard_id)
        view.state = state
        if state != "ready":  # reconnecting, resuming, stopped...: not live until READY
            view.ready = False
        if state in ("resuming", "ready"):
            view.identify_at = None
        self._progress(now)

    def identify_wait(self, shard_id: int, until: float, now: float) -> None:
        """Record that a shard waits for its identify bucket until ``until``."""
        self.board.view(shard_id).identify_at = until
        self._progress(now)

    def shard_rejected(self, shard_id: int, reason: str, now: float) -> None:
        """Record that the server refused a shard's connection before READY."""
        self.board.view(shard_id).rejected = reason
        self._progress(now)

    def shard_ready(self, shard_id: int, now: float) -> None:
        """Record READY or RESUMED on a shard."""
        view = self.board.view(shard_id)
        view.ready = True
        view.rejected = None
        view.state = "ready"  # the drivers' ShardState.READY value
        view.identify_at = None
        self._progress(now)
        if self.status and self.board.all_ready:
            count = len(self.board.shards)
            self.notice(f"all {count} shard{'s' if count != 1 else ''} ready", style=_GREEN)

    def latency(self, shard_id: int, seconds: float | None) -> None:
        """Record a heartbeat round trip."""
        if seconds is not None:
            self.board.view(shard_id).latency = seconds

    def _progress(self, now: float) -> None:
        if not self.status or self.board.all_ready:
            return
        line = self.board.progress_line(now)
        if line != self._last_progress:  # only changes are worth a line
            self._last_progress = line
            self.notice(line)

    def tick(self, now: float) -> None:
        """Call regularly: prints the periodic status line when it is due."""
        if not self.status or self._next_status is None or now < self._next_status:
            return
        self._next_status = now + self.status_interval
        if self.board.all_ready:
            self.notice(self.board.status_line(now))
        else:
            self.notice(self.board.progress_line(now))

    # -- events --------------------------------------------------------------------

    def event(self, record: EventRecord, now: float) -> None:
        """Count a dispatch, and print it unless ``--events`` filters it out."""
        self.board.count_event(now)
        if record.name in ("READY", "RESUMED"):
            self.shard_ready(record.shard_id, now)
        if self.events is not None and record.name not in self.events:
            return
        self.shown += 1
        if self.mode == "jsonl":
            line = record.to_json()
        elif self.mode == "plain":
            seq = "" if record.sequence is None else _shown(record.sequence)
            summary = summarize(record.name, record.data).replace("\t", " ")
            line = f"{record.shard_id}\t{seq}\t{_shown(record.name)}\t{summary}"
        else:
            seq = "" if record.sequence is None else f"#{_shown(record.sequence)}"
            prefix = self._paint(f"[{record.shard_id}] {seq:>6}", _DIM)
            name = self._paint(f"{_shown(record.name):<22}", _CYAN)
            line = f"{prefix} {name} {summarize(record.name, record.data)}"
        self._write_out(line)

    # -- messages --------------------------------------------------------------------

    def notice(self, text: str, *, style: str = _DIM) -> None:
        """Write a status or progress line to stderr (only when status is on)."""
        if self.status:
            self._write_err(self._paint(f"· {text}", style))

    def info(self, text: str) -> None:
        """Write a line the user asked for (the status page's URL) to stderr, whatever the mode."""
        self._write_err(self._paint(text, _BOLD))

    def warning(self, text: str) -> None:
        """Write a warning to stderr, whatever the mode."""
        self._write_err(self._paint(f"warning: {text}", _YELLOW))

    def error(self, text: str) -> None:
        """Write an error to stderr, whatever the mode."""
        self._write_err(self._paint(f"error: {text}", _RED + _BOLD))

    def finish(self, now: float, *, reason: str) -> None:
        """Print the closing summary (status mode only)."""
        if self.status:
            count = self.board.events
            self.notice(f"{reason}; {count} event{'s' if count != 1 else ''} received")

    def _write_out(self, line: str) -> None:
        if self.out_closed:
            return
        try:
            _write(self.out, line)
        except (BrokenPipeError, ValueError):  # the reader went away (| head): as cat does
            self.out_closed = True
            _silence(self.out)

    def _write_err(self, line: str) -> None:
        try:
            _write(self.err, line)
        except (BrokenPipeError, ValueError):  # nobody reads stderr either: say nothing
            _silence(self.err)


def _silence(stream: TextIO) -> None:
    """Point a closed pipe's descriptor at /dev/null.

    Why: what the stream still buffers is flushed again when Python exits, and a
    second BrokenPipeError there would print "Exception ignored ..." on stderr.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def _write(stream: TextIO, line: str) -> None:
    r"""Write one line and flush it (a pipe reader, jq or a test, sees it at once).

    A lone surrogate (stdlib json decodes ``"\ud800"``) cannot be encoded to
    UTF-8: it is written escaped, as ``\ud800``, instead of failing the write.
    """
    if not line.isascii():
        try:
            line.encode()
        except UnicodeEncodeError:
            line = line.encode("utf-8", "backslashreplace").decode()
    stream.write(line + "\n")
    stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream is no terminal
        return False
