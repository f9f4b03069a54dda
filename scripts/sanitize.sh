#!/usr/bin/env bash
# Run the C hot path (gateway_proto._speedups) under AddressSanitizer and UBSan:
# build it with both into a copy of the package, then run the tests that feed it
# arbitrary and broken input. Any out-of-bounds read, use-after-free or undefined
# behaviour aborts the run (--capture=sys: pytest must not swallow the report
# written to fd 2). Usage: scripts/sanitize.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
CC="${CC:-gcc}"
if ! command -v "$CC" >/dev/null; then
    echo "sanitize: no C compiler ($CC); not run" >&2
    exit 0
fi
asan=$("$CC" -print-file-name=libasan.so)
ubsan=$("$CC" -print-file-name=libubsan.so)
if [ ! -e "$asan" ] || [ ! -e "$ubsan" ]; then
    echo "sanitize: $CC has no libasan/libubsan here; not run" >&2
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r src/gateway_proto "$work/gateway_proto"
rm -f "$work"/gateway_proto/_speedups*.so
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
"$CC" -shared -fPIC -g -O1 -fno-omit-frame-pointer \
    -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
    -I"$include" src/gateway_proto/_speedups.c -o "$work/gateway_proto/_speedups$suffix"
# PYTHONMALLOC=malloc lets ASan see every Python allocation; leaks are the
# interpreter's business, not this check's.
PYTHONPATH="$work" PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
    LD_PRELOAD="$asan $ubsan" \
    "$PY" -m pytest -q -p no:cacheprovider --capture=sys \
    tests/proto/test_speedups.py tests/proto/test_wire.py tests/proto/test_frames_differential.py \
    tests/proto/test_compression.py tests/proto/test_slot_maker.py \
    tests/proto/test_buffered_anext.py tests/proto/test_take_dispatches.py \
    "$@"
# The check must have run the sanitized build, not the installed one.
PYTHONPATH="$work" LD_PRELOAD="$asan $ubsan" ASAN_OPTIONS=detect_leaks=0 "$PY" -c "
import gateway_proto._speedups as s, sys
sys.exit(0 if s.__file__.startswith('$work') else 'sanitize: the sanitized build was not the one loaded')"
