"""spectacles-gateway's runners for ``bench_peers.py``: the core alone, and an anyio shard.

``decode_spectacles`` feeds ``GatewayConnection.receive_data`` the raw frame bytes
in socket-sized chunks (WebSocket framing included: the core owns it);
``loopback_spectacles`` runs one ``gateway_anyio.Shard`` against the replay gateway.
"""

from __future__ import annotations

import importlib.util
import random
import time
from typing import Any

from _replay import Stream, iter_chunks

from ._common import INTENTS, TIMEOUT, TOKEN, Run, Tally, Unavailable, _import


def _core_api() -> tuple[Any, Any, Any, Any]:
    proto = _import("gateway_proto", "gateway_proto does not import")
    conn_mod = proto
    if importlib.util.find_spec("gateway_proto.connection") is not None:
        conn_mod = _import("gateway_proto.connection", "gateway_proto.connection does not import")
    connection = getattr(conn_mod, "GatewayConnection", None)
    if connection is None:
        raise Unavailable("gateway_proto.GatewayConnection is not there yet")
    events = _import("gateway_proto.events", "gateway_proto.events missing")
    config = _import("gateway_proto.config", "gateway_proto.config missing")
    return connection, config.ShardConfig, events.Dispatch, events.IdentifyNeeded


def decode_spectacles(stream: Stream, chunk: int) -> Run:
    connection_cls, config_cls, dispatch_cls, identify_needed = _core_api()
    wsproto = _import("wsproto", "wsproto missing")
    wse = _import("wsproto.events", "wsproto missing")
    chunks = list(iter_chunks(stream.body, chunk))
    config = config_cls(token=TOKEN, intents=INTENTS, url="ws://127.0.0.1:9/")

    def open_connection() -> Any:
        conn = connection_cls(config, rng=random.Random(0))
        conn.connect(0.0)
        server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        server.receive_data(conn.data_to_send())
        response = b""
        for event in server.events():
            if isinstance(event, wse.Request):
                response = server.send(wse.AcceptConnection())
        conn.receive_data(response + stream.hello_frame, 0.0)
        for event in conn.events():
            if isinstance(event, identify_needed):
                conn.identify(0.0)
        conn.data_to_send()
        return conn

    def run() -> tuple[float, int]:
        conn = open_connection()
        receive, events, data_to_send = conn.receive_data, conn.events, conn.data_to_send
        clock = time.perf_counter
        n = 0
        t0 = time.perf_counter()
        for data in chunks:
            receive(data, clock() - t0)
            for event in events():
                if type(event) is dispatch_cls:
                    n += 1
            data_to_send()
        return time.perf_counter() - t0, n

    run()  # fail here, not in the middle of the table, if the core can't take the stream
    return run


def loopback_spectacles(stream: Stream, url: str) -> Run:
    _core_api()  # n/a until the core lands
    gateway_anyio = _import("gateway_anyio", "gateway_anyio is not importable")
    anyio = _import("anyio", "anyio is not installed")
    names = sorted(set(stream.names))
    total = len(stream.names)

    async def session() -> tuple[float, int]:
        shard = gateway_anyio.Shard(
            TOKEN,
            intents=INTENTS,
            url=url + "/",
            max_buffer=total + 1000,
            rng=random.Random(0),
        )
        done = anyio.Event()
        tally = Tally(total, done.set)
        for name in names:
            shard.on(name, tally.hook)
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(shard.connect)
                await done.wait()
                await shard.disconnect()
        seconds, events, _ = tally.result()
        return seconds, events

    def run() -> tuple[float, int]:
        result: tuple[float, int] = anyio.run(session, backend="asyncio")
        return result

    return run
