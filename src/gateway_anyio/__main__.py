"""``python -m gateway_anyio``: says where the command line went, and exits 2.

The command line is its own package now, ``gateway_cli``, on top of the drivers: a
driver does not import it (not even to forward to it), so this module only points
the way for scripts written when the CLI lived here.
"""

from __future__ import annotations

import sys

MOVED = (
    "the command line moved: run `spectacles-gateway ...` or `python -m gateway_cli ...`"
    " (python -m gateway_anyio is no longer the CLI)"
)

if __name__ == "__main__":
    print(f"gateway_anyio: {MOVED}", file=sys.stderr)
    sys.exit(2)
