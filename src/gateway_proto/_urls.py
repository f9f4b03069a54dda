"""Gateway URLs without credentials, and whether a URL would lower security.

A ``user:password@`` in a gateway URL has no use on Discord's gateway: it must not
become the ``Host`` header of the WebSocket upgrade, nor appear in a log line, a
``Session`` or an exception. Every URL the core builds goes through
:func:`without_userinfo`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["downgrades", "host_of", "without_userinfo"]


def host_of(netloc: str) -> str:
    """Return ``host[:port]`` of a URL's network location (any ``user:password@`` dropped)."""
    return netloc.rpartition("@")[2]


def without_userinfo(url: str) -> str:
    """Return ``url`` without the ``user:password@`` of its network location."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=host_of(parts.netloc)))


def downgrades(url: str, than: str) -> bool:
    """Tell whether ``url`` is plain ``ws://`` where ``than`` is ``wss://`` (TLS would be lost)."""
    return urlsplit(url).scheme == "ws" and urlsplit(than).scheme == "wss"
