"""Where a gateway URL points: host, TCP port and whether to speak TLS."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from gateway_proto._urls import without_userinfo


class GatewayUrlError(OSError, ValueError):
    """A gateway URL that names no reachable address (no host, a bad port, not ws/wss).

    An ``OSError`` too, so that a driver treats it like any address it cannot
    reach: a bad ``resume_gateway_url`` from the server then costs one failed
    attempt (the next one resumes on the base URL), never the shard.
    """


class GatewayAddress(NamedTuple):
    """Where a gateway URL points: the host, the TCP port and whether to speak TLS."""

    host: str
    port: int
    tls: bool


def split_gateway_url(url: str) -> GatewayAddress:
    """Return the address of a ``ws://`` (port 80) or ``wss://`` (port 443, TLS) URL.

    Raises:
        GatewayUrlError: the scheme is not ``ws``/``wss``, there is no host, or the
            port is not a valid number (the message shows the URL without any
            ``user:password@``).

    """
    parts = urlsplit(url)
    shown = without_userinfo(url)  # the host comes from ``hostname``: no credentials either
    if parts.scheme not in ("ws", "wss"):
        raise GatewayUrlError(f"not a ws:// or wss:// URL: {shown!r}")
    tls = parts.scheme == "wss"
    try:
        port = parts.port
    except ValueError:
        raise GatewayUrlError(f"URL has a bad port: {shown!r}") from None
    host = parts.hostname or ""
    if not host:
        raise GatewayUrlError(f"URL has no host: {shown!r}")
    return GatewayAddress(host, port or (443 if tls else 80), tls)
