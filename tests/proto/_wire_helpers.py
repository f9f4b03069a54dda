"""Helpers for the wire tests: server frames built by hand, a wsproto oracle, an open Wire."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from gateway_proto._wire import Wire
from gateway_proto.config import ShardConfig

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.s3cr3t-t0ken-value-xxxxxxxxxxxxxxxxxx"
URL = "wss://gateway.example.test/"

Outcome = tuple[Any, ...]


def server_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length_bytes: int | None = None,
) -> bytes:
    """One server frame, built by hand (RFC 6455 5.2), optionally malformed on purpose.

    ``length_bytes`` forces the 7-bit (0), 16-bit (2) or 64-bit (8) length form,
    minimal or not.
    """
    n = len(payload)
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length_bytes == 0:
        head = bytes((first, mask_bit | n))
    elif length_bytes == 2:
        head = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else code.to_bytes(2, "big") + reason.encode()


def oracle_frames(chunks: list[bytes]) -> list[Outcome]:
    """What wsproto (client side, after the handshake) makes of ``chunks``.

    Messages are whole (fragments joined), text as UTF-8 bytes; the first close
    frame or error ends the list, as it ends parsing in both implementations.
    """
    conn = Connection(ConnectionType.CLIENT)
    out: list[Outcome] = []
    parts: list[bytes] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        for event in conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                data = event.data
                parts.append(data.encode() if isinstance(data, str) else bytes(data))
                if event.message_finished:
                    kind = "text" if isinstance(event, TextMessage) else "binary"
                    out.append((kind, b"".join(parts)))
                    parts.clear()
            elif isinstance(event, Ping):
                out.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                out.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                if conn.state is ConnectionState.REMOTE_CLOSING:
                    out.append(("close", int(event.code), event.reason or ""))
                else:
                    out.append(("error", int(event.code)))
                return out
    return out


def make_config(**overrides: Any) -> ShardConfig:
    options: dict[str, Any] = {"token": TOKEN, "intents": 513, "url": URL}
    options.update(overrides)
    return ShardConfig(**options)


def accept(request: bytes) -> bytes:
    """A wsproto server's 101 answer to ``request``."""
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(request)
    for event in server.events():
        if isinstance(event, Request):
            return server.send(AcceptConnection())
    raise AssertionError("no upgrade request")  # pragma: no cover


def open_wire(config: ShardConfig | None = None) -> tuple[Wire, bytearray]:
    """A Wire past the handshake, with its output buffer emptied."""
    config = config or make_config()
    out = bytearray()
    wire = Wire(config, config.gateway_url(), out)
    wire.initiate()
    items = wire.receive(accept(bytes(out)))
    assert len(items) == 1
    out.clear()
    return wire, out


def client_frames(data: bytes) -> list[Outcome]:
    """Decode what the client wrote (masked frames) with a wsproto *server* connection."""
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    out: list[Outcome] = []
    for event in server.events():
        if isinstance(event, TextMessage):
            out.append(("text", event.data))
        elif isinstance(event, BytesMessage):
            out.append(("binary", bytes(event.data)))
        elif isinstance(event, Ping):
            out.append(("ping", bytes(event.payload)))
        elif isinstance(event, Pong):
            out.append(("pong", bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            out.append(("close", int(event.code), event.reason or ""))
    return out


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# Any JSON value: unicode text (surrogates are not UTF-8), integers of any size
# (orjson reads those beyond 64 bits as floats; the shard and its readers use
# the same decoder), finite floats.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=8), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@st.composite
def dispatch_messages(draw: st.DrawFn) -> bytes:
    """One dispatch as some server might write it: any key order, spacing, escaping."""
    envelope = {"t": draw(st.sampled_from(["MESSAGE_CREATE", "GUILD_CREATE", "X"])), "op": 0}
    envelope["s"] = draw(st.integers(0, 2**53 - 1))
    envelope["d"] = draw(json_values)
    keys = draw(st.permutations(list(envelope)))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    text = json.dumps(
        {key: envelope[key] for key in keys},
        separators=separators,
        ensure_ascii=draw(st.booleans()),
    )
    return text.encode()
