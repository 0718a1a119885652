#!/bin/sh
# Installs the C library: PREFIX/lib/libtinv.so.X.Y.Z with links libtinv.so and its SONAME
# (libtinv.so.0.Y before 1.0), libtinv.a, PREFIX/include/tinv.h, PREFIX/lib/pkgconfig/tinv.pc,
# and the TensorRT shims (libtinv_trt8.so, ...) of a `--features tensorrt` build when present
# (found by their bare name through ldconfig, so run `ldconfig` after installing).
#
#   scripts/install.sh [--prefix DIR] [--from DIR]
#
#   --prefix DIR  install root, an absolute path (default /usr/local); DESTDIR is prepended
#                 when set (packaging)
#   --from DIR    where the built libraries are (default $CARGO_TARGET_DIR/release, else target/release; for a Jetson build:
#                 target/aarch64-unknown-linux-gnu/release)
#
# Build first: `cargo build --release -p tinv` (or scripts/cross-aarch64.sh).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/usr/local
FROM=${CARGO_TARGET_DIR:-$ROOT/target}/release
# Option $1 needs a non-empty value $2 (an empty --prefix would install into /lib).
needs_value() {
    [ $# -ge 2 ] && [ -n "$2" ] || { echo "error: $1 needs a value" >&2; exit 1; }
}
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) needs_value "$@"; PREFIX=$2; shift 2 ;;
        --from) needs_value "$@"; FROM=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done
# tinv.pc names the prefix: a relative one would resolve against whichever directory the
# compiler runs in.
case $PREFIX in
    /*) ;;
    *) echo "error: --prefix must be an absolute path, not $PREFIX" >&2; exit 1 ;;
esac
# pkg-config splits its output at white space and the sed below reads & and | itself: such a
# prefix would give a tinv.pc that names other folders.
case $PREFIX in
    *[[:space:]\&\|\\]*)
        echo "error: --prefix '$PREFIX' holds white space, &, | or \\, which tinv.pc cannot carry" >&2
        exit 1 ;;
esac
VERSION=$(sed -n 's/^#define TINV_VERSION_STRING "\(.*\)"$/\1/p' "$ROOT/include/tinv.h")
MAJOR=${VERSION%%.*}
MINOR=${VERSION#*.}
MINOR=${MINOR%%.*}
# The SONAME build.rs sets: before 1.0 every minor version is its own ABI generation.
if [ "$MAJOR" = 0 ]; then ABI=0.$MINOR; else ABI=$MAJOR; fi
[ -n "$VERSION" ] || { echo "error: no TINV_VERSION_STRING in include/tinv.h" >&2; exit 1; }
[ -f "$FROM/libtinv.so" ] || { echo "error: $FROM/libtinv.so missing (cargo build --release -p tinv)" >&2; exit 1; }
# The links must carry the SONAME the library was built with (a stale build of another version
# would leave programs looking for a name that is not installed).
if command -v readelf >/dev/null; then
    SONAME=$(LC_ALL=C readelf -d "$FROM/libtinv.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [ "$SONAME" = "libtinv.so.$ABI" ] || {
        echo "error: $FROM/libtinv.so has SONAME '$SONAME', include/tinv.h (version $VERSION) wants libtinv.so.$ABI: rebuild it" >&2
        exit 1
    }
fi

# Copied beside and renamed over: writing into an installed library in place crashes the
# programs that have it mapped (SIGBUS).
put() {
    cp "$1" "$2.tmp.$$"
    mv -f "$2.tmp.$$" "$2"
}

DEST=${DESTDIR:-}$PREFIX
mkdir -p "$DEST/lib/pkgconfig" "$DEST/include"
put "$FROM/libtinv.so" "$DEST/lib/libtinv.so.$VERSION"
ln -sf "libtinv.so.$VERSION" "$DEST/lib/libtinv.so.$ABI"
ln -sf "libtinv.so.$ABI" "$DEST/lib/libtinv.so"
# A static library or TensorRT shims of an earlier install that this build lacks would be
# linked or loaded with the new library: removed, and said.
if [ -f "$FROM/libtinv.a" ]; then
    put "$FROM/libtinv.a" "$DEST/lib/libtinv.a"
elif [ -f "$DEST/lib/libtinv.a" ]; then
    rm -f "$DEST/lib/libtinv.a"
    echo "removed $DEST/lib/libtinv.a of an earlier install (this build has none)"
fi
for old in "$DEST"/lib/libtinv_trt*.so; do
    if [ -f "$old" ] && [ ! -f "$FROM/$(basename "$old")" ]; then
        rm -f "$old"
        echo "removed $old of an earlier install (this build has no such TensorRT shim)"
    fi
done
for shim in "$FROM"/libtinv_trt*.so; do
    if [ -f "$shim" ]; then put "$shim" "$DEST/lib/$(basename "$shim")"; fi
done
put "$ROOT/include/tinv.h" "$DEST/include/tinv.h"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@VERSION@|$VERSION|g" "$ROOT/tinv.pc.in" >"$DEST/lib/pkgconfig/tinv.pc"
echo "installed tinv $VERSION into $DEST (pkg-config: $DEST/lib/pkgconfig/tinv.pc)"
