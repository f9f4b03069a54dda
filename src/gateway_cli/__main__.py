"""``python -m gateway_cli`` and the ``spectacles-gateway`` console script.

Kept thin on purpose: the command line lives in :mod:`gateway_cli.run`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway_cli.run import main as _run

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``spectacles-gateway`` command line and return its exit status."""
    return _run(argv)


if __name__ == "__main__":
    sys.exit(main())
