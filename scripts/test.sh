#!/usr/bin/env bash
# Install everything the test suite needs into .venv (created if missing), then run
# ruff, mypy --strict, the import contracts (lint-imports), the C hot path under
# sanitizers (scripts/sanitize.sh) and pytest. Extra arguments go to pytest (and skip the sanitizer run).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# The Redis tests run against a real redis-server (Redis 7, Debian's package), which
# their fixture starts on a free port: install it when it is missing. Without apt (or
# root), say so and go on: those tests then fail loudly, they never skip.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (Debian package) for the Redis tests"
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq >/dev/null || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null \
            || echo "could not install redis-server: the Redis tests will fail" >&2
    else
        echo "no apt-get: install redis-server (Redis 7) yourself; the Redis tests will fail" >&2
    fi
fi
# The status page's browser test drives Debian's Chromium (Playwright's own browser
# download is not reachable): install it when missing, like redis-server above.
# Without it that test fails loudly, it never skips.
if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium (Debian package) for the status page's browser test"
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq >/dev/null || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
            || echo "could not install chromium: the browser test will fail" >&2
    else
        echo "no apt-get: install chromium yourself; the browser test will fail" >&2
    fi
fi
echo "== ruff"
"$VENV/bin/ruff" check --no-cache .
echo "== mypy --strict"
"$VENV/bin/mypy"
echo "== import contracts (lint-imports: the layers in pyproject.toml)"
"$VENV/bin/lint-imports" --no-cache
if [ $# -eq 0 ]; then
    echo "== the C hot path under AddressSanitizer and UBSan"
    bash scripts/sanitize.sh
fi
echo "== pytest"
# -bb turns str/bytes mix-ups into errors; pytest exits 5 when it collected nothing,
# which set -e turns into a failure of this script, as it should be.
"$VENV/bin/python" -bb -m pytest "$@"
