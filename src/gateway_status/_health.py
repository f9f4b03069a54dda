"""What ``/readyz`` and the status page say, computed from shard views (pure functions).

Readiness: a process is ready when every shard it owns is READY, or has been out
of READY (connecting, identifying, resuming, reconnecting) for less than the
grace period. A stopped shard is never ready: it will not come back by itself
(a fatal close such as 4004, or it was disconnected), so an orchestrator should
know. A process with no shards is not ready either.
"""

from __future__ import annotations

from typing import Any

from gateway_proto.driver_support import ShardState

from ._views import ShardView

__all__ = ["page_document", "readiness"]


def _close_text(view: ShardView) -> str | None:
    closed = view.last_close
    if closed is None:
        return None
    code = "no close code" if closed.code is None else str(closed.code)
    return f"{code}: {closed.reason}" if closed.reason else code


def _why_not_ready(view: ShardView, grace: float) -> str | None:
    if view.state is ShardState.READY:
        return None
    if view.state is ShardState.STOPPED:
        last = _close_text(view)
        return "stopped" if last is None else f"stopped (last close {last})"
    if view.state_age is None:
        return f"{view.state.value}: not started yet"
    if view.state_age >= grace:
        return f"{view.state.value} for {view.state_age:.1f} s (grace {grace:g} s)"
    return None


def readiness(views: list[ShardView], grace: float) -> tuple[bool, dict[str, Any]]:
    """Return whether the process is ready, and the JSON body of ``/readyz``.

    The body lists every shard that is not ready, with why; shards within their
    grace period are listed under ``"recovering"``.
    """
    not_ready: dict[str, str] = {}
    recovering: dict[str, str] = {}
    for view in views:
        why = _why_not_ready(view, grace)
        if why is not None:
            not_ready[str(view.shard_id)] = why
        elif view.state is not ShardState.READY:
            age = view.state_age or 0.0
            recovering[str(view.shard_id)] = f"{view.state.value} for {age:.1f} s"
    ready = bool(views) and not not_ready
    body: dict[str, Any] = {
        "ready": ready,
        "shards": len(views),
        "not_ready": not_ready,
        "recovering": recovering,
        "grace_seconds": grace,
    }
    if not views:
        body["reason"] = "no shards"
    return ready, body


def page_document(views: list[ShardView], now: float, process: str) -> dict[str, Any]:
    """Build the JSON the status page polls: one entry per shard, nothing else.

    Only states, times, counts and close codes: no token, no payload, no session id.
    """
    return {
        "process": process,
        "now": now,
        "shards": [
            {
                "id": view.shard_id,
                "state": view.state.value,
                "state_age": view.state_age,
                "latency": view.latency,
                "dispatches": view.counters.dispatches,
                "last_close": _close_text(view),
            }
            for view in views
        ],
    }
