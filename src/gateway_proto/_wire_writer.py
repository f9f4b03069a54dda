"""Writing frames: outbound payloads and close frames into the connection's output buffer.

One job: everything this side sends once the WebSocket is open goes through
here (the upgrade request is :mod:`gateway_proto._handshake`'s; pongs and close
replies are the reader's, as answers to what it read). Payloads are encoded by
the configured codec, checked against the 4096-byte limit, and framed masked,
never compressed (:func:`gateway_proto._frames.build_frame`).

:class:`WireWriter` is the base of the classes that make up
:class:`~gateway_proto._wire.Wire` (``WireWriter`` <- ``Handshake`` <-
``WireReader`` <- ``Wire``): plain inheritance, one object, so nothing costs more
than when they were one class. Each declares the state it uses;
``Wire.__init__`` sets it.
"""

from __future__ import annotations

from typing import Any

from ._frames import build_close, build_frame
from .codecs import EtfCodec, JsonCodec

__all__ = ["WireWriter"]


class WireWriter:
    """The wire's output side (a part of :class:`~gateway_proto._wire.Wire`)."""

    # Set by Wire.__init__.
    _out: bytearray
    _codec: JsonCodec | EtfCodec
    _opcode: int
    _open: bool
    _close_sent: bool

    def encode(self, op: int, d: Any) -> bytes:
        """Encode one outbound payload ``{"op": op, "d": d}`` with the configured codec.

        Raises:
            InvalidCommandError: over 4096 bytes, or not encodable; the message
                gives the size and the limit, never the payload (it may hold the token).

        """
        return self._codec.encode(op, d)

    def write_message(self, encoded: bytes) -> None:
        """Append ``encoded`` as one masked frame (text: JSON, binary: ETF; never compressed)."""
        self._out += build_frame(self._opcode, encoded)

    def send_close(self, code: int, reason: str = "") -> None:
        """Append a close frame with ``code`` and ``reason``, once (later calls do nothing).

        Before the handshake completes there is no WebSocket to close: nothing is
        written, but the close counts as sent.
        """
        if self._close_sent:
            return
        self._close_sent = True
        if self._open:
            self._out += build_close(code, reason)
