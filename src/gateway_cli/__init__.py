"""The ``spectacles-gateway`` command line (``python -m gateway_cli``).

A top-level package of its own, on top of everything else: it imports the drivers,
the fake gateway and the Redis layer, and none of them imports it. Its modules are
private (import nothing from here but :func:`gateway_cli.__main__.main`): ``args``
parses and validates, ``display`` decides what reaches the terminal or the pipe,
``run`` wires the fake gateway, the drivers and the display together, ``redis_run``
and ``worker`` are the ``run`` and ``worker`` subcommands.
"""

from __future__ import annotations
