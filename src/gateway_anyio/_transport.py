"""The byte stream under a shard: TCP, plus TLS for ``wss://``, on anyio.

Each step has its own timeout, because only the driver can see either of them
stall; the WebSocket upgrade on top is the core's to speak and the runner's to time.
On asyncio the stream is an asyncio ``Protocol`` of our own (``_asyncio_stream``),
with asyncio's TLS in the transport; on trio it is anyio's socket and TLS streams.
"""

from __future__ import annotations

import ssl

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from gateway_proto.driver_support import split_gateway_url

from ._asyncio_stream import connect_asyncio

try:
    from sniffio import current_async_library
except ImportError:  # anyio runs without sniffio, on asyncio only

    def current_async_library() -> str:
        """Without sniffio, anyio's backend is asyncio."""
        return "asyncio"


__all__ = ["TRANSPORT_ERRORS", "current_async_library", "open_stream"]

#: What a broken or refused transport raises; the core treats each as a lost connection.
TRANSPORT_ERRORS = (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream)

#: False: anyio's streams on asyncio too (the benchmarks' side-by-side row; private).
_native_asyncio = True


async def open_stream(
    url: str, *, ssl_context: ssl.SSLContext | None, connect_timeout: float
) -> anyio.abc.ByteStream:
    """Connect to ``url``'s host; ``connect_timeout`` bounds TCP, then again TLS.

    ``ssl_context`` ``None`` means verified system trust. A URL that names no
    address raises ``GatewayUrlError`` (an ``OSError``, like a refused connection).
    """
    host, port, tls = split_gateway_url(url)
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    if _native_asyncio and current_async_library() == "asyncio":
        return await connect_asyncio(
            host, port, ssl_context=ssl_context if tls else None, connect_timeout=connect_timeout
        )
    with anyio.fail_after(connect_timeout):
        tcp = await anyio.connect_tcp(host, port)
    if not tls:
        return tcp
    try:
        with anyio.fail_after(connect_timeout):
            return await TLSStream.wrap(
                tcp, hostname=host, ssl_context=ssl_context, standard_compatible=False
            )
    except BaseException:
        await anyio.aclose_forcefully(tcp)
        raise
