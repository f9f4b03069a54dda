"""gateway_status: Prometheus metrics, health probes and a live status page for shards.

An optional extra (``pip install spectacles-gateway[status]``) that sits above the
drivers: it reads shards and clusters, and no driver imports it. Everything is
read when asked (a scrape, a probe, the page's poll): nothing is added to a
shard's per-event path.

    # anyio: in the cluster's task group
    async with Cluster(token, intents=...) as cluster, anyio.create_task_group() as tg:
        url = await tg.start(serve_status, cluster)        # http://127.0.0.1:8080/
        await cluster.spawn("auto")

    # blocking driver: a thread of its own
    with start_status_thread(cluster) as status:
        print(status.url)

Routes: ``/metrics`` (Prometheus text format), ``/livez``, ``/readyz`` (JSON;
200 or 503), ``/`` (the page) and ``/status.json`` (what the page polls); with a
fleet reader (:mod:`gateway_status.fleet`, Redis), ``/fleet.json``.
docs/operations.md lists every metric.
"""

from __future__ import annotations

from ._app import StatusApp
from ._collector import GatewayCollector
from ._health import readiness
from ._names import DOCUMENTED_DISPATCHES, OTHER, dispatch_label
from ._serve import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    StatusServerError,
    StatusThread,
    serve_app,
    serve_status,
    start_status_thread,
)
from ._views import LimiterView, ShardView, StatusSource, anyio_source, sync_source

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DOCUMENTED_DISPATCHES",
    "OTHER",
    "GatewayCollector",
    "LimiterView",
    "ShardView",
    "StatusApp",
    "StatusServerError",
    "StatusSource",
    "StatusThread",
    "anyio_source",
    "dispatch_label",
    "readiness",
    "serve_app",
    "serve_status",
    "start_status_thread",
    "sync_source",
]
