#!/usr/bin/env bash
# Install the library into .venv (created if missing) and run the demo:
# offline against the embedded fake gateway, or against Discord when
# DISCORD_TOKEN is set (or --token is given). Extra arguments go to `listen`.
#
# The demo installs only what it uses: the library and its three pure-Python
# dependencies, no extras (erlpack, for instance, needs a C++ compiler; the demo
# never uses it). A stamp in .venv, keyed by a hash of the packaging files, makes a
# re-run skip pip: it starts in about a second. Delete .venv to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
STAMP="$VENV/.spectacles-gateway-demo"
LOG="$VENV/demo-install.log"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating the virtual environment $VENV" >&2
    python3 -m venv "$VENV"
fi
# What the installed copy was built from: the packaging files and the interpreter.
wanted="$(cat pyproject.toml setup.py | "$VENV/bin/python" -c '
import hashlib, sys
print(hashlib.sha256(sys.stdin.buffer.read() + sys.version.encode()).hexdigest())')"
# The stamp alone is not enough: a moved clone breaks the editable install, so the
# import must work too.
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ] \
    || [ ! -x "$VENV/bin/spectacles-gateway" ] \
    || ! "$VENV/bin/python" -c 'import gateway_anyio, gateway_testing' 2>/dev/null; then
    echo "== installing spectacles-gateway and its dependencies into $VENV" \
        "(re-runs skip this; pip's output goes to $LOG)" >&2
    rm -f "$STAMP"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e . >"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        echo "== pip failed; the whole log is in $LOG" >&2
        exit 1
    fi
    echo "$wanted" >"$STAMP"
    echo "== installed; starting the demo" >&2
fi
exec "$VENV/bin/spectacles-gateway" listen "$@"
