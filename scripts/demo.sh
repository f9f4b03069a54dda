#!/usr/bin/env bash
# Install the library into .venv (created if missing) and run the demo:
# offline against the embedded fake gateway, or against Discord when
# DISCORD_TOKEN is set (or --token is given). Extra arguments go to `listen`.
#
# The demo installs only what it uses: the library, its three pure-Python
# dependencies and the [status] extra (prometheus-client, hypercorn and sniffio,
# pure Python too) for the status page; no other extra (erlpack, for instance,
# needs a C++ compiler; the demo never uses it). A stamp in .venv, keyed by a hash
# of the packaging files, makes a re-run skip pip: it starts in about a second.
# Delete .venv to start over.
#
# It serves the status page on 127.0.0.1, on a free port (a fixed one could be in
# use), and prints its URL first; `--status [HOST:]PORT` picks the address instead.
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
    || ! "$VENV/bin/python" -c 'import gateway_anyio, gateway_testing, gateway_status' 2>/dev/null; then
    echo "== installing spectacles-gateway and its dependencies into $VENV" \
        "(re-runs skip this; pip's output goes to $LOG)" >&2
    rm -f "$STAMP"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[status]" >"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        echo "== pip failed; the whole log is in $LOG" >&2
        exit 1
    fi
    echo "$wanted" >"$STAMP"
    echo "== installed; starting the demo" >&2
fi
# The status page, unless an argument already names its address (auto|on|off do not).
page=(--status 127.0.0.1:0)
previous=""
for arg in "$@"; do
    case "$previous|$arg" in
        --status\|auto | --status\|on | --status\|off) ;;
        --status\|*) page=() ;;
    esac
    case "$arg" in
        --status=auto | --status=on | --status=off) ;;
        --status=*) page=() ;;
    esac
    previous="$arg"
done
exec "$VENV/bin/spectacles-gateway" listen "${page[@]}" "$@"
