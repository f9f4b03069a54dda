#!/usr/bin/env bash
# Install everything the test suite needs into .venv (created if missing), then run
# ruff, mypy --strict, the C hot path under sanitizers (scripts/sanitize.sh) and
# pytest. Extra arguments go to pytest (and skip the sanitizer run).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
echo "== ruff"
"$VENV/bin/ruff" check --no-cache .
echo "== mypy --strict"
"$VENV/bin/mypy"
if [ $# -eq 0 ]; then
    echo "== the C hot path under AddressSanitizer and UBSan"
    bash scripts/sanitize.sh
fi
echo "== pytest"
# -bb turns str/bytes mix-ups into errors; pytest exits 5 when it collected nothing,
# which set -e turns into a failure of this script, as it should be.
"$VENV/bin/python" -bb -m pytest "$@"
