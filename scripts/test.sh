#!/usr/bin/env bash
# Runs the whole test suite: a normal build, an address+undefined sanitizer build and a clang
# build, every test on every backend. Installs and builds what is missing first. The last line it prints is
# "N passed, N failed" over both builds; it exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! bash scripts/setup.sh; then
    echo "setup failed: nothing was built or run"
    echo "0 passed, 1 failed"
    exit 1
fi

jobs=${COEV_JOBS:-2}
status=0

# build_and_test DIR [meson options...]
build_and_test() {
    local dir=$1; shift
    rm -f "$dir/meson-logs/testlog.json"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
    fi
    ninja -C "$dir" -j "$jobs" || return 1
    meson test -C "$dir" --num-processes "$jobs" --print-errorlogs || return 1
}

build_and_test build || status=1
build_and_test build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbenchmarks=disabled \
    || status=1
# clang must keep building coev too (and its tests must pass there).
CC=clang CXX=clang++ build_and_test build-clang -Dbenchmarks=disabled || status=1

# The totals of both runs, from Meson's machine-readable logs.
python3 - build build-asan build-clang <<'PY' || status=1
import json, sys, os
passed = failed = skipped = 0
for d in sys.argv[1:]:
    path = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        failed += 1          # the build did not get as far as running tests
        continue
    for line in open(path):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
if skipped:
    print(f"{skipped} skipped")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
exit $status
