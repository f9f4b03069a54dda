"""Shards across processes and machines, coordinated through Redis (the ``redis`` extra).

Nothing here is needed by ``gateway_proto`` or the drivers; install
``spectacles-gateway[redis]`` to use it. See docs/scaling.md.
"""

from __future__ import annotations

__all__: list[str] = []
