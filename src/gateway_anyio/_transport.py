"""The byte stream under a shard: TCP, plus TLS for ``wss://``, on anyio.

Each step has its own timeout, because only the driver can see either of them
stall; the WebSocket upgrade on top is the core's to speak and the runner's to time.
"""

from __future__ import annotations

import ssl

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from gateway_proto.driver_support import split_gateway_url

__all__ = ["TRANSPORT_ERRORS", "open_stream"]

#: What a broken or refused transport raises; the core treats each as a lost connection.
TRANSPORT_ERRORS = (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream)


async def open_stream(
    url: str, *, ssl_context: ssl.SSLContext | None, connect_timeout: float
) -> anyio.abc.ByteStream:
    """Connect to ``url``'s host; ``connect_timeout`` bounds TCP, then again TLS.

    ``ssl_context`` ``None`` means verified system trust. A URL that names no
    address raises ``GatewayUrlError`` (an ``OSError``, like a refused connection).
    """
    host, port, tls = split_gateway_url(url)
    with anyio.fail_after(connect_timeout):
        tcp = await anyio.connect_tcp(host, port)
    if not tls:
        return tcp
    try:
        with anyio.fail_after(connect_timeout):
            return await TLSStream.wrap(
                tcp,
                hostname=host,
                ssl_context=ssl_context or ssl.create_default_context(),
                standard_compatible=False,
            )
    except BaseException:
        await anyio.aclose_forcefully(tcp)
        raise
