"""The WebSocket upgrade: the HTTP request out, the reply read through wsproto.

One job: the handshake, once per connection. :meth:`Handshake.initiate` writes
the ``GET`` upgrade request; :meth:`Handshake._receive_handshake` gives wsproto
the reply's head and nothing past it, so the bytes after a 101 go to the frame
reader untouched. A refused or broken reply is a :class:`HandshakeRejected`
item, never an exception.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import h11
from wsproto import WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ._urls import host_of
from ._wire_items import HandshakeAccepted, HandshakeRejected, WireItem
from ._wire_writer import WireWriter
from .errors import HandshakeError

__all__ = ["Handshake"]

#: An HTTP reply head longer than this is refused (h11's own default is 16 KiB).
_MAX_HANDSHAKE_SIZE: Final = 64 * 1024


class _HandshakeBroken(Exception):
    """The upgrade reply cannot be parsed (internal)."""


class Handshake(WireWriter):
    """The wire's WebSocket upgrade (a part of :class:`~gateway_proto._wire.Wire`)."""

    # Set by Wire.__init__.
    _url: str
    _user_agent: str
    _handshake: WSConnection | None
    _head: bytearray
    _dead: bool

    def initiate(self) -> None:
        """Append the HTTP upgrade request (``GET`` with the URL's path and query) to ``out``.

        No extension is offered: Discord does not use permessage-deflate. The
        ``User-Agent`` is ``config.user_agent`` (some servers refuse an upgrade
        without one).
        """
        assert self._handshake is not None, "initiate() is called once"
        parts = urlsplit(self._url)
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        agent = (b"User-Agent", self._user_agent.encode("ascii"))
        self._out += self._handshake.send(
            # Never a ``user:password@`` in the Host header.
            Request(
                host=host_of(parts.netloc),
                target=target,
                extensions=[],
                subprotocols=[],
                extra_headers=[agent],
            )
        )

    def _receive_handshake(self, data: bytes, items: list[WireItem]) -> bytes:
        """Feed the HTTP reply to wsproto, never past its end; return the bytes after it.

        wsproto only ever sees the response head: everything after the blank line
        that ends a 101 reply is WebSocket data, which goes to the frame reader, so
        no over-read byte is lost or parsed twice.
        """
        ws = self._handshake
        assert ws is not None, "receive() before initiate()"
        head = self._head
        head += data
        try:
            while True:
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    if len(head) > _MAX_HANDSHAKE_SIZE:
                        raise _HandshakeBroken(f"no end of the HTTP reply in {len(head)} bytes")
                    return b""
                ws.receive_data(bytes(head[: end + 4]))
                del head[: end + 4]
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        self._open = True
                        self._handshake = None
                        items.append(HandshakeAccepted())
                        rest = bytes(head)
                        head.clear()
                        return rest
                    if isinstance(event, RejectConnection):
                        self._dead = True
                        status = event.status_code
                        items.append(
                            HandshakeRejected(
                                status,
                                HandshakeError(
                                    f"the WebSocket upgrade was refused with HTTP {status}",
                                    status_code=status,
                                ),
                            )
                        )
                        return b""
        except (RemoteProtocolError, h11.ProtocolError, _HandshakeBroken) as exc:
            self._dead = True
            items.append(
                HandshakeRejected(0, HandshakeError(f"a broken WebSocket upgrade reply: {exc}"))
            )
            return b""
