#!/bin/sh
# Builds tests/subproject/consumer as its own Meson project with coev in its subprojects/ and
# runs it: proves dependency('coev') works for a parent and that coev's source tree stays clean.
# Usage: run.sh COEV_SOURCE_ROOT WORK_DIR   (WORK_DIR is wiped first)
set -eu

fail() {
    echo "subproject test FAILED: $*" >&2
    exit 1
}

[ $# -eq 2 ] || fail "usage: $0 COEV_SOURCE_ROOT WORK_DIR"
src=$(cd "$1" && pwd -P) || fail "no coev source root at $1"
work=$2
meson=${MESON:-meson}
[ -d "$src/tests/subproject/consumer" ] || fail "$src is not a coev source tree"

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd -P)

# Every file of the coev tree except .git and build directories (any directory Meson set up,
# whatever its name, including the one this test runs from).
snapshot() {
    find "$src" \( -name .git -o -type d -exec test -d '{}/meson-private' ';' \) -prune \
        -o -print | sort
}
snapshot >"$work/before.txt"

cp -R "$src/tests/subproject/consumer" "$work/consumer"
mkdir "$work/consumer/subprojects"

# The coev tree without .git and build directories, for a Meson that refuses the symlink.
copy_tree() {
    rm -rf "$work/consumer/subprojects/coev" "$work/build"
    mkdir "$work/consumer/subprojects/coev"
    (cd "$src" && find . -mindepth 1 -maxdepth 1 ! -name .git \
         ! -exec test -d '{}/meson-private' ';' -print) |
        while read -r entry; do cp -R "$src/$entry" "$work/consumer/subprojects/coev/"; done
}
setup() {
    "$meson" setup "$work/build" "$work/consumer" >"$work/setup.log" 2>&1
}

# A symlink is what a developer would do, and Meson 1.0 accepts it; a copy is the fallback
# every Meson must accept (COEV_SUBPROJECT_COPY=1 forces it).
if [ "${COEV_SUBPROJECT_COPY:-0}" = 1 ]; then
    copy_tree
else
    ln -s "$src" "$work/consumer/subprojects/coev"
fi
if ! setup; then
    tail -n 40 "$work/setup.log" >&2
    [ -L "$work/consumer/subprojects/coev" ] || fail "meson setup of the consumer"
    echo "note: meson setup failed with coev symlinked; retrying with a copy" >&2
    copy_tree
    setup || { tail -n 40 "$work/setup.log" >&2; fail "meson setup of the consumer"; }
fi
grep -q "Dependency coev found: YES .*(overridden)" "$work/setup.log" ||
    fail "dependency('coev') did not come from coev's override_dependency (see $work/setup.log)"

ninja -C "$work/build" -j "${COEV_JOBS:-2}" >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log" >&2; fail "ninja build of the consumer"; }

# The subproject's objects belong in the consumer's build directory, nowhere else.
ls "$work"/build/subprojects/coev/runtime/libcoev-runtime.* >/dev/null 2>&1 ||
    fail "libcoev-runtime was not built under $work/build/subprojects/coev"
snapshot >"$work/after.txt"
if ! cmp -s "$work/before.txt" "$work/after.txt"; then
    diff "$work/before.txt" "$work/after.txt" >&2 || true
    fail "building the consumer added or removed files in the coev source tree $src"
fi

"$work/build/consumer" || fail "the consumer program exited with status $?"
echo "subproject test passed"
