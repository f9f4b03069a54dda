"""Commands across connections: what a shard accepted that no connection wrote yet."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway_proto.commands import Command
from gateway_proto.errors import GatewayError
from gateway_proto.events import Closed, PayloadSent

from .redaction import _LoggerAdapter
from .shard_events import Stopped

if TYPE_CHECKING:
    from gateway_proto.connection import GatewayConnection

#: Told whether a waited-for command was written (``True``) or will never be (``False``).
Done = Callable[[bool], None]


class UnsentCommands:
    """Commands a shard accepted (its ``send()`` returned) that no connection wrote yet.

    Why: a connection drops the commands still queued in it when it closes (they
    wait for READY/RESUMED or for the 120 per 60 s limiter). A ``send()`` that
    returned must not silently vanish across a reconnect, so the driver records
    every command the connection accepted, feeds this every ``PayloadSent`` (a
    connection writes its commands first in, first out), hands what is left to the
    shard's next connection (:meth:`requeue`), and reports what is still left when
    the shard stops for good (``Stopped.unsent``).

    A waiting send (``send_and_wait``) passes a ``done`` callback with its command:
    it is called once, on the driver's thread, with ``True`` when a connection wrote
    the command into its output, or ``False`` when the command left the backlog
    unsent (refused on a new connection, or the shard stopped).
    """

    def __init__(self) -> None:
        self._commands: deque[Command] = deque()
        # Beside each command, its waiter (None for a plain send()): same order.
        self._done: deque[Done | None] = deque()

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def commands(self) -> tuple[Command, ...]:
        """The unsent commands, oldest first."""
        return tuple(self._commands)

    def accepted(self, command: Command, done: Done | None = None) -> None:
        """Record a command that a connection's ``send()`` accepted (``done``: see above)."""
        self._commands.append(command)
        self._done.append(done)

    def observe(self, event: object) -> None:
        """Feed every event of the connection: a written command leaves the backlog."""
        if (
            isinstance(event, PayloadSent)
            and self._commands
            and event.opcode == self._commands[0].opcode
        ):
            self._commands.popleft()
            done = self._done.popleft()
            if done is not None:
                done(True)

    def requeue(
        self,
        connection: GatewayConnection,
        now: float,
        *,
        log: logging.Logger | _LoggerAdapter | None = None,
    ) -> list[Command]:
        """Queue the backlog on a shard's new ``connection`` (before anything else).

        They go out, in their order, once that connection's session is live (resumed
        or new). Returns the commands it refused (``max_pending_commands``), which
        leave the backlog; on ``log`` (if given) it says how many were re-queued and
        warns about those dropped.
        """
        if not self._commands:
            return []
        refused: list[Command] = []
        kept: deque[Command] = deque()
        kept_done: deque[Done | None] = deque()
        for command, done in zip(self._commands, self._done, strict=True):
            try:
                connection.send(command, now)
            except GatewayError:
                refused.append(command)
                if done is not None:
                    done(False)
            else:
                kept.append(command)
                kept_done.append(done)
        self._commands, self._done = kept, kept_done
        if log is not None:
            log.info("re-queued %d unsent command(s)", len(kept))
            if refused:
                log.warning("dropped %d unsent command(s): queue full", len(refused))
        return refused

    def take(self) -> tuple[Command, ...]:
        """Empty the backlog and return what it held (the shard stopped)."""
        commands = tuple(self._commands)
        waiting = [done for done in self._done if done is not None]
        self._commands.clear()
        self._done.clear()
        for done in waiting:
            done(False)
        return commands

    def stop_report(
        self,
        reason: str,
        *,
        error: BaseException | None = None,
        closed: Closed | None = None,
        log: logging.Logger | _LoggerAdapter | None = None,
    ) -> Stopped:
        """Empty the backlog into the :data:`DISCONNECT` payload of a shard that stopped.

        Warns on ``log`` (if given) when commands were left unsent.
        """
        unsent = self.take()
        if unsent and log is not None:
            log.warning("stopped with %d command(s) not sent", len(unsent))
        return Stopped(reason, error=error, closed=closed, unsent=unsent)
