"""The dispatch names the metrics keep apart: Discord's documented receive events (API v10).

A dispatch counter labelled by whatever name the server sends could grow its label
set without end (a misbehaving or hostile server invents names); the collector
labels the names below as they are and every other name as :data:`OTHER`.
"""

from __future__ import annotations

from gateway_proto.payloads import DISPATCH_EVENTS

__all__ = ["DOCUMENTED_DISPATCHES", "OTHER", "dispatch_label"]

#: The label of every dispatch name not in :data:`DOCUMENTED_DISPATCHES`.
OTHER = "other"

#: Discord's documented gateway dispatch names (API v10), READY and RESUMED included:
#: the names the payload types know (one list for the CLI, the types and the metrics).
DOCUMENTED_DISPATCHES = frozenset(DISPATCH_EVENTS)


def dispatch_label(name: str) -> str:
    """Return the metrics label of a dispatch name: the name if documented, else ``other``."""
    return name if name in DOCUMENTED_DISPATCHES else OTHER
