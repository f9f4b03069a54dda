"""The handler registry: handlers by event name, in registration order."""

from __future__ import annotations

from typing import Generic, TypeVar

from .shard_events import ANY_DISPATCH, ANY_EVENT, LIFECYCLE_EVENTS

H = TypeVar("H")


class HandlerRegistry(Generic[H]):
    """Handlers by event name, in registration order.

    ``"*"`` gets everything; ``"dispatch"`` (:data:`ANY_DISPATCH`) gets every
    Discord dispatch once, by its own name.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, list[H]] = {}

    def on(self, name: str, handler: H) -> H:
        """Register ``handler`` for ``name`` and return it (so it works as a decorator)."""
        if not isinstance(name, str) or not name:
            raise ValueError("event name must be a non-empty str")
        self._by_name.setdefault(name, []).append(handler)
        return handler

    def off(self, name: str, handler: H) -> None:
        """Unregister a handler; unknown handlers are ignored."""
        handlers = self._by_name.get(name)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def handlers_for(self, name: str) -> list[H]:
        """Return the handlers for ``name``: its own first, then the catch-all ones."""
        by_name = self._by_name
        own = by_name.get(name, ())
        anything = by_name.get(ANY_EVENT, ())
        dispatches = by_name.get(ANY_DISPATCH, ()) if name not in LIFECYCLE_EVENTS else ()
        if not anything and not dispatches:
            return list(own)
        return [*own, *dispatches, *anything]

    def has(self, name: str) -> bool:
        """Whether any handler would get an event named ``name`` (catch-all included)."""
        by_name = self._by_name
        return (
            bool(by_name.get(name))
            or bool(by_name.get(ANY_EVENT))
            or (name not in LIFECYCLE_EVENTS and bool(by_name.get(ANY_DISPATCH)))
        )

    def __bool__(self) -> bool:
        return any(self._by_name.values())
