#!/usr/bin/env bash
# Install the library into .venv (created if missing) and run the demo:
# offline against the embedded fake gateway, or against Discord when
# DISCORD_TOKEN is set (or --token is given). Extra arguments go to `listen`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[all]"
exec "$VENV/bin/spectacles-gateway" listen "$@"
