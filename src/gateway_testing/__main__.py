"""Run the fake gateway from the command line (see :mod:`gateway_testing._cli`)."""

from __future__ import annotations

import sys

from gateway_testing._cli import main

if __name__ == "__main__":
    sys.exit(main())
