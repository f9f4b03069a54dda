"""The frames level of ``bench_peers.py``: WebSocket framing alone, for context.

aiohttp's ``WebSocketReader`` (what discord.py and hikari read with) and
wsproto's ``WSConnection`` (what the core reads with) over the same chunks.
"""

from __future__ import annotations

import asyncio
import time

from _replay import Stream, iter_chunks

from ._common import Run, _import


class _StubProtocol:
    """The bits of aiohttp's BaseProtocol that its WebSocketDataQueue touches."""

    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


def frames_aiohttp(stream: Stream, chunk: int) -> Run:
    _import("aiohttp", "aiohttp is not installed")
    reader = _import("aiohttp._websocket.reader", "aiohttp's WebSocket reader moved")
    chunks = list(iter_chunks(stream.body, chunk))

    async def session() -> tuple[float, int]:
        queue = reader.WebSocketDataQueue(_StubProtocol(), 1 << 30, loop=asyncio.get_running_loop())
        parser = reader.WebSocketReader(queue, 0, compress=False, decode_text=False)
        feed, buffer = parser.feed_data, queue._buffer
        n = 0
        t0 = time.perf_counter()
        for data in chunks:
            feed(data)
            n += len(buffer)
            buffer.clear()
        return time.perf_counter() - t0, n

    def run() -> tuple[float, int]:
        return asyncio.run(session())

    return run


def frames_wsproto(stream: Stream, chunk: int) -> Run:
    wsproto = _import("wsproto", "wsproto is not installed")
    wse = _import("wsproto.events", "wsproto is not installed")
    chunks = list(iter_chunks(stream.body, chunk))
    message_cls = wse.BytesMessage

    def run() -> tuple[float, int]:
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        server.receive_data(client.send(wse.Request(host="127.0.0.1", target="/")))
        for event in server.events():
            if isinstance(event, wse.Request):
                client.receive_data(server.send(wse.AcceptConnection()))
        for _ in client.events():
            pass
        receive, events = client.receive_data, client.events
        n = 0
        t0 = time.perf_counter()
        for data in chunks:
            receive(data)
            for event in events():
                if type(event) is message_cls and event.message_finished:
                    n += 1
        return time.perf_counter() - t0, n

    return run
