#!/usr/bin/env bash
# The one-command benchmark: every runner over the same recorded stream, then the idle
# and sustained runs, in one report (benchmarks/README.md, section "One command").
#
#   scripts/bench.sh            # the full run, about 20 minutes; publish these numbers
#   scripts/bench.sh --quick    # a few minutes: smaller stream, fewer rounds, shorter runs
#   scripts/bench.sh --setup    # only create/update the peers venv
#
# It needs python3 (with venv and pip), gcc and the Python headers, and PyPI: the peers
# (discord.py, hikari) live in their own venv, benchmarks/.venv-peers, set up as
# benchmarks/peers.md says (`.[speed]`, not `.[all]`; zstandard must be absent, or
# discord.py has no zlib-stream path and cannot read the shared stream).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="benchmarks/.venv-peers"
PYTHON3="${PYTHON3:-python3}"
SETUP_ONLY=0
ARGS=()
for arg in "$@"; do
    case "$arg" in
        --setup) SETUP_ONLY=1 ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) ARGS+=("$arg") ;;
    esac
done

die() {
    echo "scripts/bench.sh: $*" >&2
    exit 1
}

echo "== peers venv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON3" >/dev/null 2>&1 || die "no $PYTHON3 on PATH (set PYTHON3=...)"
    "$PYTHON3" -m venv "$VENV" \
        || die "'$PYTHON3 -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Installing needs PyPI; find out first, so a machine without it gets one clear line.
PROBE="$(mktemp -d)"
trap 'rm -rf "$PROBE"' EXIT
if "${PIP[@]}" download --quiet --no-deps --dest "$PROBE" --timeout 20 --retries 1 hikari \
    >"$PROBE/log" 2>&1; then
    # --quiet twice: the editable install prints only warnings and errors.
    "${PIP[@]}" install -qq --upgrade pip
    "${PIP[@]}" install -qq -e '.[speed]' discord.py hikari websockets trio \
        || die "pip could not install the peers venv (see its output above)"
elif "$VENV/bin/python" -c 'import discord, hikari, websockets, trio, orjson, zlib_ng, gateway_anyio' \
    2>/dev/null; then
    echo "warning: PyPI is not reachable; using $VENV as it is (not updated)" >&2
else
    cat "$PROBE/log" >&2
    die "PyPI is not reachable (pip download failed, above), and $VENV is not complete: \
the peers venv needs network access to PyPI once"
fi
# .[speed] never asks for zstandard, but another install into this venv may have.
if "$VENV/bin/python" -c 'import zstandard' 2>/dev/null; then
    echo "removing zstandard from $VENV (discord.py would negotiate zstd-stream)"
    "${PIP[@]}" uninstall -qq -y zstandard
fi
if [ "$SETUP_ONLY" = 1 ]; then
    exit 0
fi
# The venv's editable install of this clone is what runs: no PYTHONPATH from outside.
unset PYTHONPATH
exec "$VENV/bin/python" benchmarks/bench_all.py ${ARGS[@]+"${ARGS[@]}"}
