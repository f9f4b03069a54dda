"""Records of what crossed a fake connection, kept for assertions (frozen, slotted)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ClientPayload", "HttpRequest", "ServerPayload"]


@dataclass(frozen=True, slots=True)
class ClientPayload:
    """One payload the client sent, decoded (ETF binaries and atoms normalised to ``str``).

    Attributes:
        time: ``anyio.current_time()`` when the fake read it.
        op: the opcode.
        d: the decoded ``d`` (``None`` when absent).
        size: the payload's size on the wire, in bytes (before any limit was applied).

    """

    time: float
    op: int
    d: Any
    size: int


@dataclass(frozen=True, slots=True)
class ServerPayload:
    """One payload the fake sent to the client (before encoding and compression).

    Attributes:
        time: ``anyio.current_time()`` when it was handed to the socket.
        op: the opcode.
        t: the event name for dispatches (op 0), else ``None``.
        s: the sequence number for dispatches, else ``None``.
        d: the payload data.

    """

    time: float
    op: int
    t: str | None
    s: int | None
    d: Any


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One REST request the fake answered.

    Attributes:
        time: ``anyio.current_time()`` when it arrived.
        method: ``GET``, ``POST``, ...
        path: the request target without the query string.
        authorization: the ``Authorization`` header, or ``None``.
        status: the status code the fake answered with.
        user_agent: the ``User-Agent`` header, or ``None``.

    """

    time: float
    method: str
    path: str
    authorization: str | None
    status: int
    user_agent: str | None = None
