"""What ``spectacles-gateway listen`` prints, on a terminal and on a pipe.

Theory of operation: the wiring in ``listen.py`` turns whatever a driver reports into
a few plain calls here (:meth:`Display.event`, :meth:`Display.shard_state`, ...),
and the display decides what reaches the screen. Output comes in three modes:

* ``human`` (stdout is a terminal): one compact, coloured line per event;
* ``plain`` (stdout is a pipe): one tab-separated line per event
  (``shard<TAB>seq<TAB>NAME<TAB>summary``), nothing else on stdout;
* ``jsonl`` (``--jsonl``): one JSON object per line on stdout, for ``jq``.

Progress (shards ready x/N, the identify-bucket wait) and the periodic status line
go to stderr, and only when asked for or when both streams are terminals: a pipe
gets nothing but data. Every time-dependent method takes ``now`` (seconds on a
monotonic clock), so the status arithmetic is tested without sleeping. How one
event becomes text is ``event_text.py``; the status board's state, ``status_board.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from typing import Literal, Protocol, TextIO

from .event_text import EventRecord, _shown, summarize
from .status_board import ShardView, StatusBoard

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


_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_CYAN = "\x1b[36m"
_RESET = "\x1b[0m"


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
