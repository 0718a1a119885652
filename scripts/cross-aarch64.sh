#!/bin/sh
# Cross-builds tinv for aarch64-unknown-linux-gnu against a glibc 2.31 baseline (JetPack 5.1 =
# Ubuntu 20.04), checks the symbol versions, and runs under qemu-user:
#   1. libtinv.so + tinv-run (release), checked with scripts/check-glibc.sh;
#   2. the runtime crate's test binaries (release), except those that spawn host programs
#      (capi, capi_header, capi_install: run cc and the host's compiled programs; capi_panics,
#      open_oom: re-run themselves; cli*: spawn tinv-run) — QEMU_SKIP lists them; capi_model and
#      capi_session (the C ABI called from Rust) run;
#   3. tinv-run inspect on the C test's model;
#   4. the C test program (tests/c) cross-compiled with zig cc, run on the model and expectation
#      file the x86_64 C API test wrote, its logits within TINV_TEST_TOL of x86_64's, and its
#      predictions (PRED lines) identical to the x86_64 run.
#
#   scripts/cross-aarch64.sh [test]        build and test (the tools must be installed)
#   scripts/cross-aarch64.sh install       install the tools (see install_tools), then build and test
#   scripts/cross-aarch64.sh install-only  install the tools and stop (for scripts/setup.sh)
#
# The x86_64 side of the comparison is `cargo test --release -p tinv --test capi` (HOST_PROFILE=
# dev uses the debug build instead).
#
# Environment: CARGO_TARGET_DIR (default ./target), ZIG_VENV (python venv holding the `ziglang`
# package; default $CARGO_TARGET_DIR/venv-zig), AARCH64_SYSROOT (default /usr/aarch64-linux-gnu),
# TINV_TEST_TOL (default 1e-4), QEMU_SKIP (default "capi capi_header capi_install capi_panics
# cli cli_bench_selftest cli_classify cli_eval cli_export cli_images cli_inspect cli_sweep
# open_oom").
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR="$TARGET_DIR"
ZIG_VENV=${ZIG_VENV:-$TARGET_DIR/venv-zig}
SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
TOL=${TINV_TEST_TOL:-1e-4}
QEMU_SKIP=${QEMU_SKIP:-"capi capi_header capi_install capi_panics cli cli_bench_selftest cli_classify cli_eval cli_export cli_images cli_inspect cli_sweep open_oom"}
TRIPLE=aarch64-unknown-linux-gnu
ZIG_TARGET=$TRIPLE.2.31
OUT=$TARGET_DIR/$TRIPLE/release
ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1

install_tools() {
    rustup target list --installed | grep -qx $TRIPLE || rustup target add $TRIPLE
    # Both tools come as binary wheels from PyPI (building cargo-zigbuild from source takes
    # ~15 minutes on two cores); idempotent.
    if [ ! -x "$ZIG_VENV/bin/cargo-zigbuild" ] || ! "$ZIG_VENV/bin/python" -m ziglang version >/dev/null 2>&1; then
        python3 -m venv "$ZIG_VENV"
        "$ZIG_VENV/bin/pip" install --quiet "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
    fi
    if ! command -v qemu-aarch64 >/dev/null || [ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
        # A fresh image has no package lists yet.
        as_root apt-get update -qq
        as_root apt-get install -y qemu-user libc6-arm64-cross libgcc-s1-arm64-cross
    fi
}

# apt-get needs root; a developer runs this script as themselves (under sudo, rustup and the
# zig venv would be root's).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
step() { printf '\n== %s (%ss)\n' "$1" "$(($(date +%s) - START))"; }
START=$(date +%s)

case ${1:-test} in
    install|--install) install_tools ;;
    install-only) install_tools; exit 0 ;;
    test) ;;
    *) echo "usage: $0 [test|install|install-only]" >&2; exit 2 ;;
esac
HOST_PROFILE=${HOST_PROFILE:-release}
case $HOST_PROFILE in
    release) HOST_FLAGS=--release ;;
    dev) HOST_FLAGS= ;;
    *) echo "error: HOST_PROFILE must be release or dev" >&2; exit 2 ;;
esac

# cargo-zigbuild finds zig through `python3 -m ziglang`.
PATH="$ZIG_VENV/bin:$PATH"
export PATH
python3 -m ziglang version >/dev/null 2>&1 || { echo "error: no ziglang in $ZIG_VENV (run $0 install)" >&2; exit 1; }
command -v cargo-zigbuild >/dev/null || { echo "error: cargo-zigbuild missing (run $0 install)" >&2; exit 1; }
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || { echo "error: no aarch64 sysroot at $SYSROOT" >&2; exit 1; }
# A function, not a string of words: a sysroot path with spaces stays one argument.
qemu() { qemu-aarch64 -L "$SYSROOT" "$@"; }

step "build libtinv.so and tinv-run for $ZIG_TARGET"
cargo zigbuild --release --target $ZIG_TARGET -p tinv --lib --bin tinv-run
scripts/check-glibc.sh "$OUT/libtinv.so" "$OUT/tinv-run"

step "build the runtime crate's tests for $ZIG_TARGET"
LIST=$TARGET_DIR/cross-aarch64-tests.txt
# Through a file, not a pipe: sh has no pipefail, and a test that fails to compile for aarch64
# must fail this step (it once went unnoticed, the other binaries running as usual).
cargo zigbuild --release --target $ZIG_TARGET -p tinv --tests --message-format=json-render-diagnostics \
    >"$LIST.json"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])' "$LIST.json" >"$LIST"

step "run the test binaries under qemu-aarch64"
while read -r name exe; do
    case " $QEMU_SKIP " in *" $name "*) echo "skip $name (spawns host programs)"; continue ;; esac
    echo "-- $name"
    # Its stdin is not the list being read.
    qemu "$exe" --quiet </dev/null
done <"$LIST"

step "x86_64 C API tests (write each model and its expectation file)"
cargo test $HOST_FLAGS -p tinv --test capi -- c_program_agrees_with_rust_api c_program_on_the_default_model
CASES=$TARGET_DIR/tmp/capi   # c/: small random model; fmnist/: the default model, when present

step "tinv-run inspect under qemu"
qemu "$OUT/tinv-run" inspect --model "$CASES/c/model.tinv" >/dev/null

step "C test cross-compiled with zig cc, run under qemu"
LIBDIR=$TARGET_DIR/cross-aarch64-lib
mkdir -p "$LIBDIR"
cp "$OUT/libtinv.so" "$LIBDIR/libtinv.so"
# The SONAME build.rs sets: libtinv.so.0.MINOR before 1.0.
SONAME=$(readelf -d "$OUT/libtinv.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
ln -sf libtinv.so "$LIBDIR/${SONAME:?no SONAME in libtinv.so}"
python3 -m ziglang cc -target aarch64-linux-gnu.2.31 -std=c99 -Wall -Wextra -Werror -pedantic -O1 \
    -pthread -Iinclude tests/c/test_tinv.c tests/c/errors.c tests/c/threads.c \
    -L"$LIBDIR" -ltinv -lm -o "$LIBDIR/test_tinv"
scripts/check-glibc.sh "$LIBDIR/test_tinv"
for case in c fmnist; do
    dir=$CASES/$case
    [ -f "$dir/expect.bin" ] || { echo "no $case case (model not present)"; continue; }
    TINV_TEST_TOL=$TOL qemu -E LD_LIBRARY_PATH="$LIBDIR" "$LIBDIR/test_tinv" \
        "$dir/model.tinv" "$dir/expect.bin" --quick >"$LIBDIR/$case.aarch64.out"
    "$CASES/bin/$case" "$dir/model.tinv" "$dir/expect.bin" --quick >"$LIBDIR/$case.x86_64.out"
    grep '^PRED' "$LIBDIR/$case.x86_64.out" >"$LIBDIR/$case.x86_64.pred" || true
    grep '^PRED' "$LIBDIR/$case.aarch64.out" >"$LIBDIR/$case.aarch64.pred" || true
    [ -s "$LIBDIR/$case.x86_64.pred" ] || { echo "error: no predictions from the x86_64 run" >&2; exit 1; }
    if ! diff "$LIBDIR/$case.x86_64.pred" "$LIBDIR/$case.aarch64.pred"; then
        echo "error: $case: aarch64 predictions differ from x86_64" >&2
        exit 1
    fi
    echo "$case: aarch64 and x86_64 agree on $(wc -l <"$LIBDIR/$case.x86_64.pred") predictions (logits within $TOL)"
done

step "done"
