#!/usr/bin/env bash
# The main job: coev beside libevent on the same work, a short run (under two minutes),
# printing the ratio table. Installs and builds what is missing first (a release build).
# Pass --full for the longer run recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -f build-release/build.ninja ]; then
    meson setup build-release -Dbuildtype=release -Dtests=false -Dexamples=false >/dev/null
fi
ninja -C build-release -j "${COEV_JOBS:-2}" >/dev/null
mode=--short
[ "${1:-}" = "--full" ] && mode=""
status=0
python3 bench/compare.py build-release $mode || status=1
python3 bench/buffer_compare.py build-release --reps 3 || status=1
python3 bench/echo.py build-release $mode --memory || status=1
exit $status
